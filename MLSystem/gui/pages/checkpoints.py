"""Page ``/checkpoints``: filter checkpoints by model and dataset, inspect one, and queue a job that
warm-starts a new experiment from it (the parent is recorded; the original is never rewritten)."""

from __future__ import annotations

from typing import Any

from nicegui import run, ui

from MLSystem.errors import MLSystemError
from MLSystem.gui import actions
from MLSystem.gui.config_form import compute_preview
from MLSystem.gui.context import Cockpit
from MLSystem.gui.layout import action_color, frame, notify_report, short_time
from MLSystem.submit import submit

PER_PAGE = 50
LIST_LIMIT = 5000  # newest experiments first; a filter narrows it
COLUMNS = [{"name": k, "label": label, "field": k, "align": "left"} for k, label in
           (("name", "Checkpoint"), ("experiment_id", "Experiment"), ("model", "Model"), ("dataset", "Dataset"),
            ("epoch", "Epoch"), ("size_mb", "Size (MB)"), ("created", "Created"))]


class CheckpointPanel:
    def __init__(self, cockpit: Cockpit, experiment: str | None, checkpoint: str | None):
        self.cockpit = cockpit
        self.rows: list[dict[str, Any]] = []
        self._generation = 0  # each reload's number: an older, slower listing never overwrites a newer one
        self.wanted = f"{experiment}/{checkpoint}" if experiment and checkpoint else None
        registry = cockpit.registry()
        with ui.row().classes("items-end gap-3"):
            self.model = ui.select([None, *sorted(registry.models)], label="Model", value=None,
                                   on_change=self.reload).classes("w-40").mark("ckpt-model")
            self.dataset = ui.select([None, *sorted(registry.datasets)], label="Dataset", value=None,
                                     on_change=self.reload).classes("w-40").mark("ckpt-dataset")
            self.experiment = ui.input("Experiment", value=experiment or "", on_change=self.reload).props(
                "debounce=400 clearable").classes("w-44").mark("ckpt-experiment")
        self.count = ui.label().mark("ckpt-count")
        self.table = ui.table(columns=COLUMNS, rows=[], row_key="key", selection="single",
                              on_select=self._table_selected).props("dense flat hide-pagination").classes(
            "w-full").mark("ckpt-table")
        self.pagination = ui.pagination(1, 1, direction_links=True, on_change=self.show_page).mark("ckpt-pages")
        with ui.card().classes("w-full"):
            ui.label("Warm start from a checkpoint").classes("text-lg font-semibold")
            self.choice = ui.select({}, label="Checkpoint", on_change=self.selected).classes("w-96").mark("ckpt-choice")
            self.details = ui.column().classes("gap-0").mark("ckpt-details")
            with ui.row().classes("items-end gap-3"):
                self.max_epochs = ui.number("Epochs to train", value=3, min=1, precision=0,
                                            on_change=self.update_preview).classes("w-36").mark(
                    "ckpt-epochs")
                self.batch_size = ui.number("Batch size", value=None, min=1, precision=0,
                                            on_change=self.update_preview).classes("w-32").mark(
                    "ckpt-batch")
                self.light = ui.switch("Light mode", on_change=self.update_preview).mark("ckpt-light")
                self.limit = ui.number("Sample limit", value=256, min=1, precision=0,
                                       on_change=self.update_preview).classes("w-32").mark(
                    "ckpt-limit").bind_visibility_from(self.light, "value")
            self.preview = ui.column().classes("gap-0").mark("ckpt-preview")
            ui.button("Queue warm-start job", icon="replay", on_click=self.queue_job).mark("ckpt-queue")
        ui.timer(0.01, self.reload, once=True)

    async def reload(self) -> None:
        self._generation += 1
        generation = self._generation
        exp = (self.experiment.value or "").strip() or None
        try:
            if exp:
                exp = await run.io_bound(lambda: actions.experiment_record(self.cockpit.paths, exp)[0])
        except MLSystemError as exc:
            self.count.text = str(exc)
            return
        # The first page's checkpoints first (a few dozen folders), then the whole listing (up to
        # LIST_LIMIT: ~2,500 folders to scan on a first visit, a second or more): the table is
        # on screen without waiting for the count and the other pages.
        for limit in (PER_PAGE + 1, LIST_LIMIT):
            rows = await run.io_bound(self.cockpit.checkpoints.list, model=self.model.value,
                                      dataset=self.dataset.value, experiment=exp, limit=limit)
            if rows is None or generation != self._generation:  # the visitor left, or changed the filter
                return
            self._show([r.as_dict() for r in rows], complete=len(rows) < limit or limit == LIST_LIMIT,
                       first=limit != LIST_LIMIT)
            if len(rows) < limit:
                break

    def _show(self, rows: list[dict[str, Any]], *, complete: bool, first: bool) -> None:
        """Show a listing; ``first``: a new one (page 1), else the rest of the one shown (the page stays)."""
        for r in rows:
            r["created"] = short_time(r["created"])
        self.rows = rows
        n = len(rows)
        self.count.text = (f"{n} checkpoint{'s' if n != 1 else ''}" + (
            " (the first ones: narrow the filter)" if n >= LIST_LIMIT else "")) if complete else \
            f"{PER_PAGE}+ checkpoints (listing the rest…)"
        self.pagination.max = max(1, -(-n // PER_PAGE))
        if first or self.pagination.value > self.pagination.max:
            self.pagination.value = 1
        self.show_page()

    def show_page(self) -> None:
        start = ((self.pagination.value or 1) - 1) * PER_PAGE
        shown = self.rows[start: start + PER_PAGE]
        self.table.rows = shown
        self.table.update()
        options = {r["key"]: f"{r['experiment_id']} / {r['name']} (epoch {r['epoch']})" for r in shown}
        if self.wanted and self.wanted not in options:
            hit = next((r for r in self.rows if r["key"] == self.wanted), None)
            if hit:
                options[hit["key"]] = f"{hit['experiment_id']} / {hit['name']} (epoch {hit['epoch']})"
        self.choice.set_options(options, value=self.wanted if self.wanted in options else None)

    def _table_selected(self, e: Any) -> None:
        if e.selection:
            self.wanted = e.selection[0]["key"]
            self.choice.set_options({**self.choice.options, self.wanted: self.wanted}, value=self.wanted)

    def _overrides(self) -> list[str]:
        eid, name = (self.choice.value or "/").split("/", 1)
        return actions.warm_start_overrides(
            self.cockpit.paths, eid, name, max_epochs=int(self.max_epochs.value or 1),
            batch_size=int(self.batch_size.value) if self.batch_size.value else None,
            limit_samples=int(self.limit.value or 0) if self.light.value else None)

    async def selected(self) -> None:
        self.wanted = self.choice.value
        row = next((r for r in self.rows if r["key"] == self.choice.value), None)
        self.details.clear()
        if row is None:
            return
        with self.details:
            ui.label(f"{row['name']} of experiment {row['experiment_id']}: {row['model']} on {row['dataset']} "
                     f"(adapter {row['adapter']}), epoch {row['epoch']}, {row['size_mb']} MB, {row['created']}")
            ui.link("Open the experiment", f"/experiments/{row['experiment_id']}")
        await self.update_preview()

    async def update_preview(self) -> None:
        self.preview.clear()
        if not self.choice.value:
            return
        try:
            args = await run.io_bound(self._overrides)
            preview = await run.io_bound(compute_preview, self.cockpit, args, False)
        except MLSystemError as exc:
            with self.preview:
                ui.label(str(exc)).classes("text-negative")
            return
        with self.preview:
            for problem in preview.problems:
                ui.label(problem).classes("text-negative")
            for p in preview.plans:
                with ui.row().classes("items-center gap-2"):
                    ui.badge(p.action, color=action_color(p.action))
                    ui.label(p.message)
                ui.label(" ".join(p.args)).classes("font-mono text-xs")

    async def queue_job(self) -> None:
        if not self.choice.value:
            ui.notify("choose a checkpoint first", type="warning")
            return
        try:
            args = await run.io_bound(self._overrides)
            report = await run.io_bound(submit, args, queue=self.cockpit.queue())
        except MLSystemError as exc:
            ui.notify(str(exc), type="negative", multi_line=True)
            return
        notify_report(report)
        await self.update_preview()


def register(cockpit: Cockpit) -> None:
    @ui.page("/checkpoints")
    def checkpoints_page(experiment: str | None = None, checkpoint: str | None = None) -> None:
        with frame("Checkpoints"):
            CheckpointPanel(cockpit, experiment, checkpoint)
