"""Deriving events from what MLSystem already writes (the leader's job; see ``journal.py``).

* **Queue events** from the job files (:mod:`~MLSystem.events.queue_scan`): a job seen in a new
  folder (or a new run of it) is an event; the job record says when it happened.
* **Training events** of each job's experiment while it runs
  (:mod:`~MLSystem.events.training_files`); when the job is filed, its files are read to the end
  before its end events.

Everything the deriver remembers (:class:`~MLSystem.events.derive_state.DeriveState`) changes
only through :meth:`Deriver.apply` of an event, so a new leader rebuilds it from ``state.json``
plus the journal lines after it. Nothing here runs inside training.
"""

from __future__ import annotations

import time
from typing import Any

from MLSystem.events import schema
from MLSystem.events.derive_state import DeriveState, Follow
from MLSystem.events.queue_scan import Entry, Folder, load_job, run_number
from MLSystem.events.training_files import Readers, training_events
from MLSystem.jobs import Job, QueuePaths, Status
from MLSystem.paths import ProjectPaths
from MLSystem.utils.atomic import read_json
from MLSystem.utils.clock import parse_iso

__all__ = ["DeriveState", "Deriver", "Follow"]

GONE_S = 2.0  # a job missing this long was deleted (a requeue moves it between two listings)


