"""Page ``/queue``: the runner and every job; reorder, prioritise, edit, hold, stop, requeue, delete.

All operations are ``JobQueue`` / ``submit`` calls (the same lock as the CLI's), run in worker
threads. The view re-renders only when the queue changed (a signature of the job files).
"""

from __future__ import annotations

from typing import Any, Callable

from nicegui import run, ui

from MLSystem.errors import MLSystemError
from MLSystem.gui.actions import runner_status, start_runner
from MLSystem.gui.config_form import ConfigForm
from MLSystem.gui.context import Cockpit
from MLSystem.gui.layout import action_color, frame, short_time, text_block
from MLSystem.jobs import Job, Kind, Status
from MLSystem.engine_view import describe
from MLSystem.scheduler import Placement
from MLSystem.submit import edit_overrides
from MLSystem.utils.clock import format_seconds
from MLSystem.utils.tail import read_range

PER_PAGE = 25  # each row carries ~12 controls: a longer page costs the browser more than paging does
DONE = (Status.FAILED, Status.STOPPED, Status.FINISHED)
BADGE_COLOR = {Status.FAILED: "negative", Status.STOPPED: "orange", Status.FINISHED: "positive"}
LOG_VIEW_BYTES = 1 << 20


def _snapshot(cockpit: Cockpit) -> dict[str, Any]:
    """Blocking: jobs, ETAs and runner state in one read."""
    queue = cockpit.queue()
    jobs = queue.list()
    # The ETAs as cached (recomputed in the background when stale): jobs show before their ETAs.
    return {"jobs": jobs, "etas": cockpit.etas([j for j in jobs if j.status in (Status.PENDING, Status.RUNNING)],
                                               wait=False),
            "runner": runner_status(queue)}


def _signature(snap: dict[str, Any]) -> tuple:
    jobs = tuple((j.id, j.status, j.priority, j.position, j.held, j.note, j.stop_requested, j.pid, str(j.placement))
                 for j in snap["jobs"])
    r = snap["runner"]
    return jobs, str(r["runner"]), r["drain"], frozenset(snap["etas"])  # jobs that got their ETA


def _read_log(cockpit: Cockpit, job_id: str) -> str:
    """The last ``LOG_VIEW_BYTES`` of a job's log (the API's log endpoint reads it the same way)."""
    try:
        text, _, size = read_range(cockpit.queue().paths.log(job_id), -LOG_VIEW_BYTES, LOG_VIEW_BYTES)
    except FileNotFoundError:
        return "(no log)"
    return (f"… (first {size - LOG_VIEW_BYTES} bytes not shown)\n" if size > LOG_VIEW_BYTES else "") + text


