"""Executors: where a job's process runs. The runner decides *what* starts in *which slot* (see
``MLSystem.scheduler``); an executor is a provider of slots that starts, watches and stops the job.

The interface (:class:`Executor`) — a Slurm/submitit executor is one more implementation::

    pool()                     -> Pool    the slots (and GPUs) this provider offers
    busy_gpus(runs)            -> set     GPUs taken by work outside the queue (skipped by the scheduler)
    start(job, cmd, env, cwd, log, placement) -> Run   begin one job in the placement the scheduler
                                          chose; ``env`` already holds the job's variables; raise
                                          ``OSError`` if it cannot start (the job is filed failed)
    poll(run)                  -> int | None   the exit status once the job ended (negative: killed
                                          by that signal), None while it runs; never blocks
    stop(run, how)             -> None    ``"graceful"``: checkpoint at the next step and exit 3
                                          (the stop flag ``MLSYSTEM_STOP_FILE`` is written by the
                                          runner first); ``"interrupt"``: the second Ctrl-C;
                                          ``"kill"``: no checkpoint
    classify(run, status)      -> Ending  the facts the runner files the job by (through the pure
                                          ``job_outcome.classify_exit``): exit code, signal name, and
                                          ``infrastructure`` — what ended the run when the machine or
                                          cluster did, not the job's code (a Slurm preemption or node
                                          failure; locally never): such an attempt does not count
                                          toward the job's ``max_attempts``

The local executor (:class:`LocalExecutor`) runs each job as a child process in its own session,
with output appended to the job's log. Children get SIGTERM when the runner dies (Linux
``PR_SET_PDEATHSIG``): they checkpoint and exit instead of training on unsupervised, and the next
runner requeues each of them once. PDEATHSIG fires when the *thread* that forked the child exits,
so the runner spawns every child from its main thread.

The cluster executor (``MLSystem.cluster_executor.SubmititExecutor``, ``--executor slurm`` or
``submitit-local``) reports ``--max-running`` slots (GPUs are allocated by the cluster, so
``pool().gpus`` stays empty and the job's ``devices`` go into the request), ``start``\ s by
submitting the same command, ``poll``\ s the engine, ``stop``\ s through the stop flag on the shared
filesystem (a user's stop goes through the engine's signal: ``engine_view.signal_stop``) and
``classify``\ s a run the engine ended without a result as infrastructure. Its jobs outlive the runner
(``remote = True``): it also has ``engine_records(jobs)`` (written into the job files before
submitting), ``start_array`` and ``array_key(job)`` (a sweep's jobs as one Slurm job array),
``state(run)`` and ``reattach(job)``.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, Protocol

from MLSystem import placement as gpu
from MLSystem.job_outcome import signal_name
from MLSystem.scheduler import Placement, Pool

STOP_SIGNALS = {"graceful": signal.SIGTERM, "interrupt": signal.SIGINT, "kill": signal.SIGKILL}


@dataclass
class Run:
    """One started job as its executor knows it."""

    job_id: str
    pid: int | None
    placement: Placement
    started: float = field(default_factory=time.time)
    handle: Any = None  # executor-specific (a Popen for the local executor)
    engine_id: str | None = None  # the cluster's job id (cluster executors only)


@dataclass(frozen=True)
class Ending:
    """How a job's run ended, in the runner's terms."""

    exit_code: int
    signal: str | None = None
    infrastructure: str | None = None  # what ended it, when the machine/cluster did (not the job's code)


class Executor(Protocol):
    def pool(self) -> Pool: ...

    def busy_gpus(self, runs: Iterable[Run]) -> set[str]: ...

    def start(self, job: Any, cmd: list[str], env: dict[str, str], cwd: Path, log: Path,
              placement: Placement) -> Run: ...

    def poll(self, run: Run) -> int | None: ...

    def stop(self, run: Run, how: str) -> None: ...

    def classify(self, run: Run, status: int) -> Ending: ...


def _die_with_parent_hook() -> Callable[[], None] | None:
    """A ``preexec_fn`` that makes the child receive SIGTERM when the runner dies (Linux only)."""
    if not sys.platform.startswith("linux"):
        return None
    import ctypes

    libc = ctypes.CDLL("libc.so.6", use_errno=True)
    parent = os.getpid()

    def hook() -> None:
        libc.prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
        if os.getppid() != parent:  # the runner died before prctl: do not run unsupervised
            os.kill(os.getpid(), signal.SIGTERM)

    return hook


class LocalExecutor:
    """Child processes on this machine; slots and GPUs from the runner's options."""

    name = "local"
    remote = False  # jobs die with the runner (PDEATHSIG); nothing to reattach

    BUSY_CHECK_S = 2.0  # NVML queries are cheap but not free; busy GPUs change slowly

    def __init__(self, pool: Pool):
        self._pool = pool
        self._busy: set[str] = set()
        self._busy_at = 0.0

    def pool(self) -> Pool:
        return self._pool

    def busy_gpus(self, runs: Iterable[Run]) -> set[str]:
        if not self._pool.gpu_mode:
            return set()
        now = time.monotonic()
        if now - self._busy_at >= self.BUSY_CHECK_S:
            runs = list(runs)
            ours = {g for r in runs for g in r.placement.gpus}
            # Our own jobs' GPUs are in use by definition; only the others can be busy "outside".
            others = [g for g in self._pool.gpus if g not in ours]
            self._busy = gpu.busy_gpus(others, own_pids=[r.pid for r in runs if r.pid])
            self._busy_at = now
        return set(self._busy)

    def start(self, job: Any, cmd: list[str], env: dict[str, str], cwd: Path, log: Path,
              placement: Placement) -> Run:
        env = dict(env, **gpu.job_env(placement, self._pool.gpu_mode))
        with open(log, "ab") as out:
            proc = subprocess.Popen(cmd, cwd=cwd, env=env, stdin=subprocess.DEVNULL, stdout=out,
                                    stderr=subprocess.STDOUT, start_new_session=True,
                                    preexec_fn=_die_with_parent_hook())
        return Run(job.id, proc.pid, placement, handle=proc)

    def poll(self, run: Run) -> int | None:
        return run.handle.poll()

    def stop(self, run: Run, how: str) -> None:
        with contextlib.suppress(ProcessLookupError):
            run.handle.send_signal(STOP_SIGNALS[how])

    def classify(self, run: Run, status: int) -> Ending:
        return Ending(status, signal_name(-status) if status < 0 else None)
