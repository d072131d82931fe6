"""The runner's side of the queue store: claim pending jobs, update and file running ones, and
recover what a dead runner left in ``running/``. A mixin of :class:`~MLSystem.queue_store.JobQueue`
(same lock, same atomic writes); kept apart because only the runner uses it."""

from __future__ import annotations

import contextlib
import time
from typing import Any, Callable

from MLSystem.jobs import Job, Status
from MLSystem.utils.clock import now_iso


class RunnerQueueOps:
    """Claiming and filing, for :class:`~MLSystem.queue_store.JobQueue` (which provides ``locked``,
    ``_scan``, ``_load``, ``_write``, ``_move``, ``paths``, ``host``)."""

    def claim_next(self, runner: dict, busy: Callable[[Job], str | None] = lambda j: None,
                   backoff_s: float = 10.0) -> Job | None:
        """Move the first runnable pending job to running/ and return it (None if there is none).

        ``busy(job)`` says why the job's experiment is taken right now; such a job stays pending
        and is skipped until ``backoff_s`` later.
        """
        claimed = self.claim(runner, lambda job: True, busy=busy, backoff_s=backoff_s, limit=1)
        return claimed[0][0] if claimed else None

    def claim(self, runner: dict, pick: Callable[[Job], Any], *, busy: Callable[[Job], str | None] = lambda j: None,
              backoff_s: float = 10.0, limit: int = 1) -> list[tuple[Job, Any]]:
        """Claim up to ``limit`` runnable pending jobs in run order, each moved to running/.

        For each runnable job whose experiment is not ``busy`` (see :meth:`claim_next`),
        ``pick(job)`` decides: ``None`` = skip it, a ``str`` = skip it and show that as its note,
        anything else = claim it (returned with the job). One pass under the lock, so the runner
        fills all its free slots at once.
        """
        now = time.time()
        out: list[tuple[Job, Any]] = []
        with self.locked():
            for job in sorted(self._scan(Status.PENDING), key=Job.order_key):
                if len(out) >= limit:
                    break
                if job.held or (job.not_before or 0) > now:
                    continue
                reason = busy(job)
                if reason:
                    job.not_before, job.note = now + backoff_s, f"waiting: {reason}"
                    self._write(Status.PENDING, job)
                    continue
                chosen = pick(job)
                if chosen is None:
                    continue
                if isinstance(chosen, str):
                    if job.note != chosen:
                        job.note = chosen
                        self._write(Status.PENDING, job)
                    continue
                job = self._move(job, Status.PENDING, Status.RUNNING, attempts=job.attempts + 1,
                                 started=now_iso(), ended=None, runner=runner, host=self.host, pid=None,
                                 exit_code=None, signal=None, error=None, stop_requested=None,
                                 not_before=None, placement=None, engine=None, note=f"attempt {job.attempts + 1} started")
                out.append((job, chosen))
        return out

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
                "outcome": status.value, "note": current.note,
                **({"engine": current.engine} if current.engine else {})}]
            with contextlib.suppress(FileNotFoundError):
                self.paths.stop_flag(job.id).unlink()
            return self._move(current, Status.RUNNING, status)

    def recover(self, done: Callable[[Job], str | None] = lambda j: None,
                keep: Callable[[Job], str | None] = lambda j: None) -> list[tuple[Job, Status]]:
        """Jobs left in running/ by a dead runner. Call only while holding the runner lock (then no
        live runner owns them).

        ``done(job)`` returns a note when the job's work is complete although it was never filed
        (the runner died between the job's exit and the filing): it goes to finished/. Otherwise it
        goes back to pending; the interrupted attempt does not count toward ``max_attempts``,
        because the runner died, not the job (the job's process got SIGTERM and checkpointed).
        ``keep(job)`` returns a note for a job that still runs without its runner (on a cluster,
        known by its engine job id): it stays in running/ with that note, for the runner to reattach.
        """
        out = []
        with self.locked():
            for job in self._scan(Status.RUNNING):
                who = (job.runner or {}).get("pid", "?")
                kept = keep(job)
                if kept:
                    job.note = kept
                    self._write(Status.RUNNING, job)
                    out.append((job, Status.RUNNING))
                    continue
                finished = done(job)
                if finished:
                    note = f"{finished} (filed at recovery: runner pid {who} died before filing it)"
                    job = self.complete(job, Status.FINISHED, ended=job.ended or now_iso(), note=note)
                    out.append((job, Status.FINISHED))
                    continue
                note = (f"recovered: runner pid {who} died during attempt {job.attempts}; resumes from its "
                        "checkpoint (not counted toward max_attempts)")
                job = self.complete(job, Status.PENDING, ended=now_iso(), note=note,
                                    attempts=max(0, job.attempts - 1))
                out.append((job, Status.PENDING))
        return out
