"""Page ``/``: configure and add jobs (the generated form with its live preview)."""

from __future__ import annotations

from nicegui import run, ui

from MLSystem.errors import MLSystemError
from MLSystem.gui.config_form import ConfigForm
from MLSystem.gui.context import Cockpit
from MLSystem.gui.layout import frame
from MLSystem.submit import submit


class AddJobPanel:
    def __init__(self, cockpit: Cockpit):
        self.cockpit = cockpit
        self.form = ConfigForm(cockpit)
        with ui.row().classes("items-center gap-4"):
            self.priority = ui.number("Priority (higher runs first)", value=0, precision=0).classes("w-48").mark("priority")
            self.held = ui.checkbox("Add on hold").mark("held")
            self.force = ui.checkbox("Force (even if pending, running or complete)").mark("force")
            ui.button("Add job", icon="add", on_click=self.add).mark("add-job")
        self.result = ui.column().classes("gap-1").mark("add-result")

    async def add(self) -> None:
        preview = await self.form.refresh_preview()
        if preview.problems:
            ui.notify("Fix the highlighted values first", type="negative")
            return
        try:
            report = await run.io_bound(submit, self.form.overrides(), priority=int(self.priority.value or 0),
                                        held=self.held.value, force=self.force.value, queue=self.cockpit.queue())
        except MLSystemError as exc:
            ui.notify(str(exc), type="negative", multi_line=True)
            return
        self.form.mark_dirty()  # the decision changed (the experiment is now queued)
        self.result.clear()
        with self.result:
            for q in report.queued:
                ui.label(f"queued {q['job']}: {q['message']}").classes("text-positive")
            for s in report.skipped:
                ui.label(f"skipped {s['experiment_id']}: {s['reason']}").classes("text-warning")
            ui.link("Open the queue", "/queue")
        n = len(report.queued)
        ui.notify(f"queued {n} job{'s' if n != 1 else ''}" + (f", skipped {len(report.skipped)}" if report.skipped else ""),
                  type="positive" if n else "warning")


def register(cockpit: Cockpit) -> None:
    @ui.page("/")
    def add_job_page() -> None:
        with frame("Add job"):
            AddJobPanel(cockpit)