class QueuePanel:
    def __init__(self, cockpit: Cockpit):
        self.cockpit = cockpit
        self.snap: dict[str, Any] | None = None
        self.sig: tuple | None = None
        self.page = {"pending": 1, "done": 1}
        self.start_options: dict[str, Any] = {"slots": None, "gpus": "", "slots_per_gpu": 1}  # kept across renders
        self.dialogs = ui.element()  # outside the body, so a re-render does not close an open dialog
        self.body = ui.column().classes("w-full gap-3")
        ui.timer(1.0, self.poll)
        ui.timer(0.01, self.poll, once=True)

    async def poll(self, force: bool = False) -> None:
        snap = await run.io_bound(_snapshot, self.cockpit)
        if snap is None:
            return
        sig = _signature(snap)
        if force or sig != self.sig:
            self.snap, self.sig = snap, sig
            self.render()

    async def act(self, fn: Callable, *args: Any, ok: str | None = None, **kwargs: Any) -> Any:
        """Run a queue operation off the UI loop; report its error, refresh the view."""
        try:
            result = await run.io_bound(fn, *args, **kwargs)
        except MLSystemError as exc:
            ui.notify(str(exc), type="negative", multi_line=True)
            return None
        if ok:
            ui.notify(ok, type="positive")
        await self.poll(force=True)
        return result

    # -- rendering -------------------------------------------------------------------------------
    def render(self) -> None:
        assert self.snap is not None
        jobs: list[Job] = self.snap["jobs"]
        self.body.clear()
        with self.body:
            self._runner_card()
            running = [j for j in jobs if j.status == Status.RUNNING.value]
            pending = [j for j in jobs if j.status == Status.PENDING.value]
            done = [j for j in jobs if j.status in DONE]
            ui.label(f"Running ({len(running)})").classes("text-lg font-semibold")
            for job in running:
                self._running_row(job)
            ui.label(f"Pending ({len(pending)}) — run order").classes("text-lg font-semibold")
            self._paged(pending, "pending", self._pending_row)
            ui.label(f"Finished, failed, stopped ({len(done)})").classes("text-lg font-semibold")
            self._paged(done, "done", self._done_row)

    def _paged(self, jobs: list[Job], key: str, row: Callable[[Job, int, list[Job]], None]) -> None:
        pages = max(1, -(-len(jobs) // PER_PAGE))
        self.page[key] = min(self.page[key], pages)
        start = (self.page[key] - 1) * PER_PAGE
        for n, job in enumerate(jobs[start: start + PER_PAGE], start + 1):
            row(job, n, jobs)
        if pages > 1:
            ui.pagination(1, pages, value=self.page[key], direction_links=True,
                          on_change=lambda e, k=key: self._goto(k, e.value)).mark(f"{key}-pages")

    def _goto(self, key: str, page: int) -> None:
        self.page[key] = page
        self.render()

    def _runner_card(self) -> None:
        r = self.snap["runner"] if self.snap else {}
        with ui.card().classes("w-full"), ui.row().classes("items-center gap-3"):
            active = r.get("runner")
            text = f"Runner: pid {active['pid']} on {active.get('host', '?')} since {short_time(active.get('since'))}" \
                if active else "Runner: not running"
            if r.get("summary"):
                text += f" — {r['summary']}"
            ui.label(text + (" — draining (finishes its running jobs, starts no more)" if r.get("drain") else "")
                     ).mark("runner-status")
            if not active:  # slot options of the runner to start (python -m MLSystem.runner --help)
                opts = self.start_options
                ui.number("Slots", value=opts["slots"], min=1, max=1024, step=1, format="%d",
                          placeholder="1 (or GPUs x per GPU)",
                          on_change=lambda e: opts.update(slots=e.value)).props("dense").classes("w-24").mark(
                    "runner-slots")
                ui.input("GPUs", value=opts["gpus"], placeholder="none / all / 0,1",
                         on_change=lambda e: opts.update(gpus=e.value)).props("dense").classes("w-28").mark(
                    "runner-gpus")
                ui.number("Per GPU", value=opts["slots_per_gpu"], min=1, max=64, step=1, format="%d",
                          on_change=lambda e: opts.update(slots_per_gpu=e.value)).props("dense").classes("w-20").mark(
                    "runner-per-gpu")
            ui.button("Start runner", icon="play_arrow", on_click=self.start_runner).props(
                "dense" + (" disable" if active else "")).mark("runner-start")
            if r.get("drain"):
                ui.button("Cancel drain", on_click=lambda: self.act(self.cockpit.queue().cancel_drain)).props("dense flat")
            else:
                ui.button("Drain", icon="hourglass_bottom", on_click=self.drain).props(
                    "dense flat" + ("" if active else " disable")).mark("runner-drain")

    async def start_runner(self) -> None:
        opts = self.start_options
        whole = {k: int(opts[k]) if opts[k] not in (None, "") else None for k in ("slots", "slots_per_gpu")}
        pid = await self.act(start_runner, self.cockpit.paths, gpus=(opts["gpus"] or "").strip() or None, **whole)
        if pid:
            ui.notify(f"runner started (pid {pid}); it exits when the queue is empty", type="positive")

    async def drain(self) -> None:
        await self.act(self.cockpit.queue().request_drain,
                       ok="the runner finishes its running jobs, starts no more, then exits")

    def _job_label(self, job: Job) -> None:
        ui.label(job.id).classes("font-mono")
        if job.experiment_id:
            ui.link(job.experiment_id, f"/experiments/{job.experiment_id}").classes("font-mono")
        ui.badge(job.action or job.kind, color=action_color(job.action))

    def _running_row(self, job: Job) -> None:
        with ui.row().classes("items-center gap-2 w-full").mark(f"job-{job.id}"):
            where = Placement.from_dict(job.placement)
            if job.engine:  # a cluster job: executor, engine job id and state (kept current by the runner)
                ui.badge(describe(job), color="primary").mark(f"engine-{job.id}")
            elif where is not None:
                ui.badge(where.describe(), color="primary").mark(f"slot-{job.id}")
            self._job_label(job)
            ui.label(f"{'' if job.engine else f'pid {job.pid} · '}since {short_time(job.started)} · {' '.join(job.args)}")
            if job.stop_requested:
                ui.badge("stop requested", color="orange")
            live = f"/live?experiment={job.experiment_id}" if job.experiment_id else "/live"
            ui.button("Live", icon="monitor_heart", on_click=lambda url=live: ui.navigate.to(url)).props("dense flat")
            ui.button("Stop", icon="stop", color="negative",
                      on_click=lambda j=job: self.act(self.cockpit.queue().request_stop, j.id,
                                                      ok="stop requested: it checkpoints and stops")).props(
                "dense").mark(f"stop-{job.id}")

    def _pending_row(self, job: Job, n: int, order: list[Job]) -> None:
        eta = self.snap["etas"].get(job.id) if self.snap else None
        when = "held" if job.held else (("≥" if eta and eta.lower_bound else "") + format_seconds(eta.start_in)
                                        if eta else "?")
        took = format_seconds(eta.duration) if eta and eta.duration is not None else "?"
        queue = self.cockpit.queue
        with ui.row().classes("items-center gap-2 w-full no-wrap").mark(f"job-{job.id}"):
            ui.label(f"{n}.").classes("w-8 text-right")
            self._job_label(job)
            ui.number(value=job.priority, precision=0, label="prio",
                      on_change=lambda e, j=job: e.value is not None and self.act(queue().set_priority, j.id, int(e.value))
                      ).props("dense debounce=600").classes("w-16").mark(f"priority-{job.id}")
            ui.label(f"starts in {when} · takes {took}").classes("text-sm w-44")
            ui.label(" ".join(job.args)).classes("text-sm font-mono truncate grow")
            if job.held:
                ui.badge("held", color="grey")
            if job.note.startswith("waiting"):
                ui.badge(job.note, color="orange")
            i = next(k for k, j in enumerate(order) if j.id == job.id)
            up = order[i - 1].id if i > 0 else None
            down = order[i + 1].id if i + 1 < len(order) else None
            ui.button(icon="arrow_upward", on_click=lambda j=job, o=up: self.act(queue().move, j.id, before=o)).props(
                "dense flat" + ("" if up else " disable")).mark(f"up-{job.id}")
            ui.button(icon="arrow_downward", on_click=lambda j=job, o=down: self.act(queue().move, j.id, after=o)).props(
                "dense flat" + ("" if down else " disable")).mark(f"down-{job.id}")
            ui.button("Next", on_click=lambda j=job: self.act(queue().run_next, j.id)).props("dense flat").mark(
                f"next-{job.id}")
            if job.held:
                ui.button("Release", on_click=lambda j=job: self.act(queue().release, j.id)).props("dense flat").mark(
                    f"release-{job.id}")
            else:
                ui.button("Hold", on_click=lambda j=job: self.act(queue().hold, j.id)).props("dense flat").mark(
                    f"hold-{job.id}")
            if job.kind == Kind.TRAIN:
                ui.button("Edit", on_click=lambda j=job: self.edit(j)).props("dense flat").mark(f"edit-{job.id}")
            ui.button(icon="delete", color="negative", on_click=lambda j=job: self.act(queue().delete, j.id)).props(
                "dense flat").mark(f"delete-{job.id}")

    def _done_row(self, job: Job, n: int, order: list[Job]) -> None:
        queue = self.cockpit.queue
        color = BADGE_COLOR[Status(job.status)]
        with ui.row().classes("items-center gap-2 w-full no-wrap").mark(f"job-{job.id}"):
            ui.badge(job.status, color=color)
            self._job_label(job)
            first = (job.error or job.note or "").strip().splitlines()
            ui.label(f"exit {job.exit_code} · {short_time(job.ended)} · {first[0][:120] if first else ''}").classes(
                "text-sm truncate grow")
            ui.button("Log", on_click=lambda j=job: self.show_log(j)).props("dense flat").mark(f"log-{job.id}")
            if job.status in (Status.FAILED, Status.STOPPED) and job.kind != Kind.INVALID:
                ui.button("Requeue", on_click=lambda j=job: self.act(queue().requeue, j.id, ok=f"requeued {j.id}")
                          ).props("dense flat").mark(f"requeue-{job.id}")
            ui.button(icon="delete", color="negative", on_click=lambda j=job: self.act(queue().delete, j.id)).props(
                "dense flat").mark(f"delete-{job.id}")

    # -- dialogs ---------------------------------------------------------------------------------
    async def show_log(self, job: Job) -> None:
        text = await run.io_bound(_read_log, self.cockpit, job.id)
        with self.dialogs, ui.dialog() as dialog, ui.card().classes("w-[90vw] max-w-none"):
            ui.label(f"{job.id} — {job.status}, exit {job.exit_code}").classes("font-semibold")
            if job.error:
                ui.label("Error summary").classes("font-semibold text-negative")
                text_block(job.error).mark("job-error")
            ui.label("Log").classes("font-semibold")
            text_block(text or "(empty)").classes("max-h-[60vh] overflow-auto").mark("job-log")
            ui.button("Close", on_click=dialog.close)
        dialog.open()

    def edit(self, job: Job) -> None:
        with self.dialogs, ui.dialog() as dialog, ui.card().classes("w-[90vw] max-w-none"):
            ui.label(f"Edit {job.id}").classes("text-lg font-semibold")
            form = ConfigForm(self.cockpit, initial=job.args, sweeps=False)

            async def save() -> None:
                preview = await form.refresh_preview()
                if preview.problems:
                    ui.notify("Fix the highlighted values first", type="negative")
                    return
                if await self.act(edit_overrides, self.cockpit.queue(), job.id, form.overrides(), replace=True,
                                  ok=f"saved {job.id}"):
                    dialog.close()

            with ui.row():
                ui.button("Save", icon="save", on_click=save).mark("edit-save")
                ui.button("Cancel", on_click=dialog.close).props("flat")
        dialog.open()


def register(cockpit: Cockpit) -> None:
    @ui.page("/queue")
    def queue_page() -> None:
        with frame("Queue"):
            QueuePanel(cockpit)
