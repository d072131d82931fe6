"""Page ``/live``: the running job — progress, live loss/lr charts across resumes, metrics, log, stop.

``/live?experiment=ID`` follows one experiment instead of whatever runs; with several jobs running
(runner slots) a picker chooses which one to follow. A 0.5 s timer takes the new events from the
cockpit's event broker (the stream of ``/api/ws``; ``gui.live.LiveReader``) and pushes them to the
page; no tab reads the training files on its own.
"""

from __future__ import annotations

from typing import Any

from nicegui import run, ui

from MLSystem.errors import MLSystemError
from MLSystem.gui import charts, validate
from MLSystem.gui.context import Cockpit
from MLSystem.gui.layout import frame
from MLSystem.gui.live import LiveReader, LiveUpdate, sample_pairs
from MLSystem.gui.series import LiveSeries
from MLSystem.records import Action
from MLSystem.scheduler import Placement

TICK_S = 0.5
LOG_LINES = 500


def resume_text(events: list[dict[str, Any]]) -> str:
    """'resumed from epoch 3 (step 189)' for the latest run, '' for a run that started fresh."""
    if not events or events[-1].get("event") == Action.NEW:
        return ""
    e = events[-1]
    verb = {Action.RESUME: "resumed", Action.EXTEND: "extended"}.get(e.get("event"), str(e.get("event")))
    return f"{verb} from epoch {e.get('epoch', '?')} (step {e.get('step', '?')})"


