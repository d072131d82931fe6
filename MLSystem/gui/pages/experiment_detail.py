"""Page ``/experiments/{id}``: one experiment — config, diff, charts, checkpoints, lineage, plots, actions."""

from __future__ import annotations

import json
from typing import Any

from nicegui import run, ui

from MLSystem.errors import MLSystemError
from MLSystem.experiment_store import live_status
from MLSystem.gui import actions, charts, validate
from MLSystem.gui.context import Cockpit
from MLSystem.gui.layout import frame, notify_report, short_time, text_block
from MLSystem.gui.live import SAMPLES_FILE, sample_pairs
from MLSystem.records import ExperimentRecord, TrainingState
from MLSystem.submit import submit_plot
from MLSystem.utils.atomic import read_json


def _load(cockpit: Cockpit, ref: str) -> dict[str, Any]:
    """Blocking: everything the page shows, read once."""
    eid, record = actions.experiment_record(cockpit.paths, validate.experiment_ref(ref))
    exp = cockpit.paths.experiment(eid)
    samples = []
    if (exp.dir / SAMPLES_FILE).is_file():
        lines = (exp.dir / SAMPLES_FILE).read_text(encoding="utf-8", errors="replace").splitlines()
        for line in lines[-1:]:
            try:
                samples = sample_pairs(json.loads(line))
            except ValueError:
                samples = []
    return {"id": eid, "record": record, "status": live_status(exp, record), "state": actions.training_state(exp),
            "config": exp.resolved_config.read_text(encoding="utf-8") if exp.resolved_config.is_file() else "",
            "series": cockpit.experiments.series(eid), "children": cockpit.experiments.children(eid),
            "checkpoints": [r.as_dict() for r in cockpit.checkpoints.list(experiment=eid)],
            "plots": (read_json(exp.plots / "index.json") or {}).get("plots", []), "samples": samples}


def config_diff(a: ExperimentRecord, b: ExperimentRecord) -> list[dict[str, Any]]:
    """Rows ``{key, this, other}`` where the selection or identity values of two experiments differ."""
    rows = []
    for key in ("dataset", "model", "adapter"):
        if getattr(a, key) != getattr(b, key):
            rows.append({"key": key, "this": getattr(a, key), "other": getattr(b, key)})
    pa = {**a.identity_values, "init_from": a.identity.get("init_from")}
    pb = {**b.identity_values, "init_from": b.identity.get("init_from")}
    for key in sorted(set(pa) | set(pb)):
        if pa.get(key) != pb.get(key):
            rows.append({"key": key, "this": str(pa.get(key, "–")), "other": str(pb.get(key, "–"))})
    return rows