class Deriver:
    """Turns file changes into events; :meth:`poll` returns the new ones (without seq)."""

    def __init__(self, paths: ProjectPaths, state: DeriveState | None = None):
        self.paths = paths
        self.qpaths = QueuePaths(paths.queue)
        self.state = state or DeriveState()
        self.folders = {s.value: Folder(self.qpaths.dir(s), s.value) for s in Status}
        self.readers: dict[str, Readers] = {}
        self.missing: dict[str, float] = {}
        self.current: dict[str, Entry] = {}
        self.out: list[dict[str, Any]] = []
        self.dirty = False

    # -- state changes ---------------------------------------------------------------------------
    def apply(self, e: dict[str, Any]) -> None:
        """The only way the state changes: live after each new event, and on replay."""
        st, t, p, jid = self.state, e["type"], e.get("payload") or {}, e.get("job_id")
        st.seq = max(st.seq, int(e.get("seq") or 0))
        self.dirty = True
        if t in ("queued", "started", "finished", "failed", "stopped") and jid:
            st.jobs[jid] = [{"queued": "pending", "started": "running"}.get(t, t), p.get("run", 0)]
            if t != "started":
                st.follows.pop(jid, None)
                self.readers.pop(jid, None)
            elif e.get("experiment_id"):
                st.follows[jid] = Follow(e["experiment_id"], since=e["time"],
                                         val_epoch=p.get("epochs_before") or 0,
                                         samples_epoch=p.get("epochs_before") or 0)
        elif t == "drained":
            st.runner_pid = None
        follow = st.follows.get(jid or "")
        if follow is None:
            return
        if t == "log" and e.get("source") == "metrics":
            follow.run_time, follow.step = e["time"], int(p.get("step", 0))
            follow.progress_step = follow.step
            follow.val_epoch = follow.samples_epoch = int(p.get("epoch", 1)) - 1
            follow.max_epochs = p.get("max_epochs")
        elif t == "progress" and e.get("source") == "progress":
            follow.progress_step = int(p.get("step", follow.progress_step))
        elif t == "progress":
            follow.step = int(p.get("step", follow.step))
        elif t == "validation_result":
            follow.val_epoch = int(p.get("epoch", follow.val_epoch))
        elif t == "samples":
            follow.samples_epoch = int(p.get("epoch", follow.samples_epoch))

    def _emit(self, etype: str, t: float, payload: dict[str, Any], job: Job | None = None, *,
              experiment_id: str | None = None, source: str = "queue") -> None:
        e = schema.make(etype, t, payload, experiment_id=experiment_id or (job.experiment_id if job else None),
                        job_id=job.id if job else None, source=source)
        self.apply(e)
        self.out.append(e)

    # -- polling ---------------------------------------------------------------------------------
    def baseline(self) -> None:
        """First leader of a project: remember what exists without announcing history."""
        now = time.time()
        for folder in self.folders.values():
            folder.scan()
        self.current = self._current()
        for entry in self.current.values():
            if entry.status == Status.RUNNING.value and not entry.spawned:
                continue
            self.state.jobs[entry.id] = [entry.status, entry.run]
            job = entry.job
            if job is not None and job.status == Status.RUNNING.value and job.experiment_id:
                # already training: from now on (its past was never announced)
                self.state.follows[job.id] = Follow(job.experiment_id, since=now, run_time=now,
                                                    val_epoch=job.epochs_before or 0,
                                                    samples_epoch=job.epochs_before or 0)
        self.state.runner_pid = (read_json(self.qpaths.runner_info) or {}).get("pid")
        self.dirty = True

    def poll(self) -> list[dict[str, Any]]:
        self.out = []
        now = time.time()
        changed = [folder.scan() for folder in self.folders.values()]
        if any(changed) or self.missing:  # unchanged folders: nothing to compare (a 100k history is free)
            current = self.current = self._current()
            jobs = self.state.jobs
            todo = [e for e in current.values() if jobs.get(e.id) != [e.status, e.run]
                    and not (e.status == Status.RUNNING.value and not e.spawned)]  # claimed, not spawned yet
            # What happened between two polls is announced in the order it happened.
            for entry in sorted(todo, key=lambda e: e.when):
                job = entry.job or load_job(entry.path, entry.status)
                if job is not None:
                    self._job(job)
            if len(jobs) > len(current) or self.missing:
                for jid in [j for j in jobs if j not in current]:
                    if now - self.missing.setdefault(jid, now) > GONE_S:  # deleted
                        jobs.pop(jid, None)
                        self.state.follows.pop(jid, None)
                        self.readers.pop(jid, None)
                        self.missing.pop(jid, None)
                        self.dirty = True
                for jid in [j for j in self.missing if j in current]:
                    self.missing.pop(jid)
        current = self.current
        for jid, follow in list(self.state.follows.items()):
            entry = current.get(jid)
            if entry is not None and entry.job is not None and entry.status == Status.RUNNING.value:
                self._training(entry.job, follow)
        self._runner(current)
        return self.out

    def _current(self) -> dict[str, Entry]:
        """Every job by id; a job listed twice (moved between two listings) counts where it went."""
        out: dict[str, Entry] = {}
        for status in Status:  # lifecycle order: a later folder wins
            for entry in self.folders[status.value].entries():
                out[entry.id] = entry
        return out

    def _job(self, job: Job) -> None:
        prev = self.state.jobs.get(job.id)
        status, run = job.status, run_number(job)
        if prev is None:
            self._emit("queued", parse_iso(job.created) or time.time(), self._queued_payload(job), job)
            prev = self.state.jobs[job.id]
        if status == Status.PENDING.value:
            if prev[0] == Status.RUNNING.value:  # back to pending: interrupted, busy or recovered
                follow = self.state.follows.get(job.id)
                if follow is not None:
                    follow.until = parse_iso(job.ended)
                    self._training(job, follow)
                self._emit("status", parse_iso(job.ended) or time.time(),
                           {"status": "interrupted", "message": job.note}, job)
            if prev[0] != Status.PENDING.value:
                self._emit("queued", time.time(), self._queued_payload(job), job)
            return
        if status == Status.RUNNING.value:
            self._started(job, run)
            return
        # filed under finished/ failed/ stopped/
        last = job.history[-1] if job.history else {}
        ran = last.get("outcome") == status  # complete() recorded this run; a cancelled pending job has none
        if ran and prev != [Status.RUNNING.value, run]:
            self._started(job, run)  # its whole run happened between two polls (or before this leader)
        if ran and job.experiment_id:
            follow = self.state.follows.get(job.id)
            if follow is not None:
                follow.until = parse_iso(job.ended)
                self._training(job, follow)
        ended = parse_iso(job.ended) or time.time()
        end = {"attempt": job.attempts, "run": run, "exit_code": job.exit_code, "note": job.note}
        if status == Status.FINISHED.value:
            self._emit("status", ended, {"status": "completed", "message": job.note}, job)
            self._emit("finished", ended, {**end, "epochs_done": job.epochs_done}, job)
        elif status == Status.FAILED.value:
            self._emit("error", ended, {"message": schema.error_line(job.error or job.note), "detail": job.error,
                                        "exit_code": job.exit_code, "signal": job.signal}, job)
            self._emit("failed", ended, {**end, "signal": job.signal}, job)
        else:
            if ran:
                self._emit("status", ended, {"status": "stopped", "message": job.note}, job)
            self._emit("stopped", ended, end, job)

    def _started(self, job: Job, run: int) -> None:
        t = parse_iso(job.started) or time.time()
        self._emit("started", t, {"kind": job.kind, "args": job.args, "attempt": job.attempts, "run": run,
                                  "pid": job.pid, "host": job.host, "epochs_before": job.epochs_before}, job)
        what = "plot" if job.kind == "plot" else "training"
        self._emit("log", t, {"message": f"preparing {what} (attempt {job.attempts}): {' '.join(job.args)}"}, job)

    @staticmethod
    def _queued_payload(job: Job) -> dict[str, Any]:
        return {"kind": job.kind, "args": job.args, "priority": job.priority, "held": job.held,
                "action": job.action, "dataset": job.dataset, "model": job.model, "attempt": job.attempts,
                "run": run_number(job) if job.status != Status.RUNNING.value else len(job.history),
                "note": job.note}

    # -- training files --------------------------------------------------------------------------
    def _training(self, job: Job, f: Follow) -> None:
        r = self.readers.get(job.id)
        if r is None:
            r = self.readers[job.id] = Readers(self.paths, f.experiment_id)
        training_events(self._emit, r, job, f)

    def _runner(self, current: dict[str, Entry]) -> None:
        pid = (read_json(self.qpaths.runner_info) or {}).get("pid") if self.qpaths.runner_info.exists() else None
        if pid is not None:
            if pid != self.state.runner_pid:
                self.state.runner_pid, self.dirty = pid, True
            return
        if self.state.runner_pid is not None:
            pending = [e.job for e in current.values() if e.status == Status.PENDING.value and e.job]
            self._emit("drained", time.time(), {"pending": sum(not j.held for j in pending),
                                                "held": sum(j.held for j in pending)})
