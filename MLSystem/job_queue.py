"""The job queue: the one module that reads and writes files under ``queue/``.

Layout (the directory a job file is in *is* its status; the JSON's ``status`` mirrors it)::

    queue/
      pending/{job}.json    waiting to run (``held`` jobs stay here, keeping their place)
      running/{job}.json    claimed by the runner
      finished/ failed/ stopped/{job}.json
      logs/{job}.log        stdout+stderr of every attempt; logs/{job}.metrics.jsonl
      control/{job}.stop    stop flag of a running job (``MLSYSTEM_STOP_FILE``)
      .lock                 the one lock around every read-modify-write
      runner.lock           held by the one active runner; runner.json says who it is
      DRAIN                 "finish the current job, then stop"

Every write is atomic (temp file + rename) and happens under ``.lock``; a status change first
moves the file (one ``rename``, so a job is never in two folders) and then rewrites it. A file
that is not a valid job (bad JSON, wrong types, unknown version) is moved to ``failed/`` as a
valid record carrying the parse error and the original text, so it never crashes a reader.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import socket
import statistics
import time
import uuid
from dataclasses import asdict, dataclass, field, fields
from datetime import datetime, timezone
from enum import Enum
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator

from MLSystem.errors import MLSystemError
from MLSystem.paths import ProjectPaths
from MLSystem.utils.atomic import atomic_write_json, read_json

VERSION = 1
LOCK_TIMEOUT_S = 30.0  # a holder never keeps the lock longer than one scan of the queue
DEFAULT_MAX_ATTEMPTS = 5
DEFAULT_STARTUP_S = 5.0  # ETA: process start + imports when no finished job measured it
_ID = re.compile(r"job-[0-9a-f]{8}$")


class Status(str, Enum):
    PENDING = "pending"
    RUNNING = "running"
    FINISHED = "finished"
    FAILED = "failed"
    STOPPED = "stopped"


class Kind(str, Enum):
    TRAIN = "train"
    PLOT = "plot"
    INVALID = "invalid"  # a file that could not be read as a job (kept in failed/ for inspection)


class QueueError(MLSystemError):
    """A queue operation that cannot be done (unknown job, wrong state…)."""


def now_iso() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="milliseconds")


def parse_iso(text: str | None) -> float | None:
    try:
        return datetime.fromisoformat(text).timestamp() if text else None
    except ValueError:
        return None


def new_job_id() -> str:
    return "job-" + uuid.uuid4().hex[:8]


@dataclass
class Job:
    """One queued command (schema version 1). Only ``id``, ``kind`` and ``args`` are required in a
    file; everything else has a default, so a hand-written job is easy to drop into pending/."""

    id: str
    kind: str  # Kind.TRAIN: args are execute_train overrides; Kind.PLOT: args == [experiment_id]
    args: list[str]
    version: int = VERSION
    status: str = Status.PENDING.value
    experiment_id: str | None = None
    action: str | None = None  # new / resume / extend / complete, as decided at submit time
    dataset: str | None = None
    model: str | None = None
    adapter: str | None = None
    max_epochs: int | None = None
    priority: int = 0  # higher runs first
    position: float = 0.0  # order within a priority (smaller first); creation time by default
    created: str = ""
    held: bool = False
    attempts: int = 0  # runs started
    max_attempts: int = DEFAULT_MAX_ATTEMPTS
    not_before: float | None = None  # epoch seconds: the experiment was busy, retry after this
    note: str = ""  # last thing that happened to the job, one line
    stop_requested: str | None = None
    runner: dict | None = None  # {"pid", "host"} of the runner that ran it last
    pid: int | None = None  # the job's own process
    host: str | None = None
    started: str | None = None
    ended: str | None = None
    exit_code: int | None = None
    signal: str | None = None
    error: str | None = None
    epochs_before: int | None = None  # trained epochs of the experiment when the run started
    epochs_done: int | None = None  # ... and when it ended
    log: str | None = None  # relative to the project root
    history: list = field(default_factory=list)  # one dict per attempt
    extra: dict = field(default_factory=dict)  # unknown keys, kept on rewrite

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d.update(d.pop("extra"))
        return d

    @property
    def runnable(self) -> bool:
        return self.status == Status.PENDING.value and not self.held

    def order_key(self) -> tuple:
        """Run order: priority (high first), then queue position, then age."""
        return (-self.priority, self.position, self.created, self.id)


# Accepted JSON types per field (bool is not an int here: ``priority: true`` is an error).
_TYPES: dict[str, tuple[type, ...]] = {
    "id": (str,), "kind": (str,), "args": (list,), "version": (int,), "status": (str,),
    "experiment_id": (str, type(None)), "action": (str, type(None)), "dataset": (str, type(None)),
    "model": (str, type(None)), "adapter": (str, type(None)), "max_epochs": (int, type(None)),
    "priority": (int,), "position": (int, float), "created": (str,), "held": (bool,), "attempts": (int,),
    "max_attempts": (int,), "not_before": (int, float, type(None)), "note": (str,),
    "stop_requested": (str, type(None)), "runner": (dict, type(None)), "pid": (int, type(None)),
    "host": (str, type(None)), "started": (str, type(None)), "ended": (str, type(None)),
    "exit_code": (int, type(None)), "signal": (str, type(None)), "error": (str, type(None)),
    "epochs_before": (int, type(None)), "epochs_done": (int, type(None)), "log": (str, type(None)),
    "history": (list,),
}
_REQUIRED = ("id", "kind", "args")
_FIELD_NAMES = {f.name for f in fields(Job)} - {"extra"}
assert set(_TYPES) == _FIELD_NAMES, "every Job field needs an entry in _TYPES"


_EXACT = {k: frozenset(v) for k, v in _TYPES.items()}  # exact types: True is not an int here
_KINDS = (Kind.TRAIN.value, Kind.PLOT.value, Kind.INVALID.value)


def job_from_dict(data: Any, *, expect_id: str | None = None) -> Job:
    """Validate a parsed job file; ``ValueError`` names the first problem."""
    if not isinstance(data, dict):
        raise ValueError(f"expected a JSON object, got {type(data).__name__}")
    version = data.get("version", VERSION)
    if version != VERSION:
        raise ValueError(f"version {version!r} is not supported (this MLSystem reads version {VERSION})")
    for key in _REQUIRED:
        if key not in data:
            raise ValueError(f"missing field {key!r} (required: {', '.join(_REQUIRED)})")
    known: dict[str, Any] = {}
    extra: dict[str, Any] = {}
    for key, value in data.items():  # one pass: this runs for every file of every listing
        allowed = _EXACT.get(key)
        if allowed is None:
            extra[key] = value
            continue
        if type(value) not in allowed:
            names = " or ".join("null" if t is type(None) else t.__name__ for t in _TYPES[key])
            raise ValueError(f"field {key!r}: expected {names}, got {json.dumps(value)[:60]}")
        known[key] = value
    if known["kind"] not in _KINDS:
        raise ValueError(f"field 'kind': {known['kind']!r} is not one of train, plot")
    if not all(type(a) is str for a in known["args"]):
        raise ValueError("field 'args': expected a list of strings such as ['dataset=digits', 'lr=0.1']")
    if known["kind"] == Kind.PLOT.value and len(known["args"]) != 1:
        raise ValueError("field 'args': a plot job takes exactly one experiment id")
    if expect_id is not None and known["id"] != expect_id:
        raise ValueError(f"field 'id': {known['id']!r} does not match the file name {expect_id}.json")
    return Job(**known, extra=extra)


@dataclass(frozen=True)
class QueuePaths:
    root: Path

    def dir(self, status: Status | str) -> Path:
        return self.root / Status(status).value

    def job_file(self, status: Status | str, job_id: str) -> Path:
        return self.dir(status) / f"{job_id}.json"

    @property
    def logs(self) -> Path:
        return self.root / "logs"

    def log(self, job_id: str) -> Path:
        return self.logs / f"{job_id}.log"

    def metrics(self, job_id: str) -> Path:
        return self.logs / f"{job_id}.metrics.jsonl"

    def stop_flag(self, job_id: str) -> Path:
        return self.root / "control" / f"{job_id}.stop"

    @property
    def lock(self) -> Path:
        return self.root / ".lock"

    @property
    def runner_lock(self) -> Path:
        return self.root / "runner.lock"

    @property
    def runner_info(self) -> Path:
        return self.root / "runner.json"

    @property
    def drain_flag(self) -> Path:
        return self.root / "DRAIN"


def pid_alive(pid: int | None) -> bool:
    if not pid or pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


class JobQueue:
    """All queue operations. Safe to use from several processes at once (CLI, runner, GUI)."""

    def __init__(self, paths: ProjectPaths | None = None):
        from filelock import FileLock

        self.project = paths or ProjectPaths.discover()
        self.paths = QueuePaths(self.project.queue)
        for status in Status:
            self.paths.dir(status).mkdir(parents=True, exist_ok=True)
        self.paths.logs.mkdir(exist_ok=True)
        (self.paths.root / "control").mkdir(exist_ok=True)
        self._lock = FileLock(str(self.paths.lock), timeout=LOCK_TIMEOUT_S)
        self.host = socket.gethostname()

    # -- locking and raw file access ---------------------------------------------------------------
    @contextlib.contextmanager
    def locked(self) -> Iterator[None]:
        """The queue lock (reentrant within this object)."""
        from filelock import Timeout

        try:
            self._lock.acquire()
        except Timeout:
            raise QueueError(f"{self.paths.lock}: queue lock still held after {LOCK_TIMEOUT_S:.0f}s; "
                             "another process is stuck inside a queue operation") from None
        try:
            yield
        finally:
            self._lock.release()

    def _write(self, status: Status, job: Job) -> None:
        job.status = status.value
        atomic_write_json(self.paths.job_file(status, job.id), job.to_dict())

    def _move(self, job: Job, src: Status, dst: Status, **changes: Any) -> Job:
        """Rename first (a job is never in two folders), then rewrite with the changes."""
        os.replace(self.paths.job_file(src, job.id), self.paths.job_file(dst, job.id))
        for key, value in changes.items():
            setattr(job, key, value)
        self._write(dst, job)
        return job

    def _scan(self, status: Status) -> list[Job]:
        """Valid jobs in one folder; invalid files are quarantined. Call under the lock."""
        jobs = []
        try:
            entries = list(os.scandir(self.paths.dir(status)))
        except FileNotFoundError:
            return jobs
        for entry in entries:
            if entry.name.startswith(".") or not entry.name.endswith(".json"):
                continue  # temp files of an atomic write in progress, editor backups…
            job = self._load(entry.path, status)
            if job is not None:
                jobs.append(job)
        return jobs

    def _load(self, path: Path | str, status: Status) -> Job | None:
        """Parse and validate one job file (no caching: another process may have replaced it)."""
        path = str(path)
        try:
            with open(path, encoding="utf-8") as fh:
                text = fh.read()
        except FileNotFoundError:
            return None  # moved by another process between listing and reading
        except (OSError, UnicodeDecodeError) as exc:
            self._quarantine(Path(path), status, "", f"unreadable: {exc}")
            return None
        try:
            data = json.loads(text)
            if isinstance(data, dict) and "position" not in data:
                data["position"] = os.stat(path).st_mtime  # a hand-written job queues by its file time
            job = job_from_dict(data, expect_id=os.path.basename(path)[:-5])
        except FileNotFoundError:
            return None
        except ValueError as exc:  # JSONDecodeError is a ValueError
            self._quarantine(Path(path), status, text, str(exc))
            return None
        job.status = status.value  # the folder is the truth
        return job

    def _quarantine(self, path: Path, status: Status, text: str, problem: str) -> None:
        """Replace an invalid job file by a valid failed/ record holding the error and the text."""
        stem = re.sub(r"[^A-Za-z0-9_.-]", "_", path.stem) or "invalid"
        job_id, n = stem, 1
        while (self.paths.job_file(Status.FAILED, job_id).exists()
               and self.paths.job_file(Status.FAILED, job_id) != path):
            n += 1
            job_id = f"{stem}-{n}"
        rel = path.relative_to(self.paths.root)
        record = Job(id=job_id, kind=Kind.INVALID.value, args=[], created=now_iso(), ended=now_iso(),
                     error=f"invalid job file {rel}: {problem}", note="moved here because it could not be read",
                     extra={"raw": text[:65536]})
        self._write(Status.FAILED, record)
        if path != self.paths.job_file(Status.FAILED, job_id):
            with contextlib.suppress(FileNotFoundError):
                path.unlink()

    # -- reading -----------------------------------------------------------------------------------
    def list(self, statuses: Iterable[Status | str] | None = None) -> list[Job]:
        """Jobs of the given statuses (all by default): pending in run order, then the rest
        (running, then finished/failed/stopped newest first)."""
        wanted = [Status(s) for s in statuses] if statuses is not None else list(Status)
        with self.locked():
            found = {s: self._scan(s) for s in wanted}
        out = sorted(found.get(Status.PENDING, []), key=Job.order_key)
        for s in wanted:
            if s != Status.PENDING:
                out.extend(sorted(found[s], key=lambda j: (j.ended or j.started or j.created), reverse=True))
        return out

    def pending(self) -> list[Job]:
        return self.list([Status.PENDING])

    def resolve(self, ref: str) -> str:
        """Full job id from an id, a unique prefix, or the hex part alone."""
        ref = ref.strip()
        if not ref:
            raise QueueError("job id: empty")
        names = {p.stem for s in Status for p in self.paths.dir(s).glob("*.json") if not p.name.startswith(".")}
        if ref in names:
            return ref
        matches = sorted(n for n in names if n.startswith(ref) or n.startswith(f"job-{ref}"))
        if len(matches) == 1:
            return matches[0]
        if not matches:
            raise QueueError(f"job {ref!r}: no such job in {self.paths.root} (see: python -m MLSystem.submit --list)")
        raise QueueError(f"job {ref!r} is ambiguous: {', '.join(matches[:8])}")

    def _find(self, ref: str) -> tuple[Job, Status]:
        job_id = self.resolve(ref)
        for status in Status:
            path = self.paths.job_file(status, job_id)
            if path.exists():
                job = self._load(path, status)
                if job is not None:
                    return job, status
        raise QueueError(f"job {job_id}: its file is invalid or was removed (see failed/)")

    def get(self, ref: str) -> Job:
        with self.locked():
            return self._find(ref)[0]

    # -- creating ----------------------------------------------------------------------------------
    def add(self, job: Job) -> Job:
        return self.add_many([job])[0]

    def add_many(self, jobs: list[Job]) -> list[Job]:
        """Queue new jobs at the end (within their priority), in the order given."""
        with self.locked():
            base = time.time()
            for i, job in enumerate(jobs):
                job.position = job.position or base + i * 1e-6
                job.created = job.created or now_iso()
                job.log = job.log or str(self.paths.log(job.id).relative_to(self.project.root))
                self._write(Status.PENDING, job)
        return jobs

    def find_active(self, experiment_ids: Iterable[str]) -> dict[str, Job]:
        """Pending or running jobs of these experiments (for "not queued twice")."""
        wanted = set(experiment_ids)
        return {j.experiment_id: j for j in self.list([Status.RUNNING, Status.PENDING])
                if j.experiment_id in wanted and j.kind == Kind.TRAIN.value}

    # -- editing pending jobs ----------------------------------------------------------------------
    def _pending_job(self, ref: str, verb: str) -> Job:
        job, status = self._find(ref)
        if status != Status.PENDING:
            raise QueueError(f"job {job.id} is {status.value}; only pending jobs can be {verb}")
        return job

    def edit(self, ref: str, **changes: Any) -> Job:
        """Change fields of a pending job (e.g. ``args``, ``experiment_id`` after re-validation)."""
        bad = [k for k in changes if k not in _FIELD_NAMES or k in ("id", "status", "version")]
        if bad:
            raise QueueError(f"cannot edit {', '.join(bad)}; editable: args, priority, held, max_attempts, …")
        with self.locked():
            job = self._pending_job(ref, "edited")
            for key, value in changes.items():
                setattr(job, key, value)
            self._write(Status.PENDING, job)
            return job

    def set_priority(self, ref: str, priority: int) -> Job:
        return self.edit(ref, priority=int(priority))

    def hold(self, ref: str) -> Job:
        return self.edit(ref, held=True, note="held: will not run until released")

    def release(self, ref: str) -> Job:
        return self.edit(ref, held=False, note="released")

    def move(self, ref: str, *, before: str | None = None, after: str | None = None) -> Job:
        """Place a pending job just before/after another in run order; it takes that job's
        priority, because priority decides the order first."""
        if (before is None) == (after is None):
            raise QueueError("move: give exactly one of before= or after=")
        with self.locked():
            job = self._pending_job(ref, "moved")
            anchor = self._pending_job(before or after, "used as an anchor")
            if anchor.id == job.id:
                return job
            order = [j for j in sorted(self._scan(Status.PENDING), key=Job.order_key) if j.id != job.id]
            i = next(k for k, j in enumerate(order) if j.id == anchor.id)
            neighbour = order[i - 1] if before else (order[i + 1] if i + 1 < len(order) else None)
            if before and i == 0:
                neighbour = None
            job.priority = anchor.priority
            if neighbour is None or neighbour.priority != anchor.priority:
                job.position = anchor.position - 1.0 if before else anchor.position + 1.0
            else:
                job.position = (anchor.position + neighbour.position) / 2
            self._write(Status.PENDING, job)
            return job

    def run_next(self, ref: str) -> Job:
        """Put a pending job first in run order (and release it if held)."""
        with self.locked():
            job = self._pending_job(ref, "moved")
            others = [j for j in sorted(self._scan(Status.PENDING), key=Job.order_key) if j.id != job.id]
            if others:
                job = self.move(job.id, before=others[0].id)
            job.held = False
            job.note = "moved to the front"
            self._write(Status.PENDING, job)
            return job

    def delete(self, ref: str) -> Job:
        """Remove a job that is not running, with its log files."""
        with self.locked():
            job, status = self._find(ref)
            if status == Status.RUNNING:
                raise QueueError(f"job {job.id} is running; stop it first (--stop {job.id})")
            self.paths.job_file(status, job.id).unlink()
            for extra in (self.paths.log(job.id), self.paths.metrics(job.id), self.paths.stop_flag(job.id)):
                with contextlib.suppress(FileNotFoundError):
                    extra.unlink()
            return job

    # -- stop / requeue / drain --------------------------------------------------------------------
    def request_stop(self, ref: str) -> tuple[Job, str]:
        """Running: touch its stop flag (checkpoint at the next step, then 'stopped').
        Pending: move it to stopped/ without running it."""
        with self.locked():
            job, status = self._find(ref)
            if status == Status.RUNNING:
                self.paths.stop_flag(job.id).parent.mkdir(exist_ok=True)
                self.paths.stop_flag(job.id).write_text(now_iso() + "\n")
                job.stop_requested = now_iso()
                self._write(Status.RUNNING, job)
                return job, f"stop requested: {job.id} saves a checkpoint at its next step and stops (resumable)"
            if status == Status.PENDING:
                self._move(job, Status.PENDING, Status.STOPPED, stop_requested=now_iso(), ended=now_iso(),
                           note="stopped before it ran")
                return job, f"{job.id} was pending: moved to stopped/ (requeue with --requeue {job.id})"
            raise QueueError(f"job {job.id} is {status.value}; only pending or running jobs can be stopped")

    def requeue(self, ref: str, *, front: bool = False) -> Job:
        """Failed or stopped -> pending (attempts start over); it resumes through its experiment ID."""
        with self.locked():
            job, status = self._find(ref)
            if job.kind == Kind.INVALID.value:
                raise QueueError(f"job {job.id} was an unreadable file ({job.error}); submit it again")
            if status == Status.FINISHED:
                raise QueueError(f"job {job.id} finished; for more epochs submit it again with a larger max_epochs")
            if status not in (Status.FAILED, Status.STOPPED):
                raise QueueError(f"job {job.id} is {status.value}; only failed or stopped jobs can be requeued")
            position = (min((j.position for j in self._scan(Status.PENDING)), default=time.time()) - 1
                        if front else time.time())
            self._move(job, status, Status.PENDING, attempts=0, not_before=None, stop_requested=None,
                       position=position, held=False, note=f"requeued from {status.value} at {now_iso()}")
            return job

    def request_drain(self) -> None:
        atomic_write_json(self.paths.drain_flag, {"requested": now_iso(), "pid": os.getpid()})

    def cancel_drain(self) -> bool:
        try:
            self.paths.drain_flag.unlink()
            return True
        except FileNotFoundError:
            return False

    def drain_requested(self) -> bool:
        return self.paths.drain_flag.exists()

    def active_runner(self) -> dict | None:
        """``runner.json`` of a live runner on this host (None when none runs)."""
        info = read_json(self.paths.runner_info) or None
        if info and (info.get("host") != self.host or pid_alive(info.get("pid"))):
            return info
        return None

    # -- used by the runner ------------------------------------------------------------------------
    def claim_next(self, runner: dict, busy: Callable[[Job], str | None] = lambda j: None,
                   backoff_s: float = 10.0) -> Job | None:
        """Move the first runnable pending job to running/ and return it (None if there is none).

        ``busy(job)`` says why the job's experiment is taken right now; such a job stays pending
        and is skipped until ``backoff_s`` later.
        """
        now = time.time()
        with self.locked():
            for job in sorted(self._scan(Status.PENDING), key=Job.order_key):
                if job.held or (job.not_before or 0) > now:
                    continue
                reason = busy(job)
                if reason:
                    job.not_before, job.note = now + backoff_s, f"waiting: {reason}"
                    self._write(Status.PENDING, job)
                    continue
                return self._move(job, Status.PENDING, Status.RUNNING, attempts=job.attempts + 1,
                                  started=now_iso(), ended=None, runner=runner, host=self.host, pid=None,
                                  exit_code=None, signal=None, error=None, stop_requested=None,
                                  not_before=None, note=f"attempt {job.attempts + 1} started")
        return None

    def next_wakeup(self) -> float | None:
        """Seconds until a pending (not held) job may run: 0 = now, None = nothing to wait for."""
        now = time.time()
        times = [max(0.0, (j.not_before or 0) - now) for j in self.pending() if not j.held]
        return min(times) if times else None

    def running(self, job_id: str) -> Job | None:
        """The current record of a running job (None if it is not in running/)."""
        with self.locked():
            return self._load(self.paths.job_file(Status.RUNNING, job_id), Status.RUNNING)

    def update_running(self, job_id: str, **changes: Any) -> Job | None:
        with self.locked():
            job = self._load(self.paths.job_file(Status.RUNNING, job_id), Status.RUNNING)
            if job is None:
                return None
            for key, value in changes.items():
                setattr(job, key, value)
            self._write(Status.RUNNING, job)
            return job

    def complete(self, job: Job, status: Status, **changes: Any) -> Job:
        """File a running job under ``status`` (pending = run again later), recording an attempt."""
        with self.locked():
            current = self._load(self.paths.job_file(Status.RUNNING, job.id), Status.RUNNING)
            if current is None:  # its file vanished (removed by hand): recreate it from memory
                current = job
                self._write(Status.RUNNING, current)
            for key, value in changes.items():
                setattr(current, key, value)
            current.history = list(current.history) + [{
                "attempt": current.attempts, "started": current.started, "ended": current.ended,
                "pid": current.pid, "exit_code": current.exit_code, "signal": current.signal,
                "outcome": status.value, "note": current.note}]
            with contextlib.suppress(FileNotFoundError):
                self.paths.stop_flag(job.id).unlink()
            return self._move(current, Status.RUNNING, status)

    def recover(self, runner_pid_dead: Callable[[Job], bool] = lambda j: True) -> list[tuple[Job, Status]]:
        """Jobs left in running/ by a dead runner: back to pending, or failed past max_attempts.
        Call only while holding the runner lock (then no live runner owns them)."""
        out = []
        with self.locked():
            for job in self._scan(Status.RUNNING):
                if not runner_pid_dead(job):
                    continue
                who = (job.runner or {}).get("pid", "?")
                if job.attempts >= job.max_attempts:
                    reason = (f"interrupted {job.attempts} times (runner pid {who} died while it ran); "
                              f"limit max_attempts={job.max_attempts}")
                    self.complete(job, Status.FAILED, ended=now_iso(), error=reason, note=reason)
                    out.append((job, Status.FAILED))
                else:
                    note = f"recovered: runner pid {who} died during attempt {job.attempts}; resumes from its checkpoint"
                    self.complete(job, Status.PENDING, ended=now_iso(), note=note)
                    out.append((job, Status.PENDING))
        return out


# -- ETA ---------------------------------------------------------------------------------------------
@dataclass
class Eta:
    """When a pending job should start and how long it should take (seconds from now).
    ``lower_bound``: some job before it has no similar past run, so the start is at least this."""

    start_in: float | None
    duration: float | None
    lower_bound: bool = False


def _epoch_times(exp_dir: Path) -> list[float]:
    """Measured epoch durations of one experiment from its metrics log (for experiments trained
    before ``experiment.json`` recorded ``epoch_seconds``)."""
    from MLSystem.metrics_reader import MetricSeries, read_rows

    return [float(r["epoch_time"]) for r in MetricSeries.from_rows(read_rows(exp_dir / "metrics.jsonl")).epochs
            if isinstance(r.get("epoch_time"), (int, float))]


def _norm_value(v: Any) -> str:
    """One spelling per value, so ``lr=0.10`` on a command line matches a recorded ``0.1``."""
    if isinstance(v, bool):
        return str(v).lower()
    try:
        return repr(float(v))
    except (TypeError, ValueError):
        return str(v).lower()


class EtaModel:
    """Epoch durations measured in past runs (``epoch_seconds`` in ``experiment.json``), for estimates."""

    def __init__(self, project: ProjectPaths, finished: list[Job]):
        from MLSystem.experiment_store import list_experiments

        self.project = project
        self.runs: dict[str, tuple[dict, float]] = {}  # id -> (metadata, mean epoch time)
        for summary in list_experiments(project):
            mean = summary.metadata.get("epoch_seconds")
            if "epoch_seconds" not in summary.metadata:  # trained before experiment.json recorded it
                times = _epoch_times(project.experiment(summary.id).dir)
                mean = statistics.fmean(times) if times else None
            if isinstance(mean, (int, float)):
                self.runs[summary.id] = (summary.metadata, float(mean))
        overheads = []
        for job in finished:
            t0, t1 = parse_iso(job.started), parse_iso(job.ended)
            run = self.runs.get(job.experiment_id or "")
            if t0 and t1 and run and job.epochs_done is not None and job.epochs_before is not None:
                overheads.append(max(0.0, (t1 - t0) - (job.epochs_done - job.epochs_before) * run[1]))
        self.startup = statistics.median(overheads) if overheads else DEFAULT_STARTUP_S
        self._groups: dict[tuple, Any] = {}

    def epoch_time(self, job: Job) -> float | None:
        """The job's own experiment if it has trained, else the closest runs of the same
        dataset/model/adapter (most overrides equal to theirs; the median of those runs)."""
        if job.experiment_id in self.runs:
            return self.runs[job.experiment_id][1]
        group = self._group(job.dataset, job.model, job.adapter)
        if group is None:
            return None
        means, index, median_all = group
        matches: dict[int, int] = {}
        for k, v in dict(a.split("=", 1) for a in job.args if "=" in a).items():
            for i in index.get((k, _norm_value(v)), ()):
                matches[i] = matches.get(i, 0) + 1
        if not matches:
            return median_all
        most = max(matches.values())
        return statistics.median(means[i] for i, n in matches.items() if n == most)

    def _group(self, dataset: str | None, model: str | None, adapter: str | None):
        """Runs of one dataset/model(/adapter): their means, a ``(key, value) -> runs`` index and
        the median of all, built once (1,000 pending jobs x 10,000 runs stays fast)."""
        key = (dataset, model, adapter)
        if key not in self._groups:
            means: list[float] = []
            index: dict[tuple[str, str], list[int]] = {}
            for meta, mean in self.runs.values():
                if (meta.get("dataset"), meta.get("model")) != (dataset, model):
                    continue
                if adapter and meta.get("adapter") != adapter:
                    continue
                for k, v in (meta.get("identity_values") or {}).items():
                    index.setdefault((k, _norm_value(v)), []).append(len(means))
                means.append(mean)
            self._groups[key] = (means, index, statistics.median(means)) if means else None
        return self._groups[key]

    def trained(self, experiment_id: str | None) -> int:
        state = read_json(self.project.experiment(experiment_id).state) if experiment_id else None
        return int((state or {}).get("epochs_completed", 0))

    def duration(self, job: Job, trained: int) -> float | None:
        if job.kind != Kind.TRAIN.value or job.max_epochs is None:
            return None
        remaining = max(0, job.max_epochs - trained)
        if remaining == 0:
            return 0.5  # "already complete" exits without importing torch
        per_epoch = self.epoch_time(job)
        return None if per_epoch is None else self.startup + remaining * per_epoch


def estimate(queue: JobQueue, jobs: list[Job] | None = None) -> dict[str, Eta]:
    """ETA of every pending job in run order, after what is running now."""
    jobs = queue.list([Status.RUNNING, Status.PENDING]) if jobs is None else jobs
    model = EtaModel(queue.project, queue.list([Status.FINISHED]))
    trained: dict[str, int] = {}
    clock, lower = 0.0, False
    out: dict[str, Eta] = {}
    for job in [j for j in jobs if j.status == Status.RUNNING.value]:
        done = trained.setdefault(job.experiment_id or "", job.epochs_before or 0)
        d = model.duration(job, done)
        started = parse_iso(job.started) or time.time()
        if d is None:
            lower = True
        else:
            clock += max(0.0, d - (time.time() - started))
        if job.max_epochs is not None:
            trained[job.experiment_id or ""] = max(done, job.max_epochs)
    for job in sorted((j for j in jobs if j.status == Status.PENDING.value), key=Job.order_key):
        if job.held:
            out[job.id] = Eta(None, None)
            continue
        key = job.experiment_id or ""
        done = trained[key] if key in trained else model.trained(job.experiment_id)
        d = model.duration(job, done)
        start = max(clock, (job.not_before or 0) - time.time())
        out[job.id] = Eta(start, d, lower)
        if d is None:
            lower = True
        else:
            clock = start + d
        if job.max_epochs is not None:
            trained[key] = max(done, job.max_epochs)
    return out


def format_seconds(s: float | None) -> str:
    if s is None:
        return "?"
    s = int(round(s))
    if s < 60:
        return f"{s}s"
    if s < 3600:
        return f"{s // 60}m{s % 60:02d}s"
    return f"{s // 3600}h{s % 3600 // 60:02d}m"
