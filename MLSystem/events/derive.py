"""Deriving events from what MLSystem already writes (the leader's job; see ``journal.py``).

* **Queue events** from the job files: a job seen in a new folder (or a new run of it) is an event;
  the job record says when it happened. Folders are re-listed only when their mtime changed
  (or changed in the last second: mtimes are coarse), and a file is parsed only when it changed,
  so a 100k-job queue costs a few ``stat`` calls per poll.
* **Training events** of each job's experiment while it runs, read by byte offset with the
  existing tail readers: ``metrics.jsonl`` (run starts -> ``log``, step rows -> ``progress``,
  epoch rows -> ``validation_result``), ``progress.json`` (``progress`` between logged steps)
  and ``samples.jsonl`` (``samples``). Only rows written during the job's run count (each row
  carries its time); when the job is filed, the files are read to the end before its end events.

Everything the deriver remembers (:class:`DeriveState`) changes only through :meth:`Deriver.apply`
of an event, so a new leader rebuilds it from ``state.json`` plus the journal lines after it.
Nothing here runs inside training.
"""

from __future__ import annotations

import contextlib
import os
import time
from dataclasses import asdict, dataclass, field
from typing import Any

from MLSystem.events import schema
from MLSystem.jobs import Job, QueuePaths, Status
from MLSystem.metrics_reader import MetricsTail, parse_rows, row_kind
from MLSystem.paths import ProjectPaths
from MLSystem.queue_files import read_job_file
from MLSystem.utils.atomic import read_json
from MLSystem.utils.clock import parse_iso
from MLSystem.utils.tail import FileTail

SAMPLES_FILE = "samples.jsonl"
GONE_S = 2.0  # a job missing this long was deleted (a requeue moves it between two listings)
TERMINAL = (Status.FINISHED.value, Status.FAILED.value, Status.STOPPED.value)
_BOOKKEEPING = {"step", "epoch", "kind", "time", "epoch_time"}


@dataclass
class Follow:
    """The training run of one running job, as far as events were emitted."""

    experiment_id: str
    since: float  # the job's start: rows before it belong to earlier runs
    until: float | None = None  # the job's end (set when it is filed)
    run_time: float = 0.0  # time of the last run-start row emitted
    step: int = -1  # last progress step emitted
    val_epoch: int = 0  # last validation_result epoch emitted (1-based)
    samples_epoch: int = 0  # last samples epoch emitted (1-based)
    max_epochs: int | None = None


@dataclass
class DeriveState:
    seq: int = 0
    jobs: dict[str, list] = field(default_factory=dict)  # id -> [status, run]
    follows: dict[str, Follow] = field(default_factory=dict)  # job id -> its run
    runner_pid: int | None = None

    def to_json(self) -> dict[str, Any]:
        return {"seq": self.seq, "jobs": self.jobs, "runner_pid": self.runner_pid,
                "follows": {k: asdict(v) for k, v in self.follows.items()}}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> "DeriveState":
        return cls(seq=int(data.get("seq", 0)), jobs=dict(data.get("jobs") or {}),
                   follows={k: Follow(**v) for k, v in (data.get("follows") or {}).items()},
                   runner_pid=data.get("runner_pid"))


def run_number(job: Job) -> int:
    """Which run of the job this record is about: completed runs, +1 while one is in progress
    (``attempts`` restarts at 0 on a requeue, the history does not)."""
    return len(job.history) + (1 if job.status == Status.RUNNING.value else 0)


@dataclass
class _Entry:
    """One job file as last listed. Only pending and running jobs are kept whole: a 100k-job
    history costs a small tuple each, and a finished job is re-read only if it changes."""

    id: str
    status: str
    run: int
    spawned: bool  # running with its process started
    when: tuple
    path: str
    job: Job | None


class _Folder:
    """One queue folder, re-listed only when it changed."""

    def __init__(self, path, status: str):
        self.path = path
        self.status = status
        self.keep = status not in TERMINAL
        self.mtime = -1
        self.recheck = False
        self.files: dict[str, tuple[tuple, _Entry | None]] = {}

    def scan(self) -> bool:
        """Re-list if the folder changed; True if it did. Each change is listed twice, the second
        time at the next poll: mtimes are coarse (a clock tick), so a second change within the
        same tick as the first listing would not move the mtime again."""
        try:
            mtime = os.stat(self.path).st_mtime_ns
        except FileNotFoundError:
            changed, self.files, self.mtime = bool(self.files), {}, -1
            return changed
        if mtime == self.mtime and not self.recheck:
            return False
        self.recheck = mtime != self.mtime
        self.mtime = mtime
        seen: dict[str, tuple[tuple, _Entry | None]] = {}
        with contextlib.suppress(FileNotFoundError), os.scandir(self.path) as it:
            for entry in it:
                if entry.name.startswith(".") or not entry.name.endswith(".json"):
                    continue
                try:
                    st = entry.stat()
                except FileNotFoundError:
                    continue
                key = (st.st_ino, st.st_mtime_ns, st.st_size)
                old = self.files.get(entry.name)
                seen[entry.name] = old if old and old[0] == key else (key, self._entry(entry.path))
        changed = seen.keys() != self.files.keys() or any(seen[k] is not self.files[k] for k in seen)
        self.files = seen
        return changed

    def _entry(self, path: str) -> _Entry | None:
        job = _load(path, self.status)
        if job is None:
            return None
        return _Entry(job.id, self.status, run_number(job), job.pid is not None, _when(job), path,
                      job if self.keep else None)

    def entries(self) -> list[_Entry]:
        return [e for _, e in self.files.values() if e is not None]


