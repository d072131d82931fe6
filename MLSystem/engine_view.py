"""What a cluster engine says about queue jobs, for readers that do not run them (``submit --list``,
the cockpit), and the hard cancel of an engine job.

A job run by a cluster executor (``runner --executor slurm|submitit-local``) records its attempt in
``Job.engine``: ``{"executor", "tag", "job_id", "state", "folder"}`` (see ``MLSystem.cluster_executor``).
Slurm states are read with ``squeue`` (no accounting database needed: ``sacct`` fails without
``slurmdbd``); a job ``squeue`` no longer lists has ended (its runner files it). submitit-local
jobs are a controller process whose pid is the engine job id.
"""

from __future__ import annotations

import contextlib
import getpass
import os
import signal
import subprocess
from typing import Iterable

from MLSystem.jobs import Job
from MLSystem.utils.procs import pid_alive

EXECUTORS = ("local", "submitit-local", "slurm")
REMOTE = ("submitit-local", "slurm")


def run_quiet(cmd: list[str], timeout: float = 30) -> tuple[int, str]:
    """``(exit status, stdout)`` of a Slurm command; ``(127, "")`` when it cannot run."""
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    except (OSError, subprocess.SubprocessError):
        return 127, ""
    return proc.returncode, proc.stdout.strip()


def squeue_states(user: str | None = None) -> dict[str, str] | None:
    """Engine job id -> state for the user's jobs that Slurm still lists (array tasks one by one);
    None when ``squeue`` cannot be asked (no Slurm here, controller down)."""
    rc, out = run_quiet(["squeue", "-h", "-r", "-u", user or getpass.getuser(), "-o", "%i %T"])
    if rc != 0:
        return None
    states = {}
    for line in out.splitlines():
        parts = line.split()
        if len(parts) == 2:
            states[parts[0]] = parts[1].upper()
    return states


def live_states(jobs: Iterable[Job]) -> dict[str, str]:
    """Queue job id -> the engine's state now, for running jobs with an engine job id (one ``squeue``
    for all Slurm jobs). ``ENDED``: the engine no longer runs it (the runner files it);
    ``UNKNOWN``: the engine could not be asked."""
    jobs = [j for j in jobs if j.engine and j.engine.get("job_id")]
    slurm = None
    if any(j.engine.get("executor") == "slurm" for j in jobs):
        slurm = squeue_states()
    out = {}
    for j in jobs:
        jid = str(j.engine["job_id"])
        if j.engine.get("executor") == "slurm":
            out[j.id] = "UNKNOWN" if slurm is None else slurm.get(jid, "ENDED")
        elif j.engine.get("executor") == "submitit-local":
            out[j.id] = "RUNNING" if jid.isdigit() and pid_alive(int(jid)) else "ENDED"
    return out


def describe(job: Job, state: str | None = None) -> str:
    """``slurm 1234 RUNNING`` (empty for jobs of the local slots)."""
    engine = job.engine or {}
    if not engine:
        return ""
    jid = engine.get("job_id") or "(submitting)"
    return f"{engine.get('executor', '?')} {jid} {state or engine.get('state') or ''}".strip()


def cancel(job: Job) -> None:
    """Hard stop, no checkpoint (``scancel`` / SIGINT to the local controller)."""
    engine = job.engine or {}
    jid = str(engine.get("job_id") or "")
    if engine.get("executor") == "slurm" and jid:
        run_quiet(["scancel", jid])
    elif engine.get("executor") == "submitit-local" and jid.isdigit():
        with contextlib.suppress(OSError):  # already gone: nothing left to cancel
            os.kill(int(jid), signal.SIGINT)
