"""The queue store: the one module that reads and writes files under ``queue/`` (layout:
:class:`~MLSystem.jobs.QueuePaths`; the folder a job file is in *is* its status).

Every write is atomic (temp file + rename) and happens under ``.lock``; a status change first
moves the file (one ``rename``, so a job is never in two folders) and then rewrites it. A file
that is not a valid job (bad JSON, wrong types, unknown version, a symbolic link or other
non-regular file) is moved to ``failed/`` as a valid record carrying the problem (and, for a
regular file, the original text), so it never crashes a reader. A file that exists but cannot be
*read* (another user's job without group read permission) is skipped with a warning: it is
someone else's job, not a broken one.
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import socket
import time
from pathlib import Path
from typing import Any, Iterable, Iterator

from MLSystem import runner_record
from MLSystem.engine_view import signal_stop
from MLSystem.jobs import (
    JOB_FIELDS,
    Job,
    JobNotFoundError,
    Kind,
    QueueError,
    QueueInputError,
    QueuePaths,
    Status,
)
from MLSystem.paths import ProjectPaths
from MLSystem.queue_claims import RunnerQueueOps
from MLSystem.queue_files import Invalid, Unreadable, read_job_file
from MLSystem.shared_lock import make_lock
from MLSystem.utils.atomic import atomic_write_json
from MLSystem.utils.clock import now_iso

LOCK_TIMEOUT_S = 30.0  # a holder never keeps the lock longer than one scan of the queue
log = logging.getLogger("MLSystem.queue")


class JobQueue(RunnerQueueOps):
    """All queue operations. Safe to use from several processes at once (CLI, runner, GUI)."""

    def __init__(self, paths: ProjectPaths | None = None):
        self.project = paths or ProjectPaths.discover()
        self.paths = QueuePaths(self.project.queue)
        for status in Status:
            self.paths.dir(status).mkdir(parents=True, exist_ok=True)
        self.paths.logs.mkdir(exist_ok=True)
        (self.paths.root / "control").mkdir(exist_ok=True)
        # flock locally; a lease on NFS and other network filesystems, where flock is unreliable
        self._lock = make_lock(self.paths.lock, timeout=LOCK_TIMEOUT_S)
        self.host = socket.gethostname()
        self.unreadable: set[str] = set()  # job files skipped because this process cannot read them

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
        """Parse and validate one job file (no caching: another process may have replaced it).
        Invalid files are quarantined; unreadable ones are skipped with a warning (see queue_files)."""
        result = read_job_file(str(path))
        if isinstance(result, Unreadable):
            self._unreadable(str(path), result.reason)
            return None
        if isinstance(result, Invalid):
            self._quarantine(Path(path), status, result.text, result.problem)
            return None
        if result is not None:
            result.status = status.value  # the folder is the truth
        return result

    def _unreadable(self, path: str, reason: str) -> None:
        """A job file this process may not read: someone else's job, not an invalid one."""
        self.unreadable.add(path)
        log.warning("%s: cannot be read (%s); skipped. If it is a teammate's job, ask them to make the queue "
                    "group-readable (umask 002)", path, reason)

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
            raise QueueInputError("job id: empty")
        names = {p.stem for s in Status for p in self.paths.dir(s).glob("*.json") if not p.name.startswith(".")}
        if ref in names:
            return ref
        matches = sorted(n for n in names if n.startswith(ref) or n.startswith(f"job-{ref}"))
        if len(matches) == 1:
            return matches[0]
        if not matches:
            raise JobNotFoundError(f"job {ref!r}: no such job in {self.paths.root} (see: python -m MLSystem.submit --list)")
        raise QueueInputError(f"job {ref!r} is ambiguous: {', '.join(matches[:8])}")

    def _find(self, ref: str) -> tuple[Job, Status]:
        job_id = self.resolve(ref)
        for status in Status:
            path = self.paths.job_file(status, job_id)
            if os.path.lexists(path):
                job = self._load(path, status)
                if job is not None:
                    return job, status
                if str(path) in self.unreadable:
                    raise QueueError(f"job {job_id}: {path} cannot be read by this user (permissions); "
                                     "ask its owner, or make the queue group-readable")
        raise JobNotFoundError(f"job {job_id}: its file is invalid or was removed (see failed/)")

    def get(self, ref: str) -> Job:
        with self.locked():
            return self._find(ref)[0]

    # -- creating ----------------------------------------------------------------------------------
    def add(self, job: Job) -> Job:
        return self.add_many([job])[0]

    def add_many(self, jobs: list[Job]) -> list[Job]:
        """Queue new jobs at the end (within their priority), in the order given; all or none."""
        with self.locked():
            base = time.time()
            written: list[Path] = []
            try:
                for i, job in enumerate(jobs):
                    job.position = job.position or base + i * 1e-6
                    job.created = job.created or now_iso()
                    job.log = job.log or str(self.paths.log(job.id).relative_to(self.project.root))
                    self._write(Status.PENDING, job)
                    written.append(self.paths.job_file(Status.PENDING, job.id))
            except BaseException:
                # All or nothing (a full disk, Ctrl-C): under the lock no runner has seen them yet.
                for path in written:
                    with contextlib.suppress(FileNotFoundError):
                        path.unlink()
                raise
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
        bad = [k for k in changes if k not in JOB_FIELDS or k in ("id", "status", "version")]
        if bad:
            raise QueueInputError(f"cannot edit {', '.join(bad)}; editable: args, priority, held, max_attempts, …")
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
            raise QueueInputError("move: give exactly one of before= or after=")
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
        """Running: the job checkpoints at its next step and ends 'stopped'. A cluster job gets the
        engine's signal (``engine_view.signal_stop``); where it cannot be sent (a local slot, a job
        still starting, no Slurm client here) its stop flag asks the same — a cluster job reads it on
        the shared filesystem. Pending: move it to stopped/ without running it."""
        with self.locked():
            job, status = self._find(ref)
            if status == Status.PENDING:
                self._move(job, Status.PENDING, Status.STOPPED, stop_requested=now_iso(), ended=now_iso(),
                           note="stopped before it ran")
                return job, f"{job.id} was pending: moved to stopped/ (requeue with --requeue {job.id})"
            if status != Status.RUNNING:
                raise QueueError(f"job {job.id} is {status.value}; only pending or running jobs can be stopped")
            job.stop_requested = now_iso()  # what files the exit as "stopped", however it was asked
            self._write(Status.RUNNING, job)
        # outside the lock: it may ask the cluster
        sent, how = signal_stop(job, self.project.root) if job.engine else (False, "")
        if not sent:
            self.paths.stop_flag(job.id).parent.mkdir(exist_ok=True)
            self.paths.stop_flag(job.id).write_text(now_iso() + "\n")
        return job, (f"stop requested: {job.id} saves a checkpoint at its next step and stops (resumable)"
                     + (f" [{how if sent else 'stop flag: ' + how}]" if how else ""))

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
        """``runner.json`` of the live runner (None when none runs); see :mod:`MLSystem.runner_record`."""
        return runner_record.active_runner(self.paths)
