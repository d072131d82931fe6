"""What a cluster engine says about queue jobs, for readers that do not run them (``submit --list``,
the cockpit), the graceful stop through the engine's signal, and the hard cancel of an engine job.

A job run by a cluster executor (``runner --executor slurm|submitit-local``) records its attempt in
``Job.engine``: ``{"executor", "tag", "job_id", "state", "folder"}`` (see ``MLSystem.cluster_executor``).
Slurm states are read with ``squeue`` (no accounting database needed: ``sacct`` fails without
``slurmdbd``); a job ``squeue`` no longer lists has ended (its runner files it). submitit-local
jobs are a controller process whose pid is the engine job id.
"""

from __future__ import annotations

import contextlib
import getpass
import json
import os
import signal
import socket
import subprocess
from pathlib import Path
from typing import Any, Iterable

from MLSystem.jobs import Job
from MLSystem.utils.procs import pid_alive

EXECUTORS = ("local", "submitit-local", "slurm")
REMOTE = ("submitit-local", "slurm")
# The engine's graceful stop (a user's Stop): not SIGTERM (Slurm cancels a step on it), not SIGUSR2
# (the preemption warning, which requeues). Lightning's USR1 handler (auto-requeue) is turned off.
STOP_SIGNAL = signal.SIGUSR1
# Each task of an engine job (``submitit_job.TrainJob``) writes ``<engine id>_<rank>`` + this in its
# submitit folder once it handles STOP_SIGNAL, and removes it when it ends.
STOP_MARKER = "_stoppable.json"


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


def signal_stop(job: Job, root: Path) -> tuple[bool, str]:
    """Graceful stop through the engine: ``scancel --signal=USR1 <id>`` (Slurm: every process of the
    job's steps) / USR1 to the tasks (submitit-local). The job's wrapper (``submitit_job.TrainJob``)
    turns it into SIGTERM to the training process: a checkpoint at its next step, exit 3, "stopped".
    Returns ``(sent, what was done or why not)``; when not sent, the caller writes the stop flag.

    Sent only when every task of the job wrote its marker (:func:`stop_markers`): before its
    handler is installed USR1 would kill the wrapper — and Slurm delivers a signal sent to a job that
    is still starting seconds later, once the step runs. Not ``--full``/``--batch``: the batch shell
    would die of USR1 (ending the job), or with a trap run it only when its ``srun`` returned.
    """
    engine = job.engine or {}
    jid, executor = str(engine.get("job_id") or ""), engine.get("executor")
    if executor not in REMOTE:
        return False, "not an engine job"
    if not jid:
        return False, "no engine job id yet (being submitted)"
    markers = stop_markers(root / engine.get("folder", ""), jid)
    tasks = max((int(m.get("tasks", 1)) for m in markers), default=1)
    if not markers or len(markers) < tasks:
        return False, f"{executor} job {jid} is not running its tasks yet"
    name = STOP_SIGNAL.name.removeprefix("SIG")
    if executor == "slurm":
        rc, _ = run_quiet(["scancel", f"--signal={name}", jid])
        if rc != 0:  # no Slurm client here (a cockpit off the cluster), controller down, job just ended
            return False, f"scancel --signal={name} {jid} failed (exit {rc})"
        return True, f"scancel --signal={name} {jid}"
    here = socket.gethostname()
    sent = 0
    for m in markers:
        if m.get("host") == here and isinstance(m.get("pid"), int):
            with contextlib.suppress(OSError):
                os.kill(m["pid"], STOP_SIGNAL)
                sent += 1
    if not sent:
        return False, f"submitit-local job {jid} runs on another machine"
    return True, f"{STOP_SIGNAL.name} to submitit-local job {jid}"


def stop_markers(folder: str | os.PathLike[str], engine_job_id: str) -> list[dict[str, Any]]:
    """The markers of the engine job's tasks that handle :data:`STOP_SIGNAL` now (pid, host, tasks);
    the signal may be sent when there are ``tasks`` of them. Empty when the job is not running."""
    found = []
    for p in Path(folder).glob(f"{engine_job_id}_*{STOP_MARKER}"):
        with contextlib.suppress(OSError, ValueError):
            found.append(json.loads(p.read_text()))
    return found
