"""Where a job goes when its process ended: the runner's filing rule as a pure function
(``classify_exit``), shared by every executor (``MLSystem.executor``)."""

from __future__ import annotations

import signal
from dataclasses import dataclass, field
from typing import Any

from MLSystem.errors import ExitCode
from MLSystem.jobs import Status

BUSY_BACKOFF_S = 3.0  # a job whose experiment is busy waits this long before it is tried again


def signal_name(num: int) -> str:
    try:
        return signal.Signals(num).name
    except ValueError:
        return f"signal {num}"


@dataclass(frozen=True)
class Outcome:
    """Where a job goes after its process ended, and the fields to record on it."""

    status: Status
    fields: dict[str, Any] = field(default_factory=dict)


def classify_exit(rc: int, *, stop_requested: bool, shutdown: str | None, attempts: int, max_attempts: int,
                  tail: str = "", job_id: str = "JOB", now: float = 0.0, infrastructure: str | None = None) -> Outcome:
    """The filing rule, as a pure function of how the process ended.

    ``rc``: the exit status (negative: killed by that signal); ``stop_requested``: a user asked
    this job to stop; ``shutdown``: the signal that is stopping the runner itself (None if not);
    ``attempts``/``max_attempts``: the job's run count and limit; ``tail``: the attempt's log tail;
    ``infrastructure``: the executor says the machine or cluster ended the run, not the job's code
    (e.g. a Slurm preemption; what happened, in words).

    * ended by the infrastructure -> pending, the attempt does not count;
    * 0 -> finished; 3 on request -> stopped; 3 or SIGTERM/SIGINT while the runner stops ->
      pending, and the attempt does not count; 3 from an outside signal -> pending (failed past
      ``max_attempts``); 4 (experiment busy) -> pending after a back-off, not counted;
    * killed by another signal -> failed, naming it; any other exit -> failed with the log tail.
    """
    last = tail.splitlines()[-1] if tail else ""
    hint = f"requeue with: python -m MLSystem.submit --requeue {job_id}"
    out: dict[str, Any] = {}
    if infrastructure:
        status = Status.PENDING
        out.update(attempts=attempts - 1, note=f"interrupted by the infrastructure ({infrastructure}); requeued")
    elif rc == ExitCode.OK:
        status, out["note"] = Status.FINISHED, last or "finished"
    elif rc == ExitCode.STOPPED and stop_requested:
        status, out["note"] = Status.STOPPED, f"stopped on request (resumable; {hint})"
    elif rc == ExitCode.STOPPED and shutdown:
        status = Status.PENDING
        out.update(attempts=attempts - 1,  # the runner's stop is not the job's failure
                   note=f"interrupted: runner stopped by {shutdown}; resumes at the next runner start")
    elif rc == ExitCode.STOPPED:
        status, out["note"] = Status.PENDING, "interrupted by a signal from outside (checkpoint saved); requeued"
        if attempts >= max_attempts:
            status, out["error"] = Status.FAILED, f"interrupted {attempts} times; limit max_attempts"
    elif rc == ExitCode.BUSY:
        status = Status.PENDING
        out.update(attempts=attempts - 1, not_before=now + BUSY_BACKOFF_S, note=f"waiting: {last or 'experiment busy'}")
    elif rc < 0:
        name = signal_name(-rc)
        out["signal"] = name
        if shutdown and -rc in (signal.SIGTERM, signal.SIGINT):
            status = Status.PENDING
            out.update(attempts=attempts - 1, note=f"interrupted: runner stopped by {shutdown}")
        else:
            status = Status.FAILED
            out["error"] = (f"killed by {name} (signal {-rc}): out of memory or killed from outside; {hint}"
                            + (f"\n{tail}" if tail else ""))
    else:
        status = Status.FAILED
        what = "bad input" if rc == ExitCode.BAD_INPUT else "failed"
        out["error"] = f"exit {rc} ({what}): " + (tail or "no output")
        out["note"] = f"exit {rc} ({what}): {_error_line(tail)}"
    if status == Status.FAILED:
        out.setdefault("note", (out.get("error") or "").splitlines()[0])
    return Outcome(status, out)


def _error_line(tail: str) -> str:
    """The line of a log tail that says what went wrong: the last ``error:`` line, else the last line."""
    lines = [line.strip() for line in tail.splitlines() if line.strip()]
    errors = [line for line in lines if line.lower().startswith("error")]
    return (errors or lines or ["no output"])[-1]