def _when(job: Job) -> tuple:
    return (parse_iso(job.ended or job.started or job.created) or 0.0, job.position, job.id)


def _load(path: str, status: str) -> Job | None:
    """A job file, read without the queue lock (job files are replaced atomically); a file that is
    not a valid job (or not ours to read) is the queue store's to deal with, not ours."""
    job = read_job_file(path)
    if not isinstance(job, Job) or job.status != status:
        # A status change renames the file first and rewrites it after: until then the record in
        # its new folder still describes the old state. The rewrite changes it again: read it then.
        return None
    return job


class _Readers:
    """In-memory file cursors of one followed run (not state: a new leader re-reads, and the
    dedup rules in :meth:`Deriver._training` skip what was already emitted)."""

    def __init__(self, paths: ProjectPaths, experiment_id: str):
        exp = paths.experiment(experiment_id)
        self.metrics = MetricsTail(exp.metrics)
        self.samples = FileTail(exp.dir / SAMPLES_FILE)
        self.progress_path = exp.progress
        self.progress_mtime = 0
        self.batches: int | None = None


class Deriver:
    """Turns file changes into events; :meth:`poll` returns the new ones (without seq)."""

    def __init__(self, paths: ProjectPaths, state: DeriveState | None = None):
        self.paths = paths
        self.qpaths = QueuePaths(paths.queue)
        self.state = state or DeriveState()
        self.folders = {s.value: _Folder(self.qpaths.dir(s), s.value) for s in Status}
        self.readers: dict[str, _Readers] = {}
        self.missing: dict[str, float] = {}
        self.current: dict[str, _Entry] = {}
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
            follow.val_epoch = follow.samples_epoch = int(p.get("epoch", 1)) - 1
            follow.max_epochs = p.get("max_epochs")
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
                job = entry.job or _load(entry.path, entry.status)
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

    def _current(self) -> dict[str, _Entry]:
        """Every job by id; a job listed twice (moved between two listings) counts where it went."""
        out: dict[str, _Entry] = {}
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
            r = self.readers[job.id] = _Readers(self.paths, f.experiment_id)
        eid = f.experiment_id

        def in_run(t: Any) -> bool:
            return isinstance(t, (int, float)) and t >= f.since and (f.until is None or t <= f.until)

        for row in r.metrics.poll():
            t = row.get("time")
            if not in_run(t):
                continue
            t = round(t, 3)  # as events carry it (a replayed state compares with event times)
            kind = row_kind(row)
            if kind == "event":
                if t <= f.run_time:
                    continue
                self._emit("log", t, self._run_start(row), job, experiment_id=eid, source="metrics")
            elif kind == "step":
                step = int(row.get("step", 0))
                if step <= f.step:
                    continue
                self._emit("progress", t, {"epoch": int(row.get("epoch", 0)) + 1, "max_epochs": f.max_epochs,
                                           "step": step, "batches": r.batches, "loss": row.get("loss"),
                                           "lr": row.get("lr")}, job, experiment_id=eid, source="metrics")
            else:
                epoch = int(row.get("epoch", 0)) + 1
                if epoch <= f.val_epoch:
                    continue
                metrics = {k: v for k, v in row.items() if k not in _BOOKKEEPING}
                self._emit("validation_result", t, {"epoch": epoch, "step": row.get("step"),
                                                    "epoch_time": row.get("epoch_time"), "metrics": metrics},
                           job, experiment_id=eid, source="metrics")
        for row in parse_rows(r.samples.read().lines):
            epoch = int(row.get("epoch", -1)) + 1
            if epoch > f.samples_epoch and f.run_time:  # rows have no time: stamped when read
                self._emit("samples", time.time() if f.until is None else min(time.time(), f.until),
                           {"epoch": epoch, "step": row.get("step"), "samples": row.get("samples")},
                           job, experiment_id=eid, source="samples")
        try:
            mtime = os.stat(r.progress_path).st_mtime_ns
        except FileNotFoundError:
            mtime = 0
        if mtime and mtime != r.progress_mtime:
            r.progress_mtime = mtime
            p = read_json(r.progress_path) or {}
            r.batches = p.get("batches") if isinstance(p.get("batches"), int) else r.batches
            step = p.get("step")
            if isinstance(step, int) and step > f.step and in_run(p.get("updated")) and f.run_time:
                self._emit("progress", p["updated"], {k: p.get(k) for k in ("epoch", "max_epochs", "step", "batch",
                                                                            "batches", "loss", "lr")},
                           job, experiment_id=eid, source="progress")

    @staticmethod
    def _run_start(row: dict[str, Any]) -> dict[str, Any]:
        kind, epoch, step, total = row.get("event"), int(row.get("epoch", 0)), row.get("step"), row.get("max_epochs")
        if kind == "new":
            message = f"training started: new run, {total} epochs"
        else:
            verb = "resumed" if kind == "resume" else "extended"
            message = f"training started: {verb} at epoch {epoch + 1} (step {step}), {total} epochs in all"
        return {"message": message, "run_kind": kind, "step": step, "epoch": epoch + 1, "max_epochs": total}

    def _runner(self, current: dict[str, _Entry]) -> None:
        pid = (read_json(self.qpaths.runner_info) or {}).get("pid") if self.qpaths.runner_info.exists() else None
        if pid is not None:
            if pid != self.state.runner_pid:
                self.state.runner_pid, self.dirty = pid, True
            return
        if self.state.runner_pid is not None:
            pending = [e.job for e in current.values() if e.status == Status.PENDING.value and e.job]
            self._emit("drained", time.time(), {"pending": sum(not j.held for j in pending),
                                                "held": sum(j.held for j in pending)})