class ExperimentDetail:
    def __init__(self, cockpit: Cockpit, data: dict[str, Any]):
        self.cockpit = cockpit
        self.eid = data["id"]
        record, state = data["record"], data["state"] or TrainingState(
            epochs_completed=int(data["record"].epochs_done or 0))
        self._summary(record, data["status"], state, data["children"])
        self._actions(record)
        series = data["series"]
        with ui.grid(columns=3).classes("w-full gap-2"):
            ui.echart(charts.loss_options(series)).classes("h-64").mark("detail-loss")
            ui.echart(charts.lr_options(series)).classes("h-64").mark("detail-lr")
            ui.echart(charts.epoch_metric_options(series)).classes("h-64").mark("detail-val")
        if data["samples"]:
            with ui.expansion("Sample transcripts (last epoch)", value=True).classes("w-full"):
                for ref, hyp in data["samples"][:10]:
                    ui.label(f"REF: {ref}").classes("font-mono text-sm")
                    ui.label(f"HYP: {hyp}").classes("font-mono text-sm text-blue-700 mb-1")
        self._checkpoints(data["checkpoints"])
        self._plots(data["plots"])
        with ui.expansion("Resolved config (config.yaml)").classes("w-full").mark("detail-config"):
            text_block(data["config"] or "(not written yet)")
        self._diff(record)

    def _summary(self, record: ExperimentRecord, status: str, state: TrainingState, children: list[str]) -> None:
        with ui.card().classes("w-full"):
            with ui.row().classes("items-center gap-4"):
                ui.label(f"{record.dataset} / {record.model} / {record.adapter}").classes("text-lg")
                ui.badge(status or "?").mark("detail-status")
                target = record.max_epochs if record.max_epochs is not None else "?"
                ui.label(f"epochs {state.epochs_completed}/{target} · step {state.global_step}")
                ui.label(f"created {short_time(record.created)} · updated {short_time(record.updated)}")
            with ui.row().classes("items-center gap-2").mark("detail-lineage"):
                ui.label("Lineage:")
                parent = record.parent
                if parent:
                    ui.label("parent")
                    ui.link(parent, f"/experiments/{parent}").classes("font-mono")
                    init = record.identity.get("init_from")
                    if init:
                        ui.label(f"(warm start from {init})")
                else:
                    ui.label("no parent")
                ui.label("· warm-started children:" if children else "· no warm-started children")
                for child in children[:20]:
                    ui.link(child, f"/experiments/{child}").classes("font-mono")
            runs = record.runs()
            if runs:
                ui.table(columns=[{"name": k, "label": k, "field": k} for k in
                                  ("kind", "from_epoch", "to_epoch", "reached_epoch", "status", "started", "ended")],
                         rows=[{**s.to_dict(), "started": short_time(s.started), "ended": short_time(s.ended)}
                               for s in runs[-20:]]).props("dense flat").classes("w-full")
            if record.error:
                ui.label(f"error: {record.error}").classes("text-negative")

    def _actions(self, record: ExperimentRecord) -> None:
        target = int(record.max_epochs or 1)
        with ui.row().classes("items-end gap-3"):
            self.epochs = ui.number("Total epochs", value=target + 5, min=1, precision=0).classes("w-32").mark(
                "detail-epochs")
            ui.button("Add epochs", icon="add", on_click=self.add_epochs).mark("detail-add-epochs")
            ui.button("Resume", icon="replay", on_click=lambda: self.queue_continue(None)).mark("detail-resume")
            ui.button("Run plot job", icon="insights", on_click=self.run_plots).mark("detail-plot")
            ui.button("Live view", icon="monitor_heart",
                      on_click=lambda: ui.navigate.to(f"/live?experiment={self.eid}")).props("flat")

    async def add_epochs(self) -> None:
        await self.queue_continue(int(self.epochs.value or 1))

    async def queue_continue(self, max_epochs: int | None) -> None:
        try:
            report = await run.io_bound(actions.queue_continue, self.cockpit.queue(), self.eid, max_epochs)
        except MLSystemError as exc:
            ui.notify(str(exc), type="negative", multi_line=True)
            return
        notify_report(report)

    async def run_plots(self) -> None:
        try:
            job = await run.io_bound(submit_plot, self.eid, queue=self.cockpit.queue())
        except MLSystemError as exc:
            ui.notify(str(exc), type="negative")
            return
        ui.notify(f"queued plot job {job.id}", type="positive")

    def _checkpoints(self, rows: list[dict[str, Any]]) -> None:
        ui.label(f"Checkpoints ({len(rows)})").classes("font-semibold")
        table = ui.table(columns=[{"name": k, "label": k, "field": k, "align": "left"} for k in
                                  ("name", "epoch", "size_mb", "created")], rows=rows, row_key="key").props(
            "dense flat").classes("w-full").mark("detail-checkpoints")
        table.add_slot("body-cell-name", r'''
            <q-td :props="props"><a :href="'/checkpoints?experiment=' + props.row.experiment_id + '&checkpoint=' + props.value"
              class="text-blue-700">{{ props.value }}</a> (warm start…)</q-td>''')

    def _plots(self, plots: list[dict[str, Any]]) -> None:
        with ui.row().classes("items-center gap-2"):
            ui.label(f"Plots ({len(plots)})").classes("font-semibold")
        with ui.row().classes("w-full gap-3").mark("detail-plots"):
            if not plots:
                ui.label("No plots yet: “Run plot job” queues python -m MLSystem.execute_plot.").classes("text-gray-500")
            for p in plots:
                with ui.card().classes("w-80"):
                    ui.label(f"{p.get('layer', '?')} · {p.get('title') or p.get('name')}").classes("text-sm")
                    if p.get("ok") and p.get("file"):
                        ui.image(f"/api/experiments/{self.eid}/files/{p['file']}").classes("w-full")
                    else:
                        ui.label(f"failed: {p.get('error')}").classes("text-negative text-sm")
                    ui.label(f"checkpoint {p.get('checkpoint') or '-'} · {short_time(p.get('created'))}").classes(
                        "text-xs text-gray-500")

    def _diff(self, record: ExperimentRecord) -> None:
        with ui.expansion("Compare with another experiment").classes("w-full"):
            with ui.row().classes("items-end gap-2"):
                other = ui.input("Other experiment ID (or prefix)").classes("w-64").mark("diff-other")
                box = ui.column().classes("w-full")

                async def compare() -> None:
                    try:
                        oid, ometa = await run.io_bound(actions.experiment_record, self.cockpit.paths,
                                                        validate.experiment_ref((other.value or "").strip()))
                    except MLSystemError as exc:
                        ui.notify(str(exc), type="negative")
                        return
                    rows = config_diff(record, ometa)
                    box.clear()
                    with box:
                        ui.label(f"{self.eid} vs {oid}: {len(rows)} difference{'s' if len(rows) != 1 else ''}")
                        ui.table(columns=[{"name": "key", "label": "key", "field": "key", "align": "left"},
                                          {"name": "this", "label": self.eid, "field": "this", "align": "left"},
                                          {"name": "other", "label": oid, "field": "other", "align": "left"}],
                                 rows=rows, row_key="key").props("dense flat").mark("diff-table")

                ui.button("Compare", on_click=compare).mark("diff-compare")


def register(cockpit: Cockpit) -> None:
    @ui.page("/experiments/{experiment_id}")
    async def experiment_page(experiment_id: str) -> None:
        with frame(f"Experiment {experiment_id}"):
            try:
                data = await run.io_bound(_load, cockpit, experiment_id)
            except MLSystemError as exc:
                ui.label(str(exc)).classes("text-negative").mark("detail-error")
                return
            if data is not None:
                ExperimentDetail(cockpit, data)