class LivePanel:
    def __init__(self, cockpit: Cockpit, experiment: str | None):
        self.cockpit = cockpit
        self.reader = LiveReader(cockpit, experiment)
        self._busy = False
        self._choices: dict[str, str] = {}
        self._quiet = False
        with ui.row().classes("items-center gap-3"):
            # Several slots: which running job to follow (a choice pins it, like ?experiment=ID).
            self.picker = ui.select({}, label="Follow", value=None, on_change=self.pick).props(
                "dense options-dense").classes("min-w-[18rem]").mark("live-picker")
            self.picker.set_visibility(False)
            self.title = ui.label("Waiting for a running job…").classes("text-lg").mark("live-title")
            self.resume = ui.badge("", color="orange").mark("live-resume")
            self.resume.set_visibility(False)
            self.stop_button = ui.button("Stop (checkpoint kept)", icon="stop", color="negative",
                                         on_click=self.stop).mark("live-stop")
            self.stop_button.set_visibility(False)
        with ui.grid(columns=2).classes("w-full gap-2"):
            with ui.column().classes("gap-0"):
                self.epoch_label = ui.label("Epoch –").mark("live-epoch")
                self.epoch_bar = ui.linear_progress(0, show_value=False).props("size=12px")
            with ui.column().classes("gap-0"):
                self.step_label = ui.label("Step –").mark("live-step")
                self.step_bar = ui.linear_progress(0, show_value=False).props("size=12px")
        with ui.grid(columns=2).classes("w-full gap-2"):
            self.loss_chart = ui.echart(charts.loss_options(self._empty())).classes("h-72").mark("loss-chart")
            self.lr_chart = ui.echart(charts.lr_options(self._empty())).classes("h-72").mark("lr-chart")
        ui.label("Validation metrics per epoch").classes("font-semibold")
        self.metrics_table = ui.table(columns=[], rows=[], row_key="epoch").classes("w-full").props(
            "dense flat").mark("live-metrics")
        self.samples_box = ui.column().classes("w-full gap-0").mark("live-samples")
        ui.label("Log").classes("font-semibold")
        self.log = ui.log(max_lines=LOG_LINES).classes("w-full h-64 font-mono text-xs").mark("live-log")
        ui.timer(TICK_S, self.tick)

    @staticmethod
    def _empty():
        return LiveSeries()

    async def tick(self) -> None:
        if self._busy:  # a slow disk: never stack reads
            return
        self._busy = True
        try:
            events = await self.reader.events()
            self.apply(await run.io_bound(self.reader.poll, events))
        finally:
            self._busy = False

    def pick(self, e: Any) -> None:
        if self._quiet:  # the page itself showed what it follows: not a choice
            return
        if e.value and e.value != self.reader.fixed:
            self.reader.fixed = e.value  # the next tick follows it (and resets the view)

    def _picker(self, u: LiveUpdate) -> None:
        choices = {}
        for j in u.running:
            where = Placement.from_dict(j.placement)
            if j.experiment_id:
                choices[j.experiment_id] = (f"{where.describe()} · " if where else "") + f"{j.id} · {j.experiment_id}"
        if self.reader.fixed and self.reader.fixed not in choices:
            choices[self.reader.fixed] = f"experiment {self.reader.fixed} (not running)"
        self._quiet = True
        try:
            if choices != self._choices:
                self._choices = choices
                self.picker.set_options(choices, value=u.experiment_id if u.experiment_id in choices else None)
            elif u.experiment_id in choices and self.picker.value != u.experiment_id:
                self.picker.value = u.experiment_id
        finally:
            self._quiet = False
        self.picker.set_visibility(len(choices) > 1 or bool(self.reader.fixed and len(u.running) > 1))

    def apply(self, u: LiveUpdate) -> None:
        self._picker(u)
        if u.reset:
            self.log.clear()
            self.samples_box.clear()
        if u.experiment_id:
            where = f"job {u.job.id} · " if u.job else ("no job running · last: " if not self.reader.fixed else "")
            self.title.text = f"{where}experiment {u.experiment_id}"
        self.stop_button.set_visibility(u.job is not None)
        series = self.reader.series
        if u.metrics_changed or u.reset:
            charts.set_series(self.loss_chart.options, charts.loss_options(series))
            charts.set_series(self.lr_chart.options, charts.lr_options(series))
            self.loss_chart.update()
            self.lr_chart.update()
            self._metrics_table(series)
            text = resume_text(series.events)
            self.resume.text = text
            self.resume.set_visibility(bool(text))
        if u.progress:
            self._progress(u.progress)
        if u.log_lines:
            for line in u.log_lines[-LOG_LINES:]:
                self.log.push(line)
        if u.samples:
            self._samples(u.samples[-1])

    def _progress(self, p: dict[str, Any]) -> None:
        epoch, max_epochs = p.get("epoch") or 0, p.get("max_epochs") or 0
        batch, batches = p.get("batch") or 0, p.get("batches") or 0
        self.epoch_label.text = f"Epoch {epoch}/{max_epochs}"
        self.epoch_bar.value = round(epoch / max_epochs, 4) if max_epochs else 0
        loss = p.get("loss")
        self.step_label.text = (f"Step {batch}/{batches if batches and batches > 0 else '?'} in epoch"
                                f" · global step {p.get('step', '?')}" + (f" · loss {loss:.4f}" if loss is not None else ""))
        self.step_bar.value = round(batch / batches, 4) if batches and batches > 0 else 0

    def _metrics_table(self, series) -> None:
        keys = series.epoch_keys()
        self.metrics_table.columns = [{"name": "epoch", "label": "epoch", "field": "epoch"}] + [
            {"name": k, "label": k, "field": k} for k in keys]
        self.metrics_table.rows = [{"epoch": r["epoch"] + 1, **{k: (f"{r[k]:.4g}" if isinstance(r.get(k), float) else
                                                                  r.get(k, "")) for k in keys}}
                                   for r in series.epochs[-200:]]
        self.metrics_table.update()

    def _samples(self, row: dict[str, Any]) -> None:
        self.samples_box.clear()
        pairs = sample_pairs(row)
        if not pairs:
            return
        with self.samples_box:
            ui.label(f"Sample transcripts (epoch {row.get('epoch', '?')})").classes("font-semibold")
            for ref, hyp in pairs[:10]:
                ui.label(f"REF: {ref}").classes("font-mono text-sm")
                ui.label(f"HYP: {hyp}").classes("font-mono text-sm text-blue-700 mb-1")

    async def stop(self) -> None:
        job = self.reader.job_id
        try:
            if job:
                _, message = await run.io_bound(self.cockpit.queue().request_stop, job)
            else:
                raise MLSystemError("no running job to stop")
        except MLSystemError as exc:
            ui.notify(str(exc), type="negative")
            return
        ui.notify(message, type="positive")


def register(cockpit: Cockpit) -> None:
    @ui.page("/live")
    def live_page(experiment: str | None = None) -> None:
        with frame("Live training"):
            if experiment:
                try:
                    validate.experiment_ref(experiment)
                except MLSystemError as exc:
                    ui.label(str(exc)).classes("text-negative")
                    return
            LivePanel(cockpit, experiment)
