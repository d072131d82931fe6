"""Page ``/experiments``: every experiment in a server-side paged, filtered and sorted table.

The first page of rows is part of the served HTML (a screenshot taken without waiting shows
them); a listing too slow for that is finished after the page is served, behind the table's
loading state instead of an empty "No data" table.
"""

from __future__ import annotations

import asyncio
import contextlib

from nicegui import background_tasks, run, ui

from MLSystem.gui.context import Cockpit
from MLSystem.gui.index import SORT_KEYS
from MLSystem.gui.layout import frame, short_time
from MLSystem.records import ExperimentStatus

PER_PAGE = 50
FIRST_PAGE_WAIT = 2.0  # seconds the served page waits for its rows (NiceGUI's own limit is 3 s)
LOADING, EMPTY = "Loading experiments...", "No experiments yet: queue one from Add job"
COLUMNS = [
    {"name": "id", "label": "ID", "field": "id", "align": "left"},
    {"name": "dataset", "label": "Dataset", "field": "dataset", "align": "left"},
    {"name": "model", "label": "Model", "field": "model", "align": "left"},
    {"name": "adapter", "label": "Adapter", "field": "adapter", "align": "left"},
    {"name": "status", "label": "Status", "field": "status", "align": "left"},
    {"name": "epochs", "label": "Epochs", "field": "epochs"},
    {"name": "best", "label": "Best metrics", "field": "best", "align": "left"},
    {"name": "created", "label": "Created", "field": "created", "align": "left"},
    {"name": "updated", "label": "Updated", "field": "updated", "align": "left"},
]
STATUSES = [s.value for s in ExperimentStatus]


class ExperimentTable:
    def __init__(self, cockpit: Cockpit):
        self.cockpit = cockpit
        registry = cockpit.registry()
        self._busy = self._again = False
        with ui.row().classes("items-end gap-3"):
            self.query = ui.input("Filter (id, dataset, model, adapter, status)",
                                  on_change=self.filter_changed).props("clearable debounce=300").classes("w-72").mark("exp-filter")
            self.dataset = ui.select([None, *sorted(registry.datasets)], label="Dataset", value=None,
                                     on_change=self.filter_changed).classes("w-36").mark("exp-dataset")
            self.model = ui.select([None, *sorted(registry.models)], label="Model", value=None,
                                   on_change=self.filter_changed).classes("w-36").mark("exp-model")
            self.status = ui.select([None, *STATUSES], label="Status", value=None,
                                    on_change=self.filter_changed).classes("w-36").mark("exp-status")
            self.sort = ui.select(list(SORT_KEYS), label="Sort by", value="updated",
                                  on_change=self.filter_changed).classes("w-36").mark("exp-sort")
            self.descending = ui.switch("Descending", value=True, on_change=self.filter_changed).mark("exp-desc")
        with ui.row().classes("items-center gap-3"):
            self.count = ui.label().mark("exp-count")
            # Tick rows (kept across pages and filters) and compare them side by side.
            self.compare = ui.button("Compare selected", icon="compare_arrows", on_click=self.open_compare).props(
                "dense no-caps").mark("exp-compare")
            self.compare.disable()
        self.table = ui.table(columns=COLUMNS, rows=[], row_key="id", selection="multiple",
                              on_select=self.selection_changed).classes("w-full").props(
            "dense flat :rows-per-page-options=[0] hide-pagination loading").mark("exp-table")
        self.table.props(f'no-data-label="{LOADING}"')
        self.chosen: list[str] = []
        self.table.add_slot("body-cell-id", r'''
            <q-td :props="props"><a :href="'/experiments/' + props.value" class="font-mono text-blue-700">{{ props.value }}</a></q-td>''')
        self.table.on("rowClick", lambda e: ui.navigate.to(f"/experiments/{e.args[1]['id']}"))
        # max-pages: 2,000 page buttons (100,000 experiments) would cost the browser seconds
        self.pagination = ui.pagination(1, 1, direction_links=True, on_change=self.reload).props(
            "max-pages=9 boundary-numbers").mark("exp-pages")

    def selection_changed(self, e) -> None:
        shown = {r["id"] for r in self.table.rows}
        picked = {r["id"] for r in self.table.selected}
        self.chosen = [i for i in self.chosen if i not in shown or i in picked] + \
            [r["id"] for r in self.table.selected if r["id"] not in self.chosen]
        self.compare.text = f"Compare selected ({len(self.chosen)})" if self.chosen else "Compare selected"
        self.compare.enable() if len(self.chosen) >= 2 else self.compare.disable()

    def open_compare(self) -> None:
        ui.navigate.to("/compare?ids=" + ",".join(self.chosen))

    async def filter_changed(self) -> None:
        if self.pagination.value != 1:
            self.pagination.value = 1  # its on_change reloads
        else:
            await self.reload()

    async def reload(self) -> None:
        """Fetch the current page; a change made while a fetch runs is fetched right after it."""
        self._again = True
        if self._busy:
            return
        self._busy = True
        try:
            while self._again:
                self._again = False
                page = await run.io_bound(self.cockpit.experiments.page, query=self.query.value or "",
                                          dataset=self.dataset.value, model=self.model.value,
                                          status=self.status.value, sort=self.sort.value,
                                          descending=self.descending.value, page=self.pagination.value or 1,
                                          per_page=PER_PAGE)
                if page is None:
                    return
                self._show(page)
        finally:
            self._busy = False

    def show_building(self, first: asyncio.Task) -> bool:
        """While the first listing waits for the index to be built: how many folders are read.
        False once the listing is there (the caller's timer stops)."""
        if first.done():
            return False
        if progress := self.cockpit.experiments.building():
            done, total = progress
            self.count.text = f"Indexing experiment folders: {done:,} of {total:,} (once per project)"
        return True

    def _show(self, page) -> None:
        self.pagination.max = page.pages
        for r in page.rows:
            r["created"], r["updated"] = short_time(r["created"]), short_time(r["updated"])
        self.table.rows = page.rows
        self.table.props(f'no-data-label="{EMPTY}"', remove="loading")
        self.table.selected = [r for r in page.rows if r["id"] in self.chosen]
        self.table.update()
        self.count.text = f"{page.total} experiment{'s' if page.total != 1 else ''}"


def register(cockpit: Cockpit) -> None:
    @ui.page("/experiments")
    async def experiments_page() -> None:
        with frame("Experiments"):
            table = ExperimentTable(cockpit)
        first = background_tasks.create(table.reload(), name="experiments: first page")  # kept referenced
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(asyncio.shield(first), FIRST_PAGE_WAIT)  # read at call time (tests)
        if not first.done():  # a first build of the index (many folders to read): say how far it is
            ticker = ui.timer(0.5, lambda: table.show_building(first) or ticker.cancel())
        # Created only now: a timer waits for the browser's connection, and NiceGUI serves a page
        # as soon as anything waits for that, which would send it before its rows.
        ui.timer(5.0, table.reload)  # statuses and new experiments appear without a reload
