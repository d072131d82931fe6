"""A queue job on a cluster: the submitit callable that runs ``execute_train`` inside the
allocation, survives preemption and time limits, and the engine-side view of its outcome.

For the executor that wires this into the runner (issue 12; the runner's ``Executor`` interface:
``start / poll / stop / classify``)::

    from MLSystem.submitit_job import TrainJob, make_executor, outcome, engine_state
    executor = make_executor("slurm" | "local", folder, launcher_config, devices=d, num_nodes=n, gpu=True)
    job = executor.submit(TrainJob(cmd, cwd, env, log, max_requeues=cfg.max_requeues, job_id=queue_id))
    job.job_id                 # the engine's job id: record it in the queue job before anything else
    engine_state(job)          # "PENDING" / "RUNNING" / ... / "COMPLETED" / "GONE" — no accounting needed
    outcome(job)               # None while it runs (or waits to be requeued), else an Outcome:
                               #   finished (exit 0) | stopped (3) | busy (4) | failed (1, 2: code or
                               #   config failed, or requeue limit) | interrupted (infrastructure:
                               #   the engine ended it without a result -> requeue the queue job)
    stop: the engine's signal :data:`STOP_SIGNAL` (``scancel --signal=USR1 <id>``, see
          ``engine_view.signal_stop``) once the job's ``engine_view.stop_markers`` say its wrapper handles it;
          the training process checkpoints at the next step and exits 3 (outcome "stopped"). Else
          the job's stop file on the shared filesystem does the same.
    reattach: ``submitit.SlurmJob(folder, job_id)`` / ``executor.job_class(folder, job_id)``.
    sweeps as one Slurm job array (``array_parallelism`` caps how many run at once):
          ``executor.submit_array([TrainJob(...), ...])`` -> jobs ``<array id>_<i>``.
    never twice: the window between ``sbatch`` and recording the engine id in the queue job is
          closed by tagging the submission — write the attempt's tag (:func:`engine_tag`) into the
          queue job *before* submitting with ``executor.update_parameters(comment=tag)``; a runner
          that finds a tag but no engine id asks :func:`find_tagged` (the controller's jobs, running
          or recently ended) and reattaches instead of submitting again.

``cmd``/``env``/``log`` are what the local slots run (``python -m MLSystem.execute_train ...``
with the job's metrics and stop files): the job is the same process on both executors, so exit
codes, logs and exact resume are the same.

**Preemption and time limits.** Slurm sends the warning signal (SIGUSR2, ``signal_delay_s`` before
the limit, or ``scancel --signal=USR2`` for a preemption) to every process of the job. The
training process ignores it (it would kill it); :class:`TrainJob` turns it into the graceful stop
(SIGTERM to ``execute_train``: an exact mid-epoch checkpoint, exit 3), then requeues itself
through submitit's own path — ``checkpoint()`` returns a ``DelayedSubmission`` of a copy with
``requeues + 1``, submitit pickles it and runs ``scontrol requeue`` (locally: the controller
restarts it). The next attempt resumes the same experiment ID from that checkpoint. Past
``max_requeues`` the job fails with :class:`RequeueLimitExceeded` naming the count.

**Stop through the engine.** ``scancel --signal=USR1 <id>`` reaches every process of the job's steps
within ~30 ms (measured on the local Slurm 22.05). Not ``--signal=TERM``: slurmstepd treats TERM as
cancelling the step (SIGKILL after ``KillWait``). Not ``--full``/``--batch``: they also signal the
batch shell, which dies of USR1 (ending the job) or, with a trap, runs it only when its ``srun``
returns — the "signal arrives at the end" seen before. A signal sent before the step runs is
delivered by Slurm seconds after the step starts — possibly before :class:`TrainJob` handles USR1,
whose default action kills the process; so each task writes a marker once its handler is installed
(``engine_view.stop_markers``) and the sender signals only a job whose every task has one. :class:`TrainJob`
turns USR1 into SIGTERM to ``execute_train`` (the graceful stop) and ends "stopped", not requeued.

Why submitit's ``checkpoint()`` and not Lightning's ``SLURMEnvironment(auto_requeue=True)``: the
requeue must also work on submitit's LocalExecutor (no Slurm), must count attempts, and must
come after MLSystem's own exact checkpoint rather than Lightning's HPC checkpoint (which does not
hold the sampler position); ``execute_train`` therefore turns Lightning's auto-requeue off.

**Outcomes without accounting.** Without ``slurmdbd`` ``sacct`` fails and submitit reports every
state as UNKNOWN. :func:`engine_state` asks ``squeue`` (then ``scontrol show job``, which knows a
job for ``MinJobAge`` after it ended) and :func:`outcome` trusts the job's own record — submitit's
result file, written by the callable — and only its absence after the engine forgot the job
means "interrupted". This works with and without accounting, and needs no database server.

``job.result()`` maps onto outcomes as submitit defines them: ``FailedJobError`` — the callable
raised (training or configuration failed, requeue limit) — is "failed"; ``UncompletedJobError`` —
no result at all (node failure, killed past the limit, cancelled) — is "interrupted".
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import re
import signal
import subprocess
import socket
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from MLSystem.engine_view import STOP_MARKER, STOP_SIGNAL
from MLSystem.errors import ExitCode
from MLSystem.job_outcome import signal_name
from MLSystem.launcher_config import LauncherConfig, slurm_parameters
from MLSystem.utils.clock import now_iso

FINISHED, STOPPED, BUSY, FAILED, INTERRUPTED = "finished", "stopped", "busy", "failed", "interrupted"
# Engine states in which a job will still run (or run again after a requeue).
ACTIVE_STATES = frozenset({"PENDING", "CONFIGURING", "RUNNING", "COMPLETING", "REQUEUED", "REQUEUE_FED",
                           "REQUEUE_HOLD", "RESIZING", "SUSPENDED", "STAGE_OUT", "SIGNALING", "RESV_DEL_HOLD"})


class TrainingFailed(RuntimeError):
    """``execute_train`` exited with a failure (the message carries ``(exit code N)``)."""


class RequeueLimitExceeded(RuntimeError):
    """Preempted or timed out more often than ``max_requeues``."""


@dataclass
class JobResult:
    """What the callable returns (submitit's result file holds it)."""

    exit_code: int
    outcome: str
    requeues: int
    engine_job_id: str | None
    message: str = ""


def _warning_signal() -> int:
    from submitit import JobEnvironment

    return JobEnvironment._usr_sig()  # SIGUSR2 unless SUBMITIT_PREEMPT_SIGNAL says otherwise


def _ignore_engine_signals() -> None:
    # In the training process: Slurm signals every process of the job, and the default action of
    # SIGUSR2 / SIGUSR1 is to terminate. The callable turns them into SIGTERM (graceful stop) instead.
    signal.signal(_warning_signal(), signal.SIG_IGN)
    signal.signal(STOP_SIGNAL, signal.SIG_IGN)


def _marker_path(engine: Any) -> Path | None:
    with contextlib.suppress(Exception):  # not under submitit (a test calling the job directly)
        return Path(engine.paths.folder) / f"{engine.job_id}_{engine.global_rank}{STOP_MARKER}"
    return None


@dataclass
class TrainJob:
    """Checkpointable submitit callable: runs ``cmd`` (``execute_train``) and requeues on preemption."""

    cmd: list[str]
    cwd: str
    env: dict[str, str] = field(default_factory=dict)
    log: str | None = None
    max_requeues: int = 20
    requeues: int = 0
    job_id: str = ""  # the queue's job id, for messages

    def __call__(self) -> JobResult:
        from submitit import JobEnvironment

        engine = JobEnvironment()
        preempted, stop_asked = threading.Event(), threading.Event()
        child: list[subprocess.Popen] = []
        sig = _warning_signal()

        def on_signal(signum, frame) -> None:
            (preempted if signum == sig else stop_asked).set()
            if signum == STOP_SIGNAL and not engine.global_rank:
                append_log_line(self.log, f"stop signal {signal.Signals(signum).name} from the engine at {now_iso()}: "
                                       "checkpoint at the next step, then stop")
            if child and child[0].poll() is None:
                child[0].send_signal(signal.SIGTERM)

        submitit_handler = signal.signal(sig, on_signal)
        previous_stop = signal.signal(STOP_SIGNAL, on_signal)
        marker = _marker_path(engine)
        try:
            if marker is not None:  # from now on the engine's stop signal is handled (see stop_markers)
                marker.write_text(json.dumps({"pid": os.getpid(), "host": socket.gethostname(),
                                              "tasks": engine.num_tasks, "signal": STOP_SIGNAL.name}))
            code = self._run(child, preempted, stop_asked, engine.global_rank)
        finally:
            if marker is not None:
                with contextlib.suppress(OSError):
                    marker.unlink()
            signal.signal(STOP_SIGNAL, previous_stop)
            signal.signal(sig, submitit_handler)
        jid = _engine_id(engine)
        if preempted.is_set() and code in (ExitCode.STOPPED, -signal.SIGTERM, ExitCode.OK):
            if code != ExitCode.OK:  # stopped by the warning: requeue (finished meanwhile: done)
                return self._requeue(submitit_handler, sig, jid)
        if code == ExitCode.OK:
            return JobResult(0, FINISHED, self.requeues, jid, "trained or already complete")
        if code == ExitCode.STOPPED:
            return JobResult(3, STOPPED, self.requeues, jid, "stopped on request; resumable")
        if code == ExitCode.BUSY:
            return JobResult(4, BUSY, self.requeues, jid, "another process is training this experiment")
        how = f"was killed by {signal_name(-code)} (exit code 1)" if code < 0 else f"failed (exit code {code})"
        raise TrainingFailed(f"job {self.job_id or '?'}: execute_train {how}; see {self.log or 'the job output'}")

    def _run(self, child: list, preempted: threading.Event, stop_asked: threading.Event, rank: int) -> int:
        log_path = self.log if not rank or not self.log else f"{self.log}.rank{rank}"
        with contextlib.ExitStack() as stack:
            out = stack.enter_context(open(log_path, "a", encoding="utf-8")) if log_path else None
            proc = subprocess.Popen(self.cmd, cwd=self.cwd, env={**os.environ, **self.env}, stdin=subprocess.DEVNULL,
                                    stdout=out, stderr=subprocess.STDOUT if out else None,
                                    preexec_fn=_ignore_engine_signals)
            child.append(proc)
            if preempted.is_set() or stop_asked.is_set():  # a signal came while the process was being started
                proc.send_signal(signal.SIGTERM)
            return proc.wait()

    def _requeue(self, submitit_handler: Any, sig: int, jid: str | None) -> JobResult:
        if self.requeues >= self.max_requeues:
            raise RequeueLimitExceeded(
                f"job {self.job_id or '?'}: preempted or timed out {self.requeues + 1} times "
                f"(max_requeues={self.max_requeues}); the last checkpoint is kept: requeue the job to go on")
        from submitit.core.job_environment import SignalHandler

        if isinstance(getattr(submitit_handler, "__self__", None), SignalHandler):
            # submitit's own path: calls self.checkpoint(), pickles the DelayedSubmission, asks the
            # engine to requeue (scontrol requeue / local controller) and exits. Ranks > 0 return.
            submitit_handler(sig, None)
        return JobResult(3, STOPPED, self.requeues, jid, "stopped on the warning signal (not requeued by this rank)")

    def checkpoint(self, *args: Any, **kwargs: Any):
        """submitit's hook: the submission to run after a requeue (this job, one more requeue counted)."""
        from submitit.helpers import DelayedSubmission

        return DelayedSubmission(dataclasses.replace(self, requeues=self.requeues + 1), *args, **kwargs)


def append_log_line(log: str | os.PathLike[str] | None, line: str) -> None:
    """One line at the end of a job's log (none when there is no log or it cannot be written)."""
    if not log:
        return
    with contextlib.suppress(OSError), open(log, "a", encoding="utf-8") as fh:
        fh.write(line.rstrip() + "\n")


def _engine_id(engine: Any) -> str | None:
    with contextlib.suppress(Exception):
        return str(engine.job_id)
    return None


# -- the engine side (runner / submit --list) ---------------------------------------------------------
@dataclass(frozen=True)
class Outcome:
    """How a job ended, in the runner's terms (``exit_code`` as ``execute_train``'s; None: no result)."""

    kind: str  # FINISHED | STOPPED | BUSY | FAILED | INTERRUPTED
    exit_code: int | None
    reason: str = ""
    requeues: int | None = None

    @property
    def infrastructure(self) -> bool:
        """Ended by the cluster, not by the job's code: requeue it without counting an attempt."""
        return self.kind == INTERRUPTED


def _run_quiet(cmd: list[str]) -> str:
    try:
        return subprocess.run(cmd, capture_output=True, text=True, timeout=30).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return ""


def engine_state(job: Any) -> str:
    """The engine's state of ``job`` without accounting: squeue, then scontrol, then the job's record."""
    from submitit.local.local import LocalJob

    if isinstance(job, LocalJob):
        return str(job.state).upper()
    state = _run_quiet(["squeue", "-h", "-j", str(job.job_id), "-o", "%T"]).splitlines()
    if state and state[0]:
        return state[0].strip().upper()
    shown = re.search(r"\bJobState=(\S+)", _run_quiet(["scontrol", "show", "job", "-o", str(job.job_id)]))
    if shown:
        return shown.group(1).upper()
    return "COMPLETED" if job.paths.result_pickle.exists() else "GONE"


def outcome(job: Any) -> Outcome | None:
    """None while ``job`` runs or waits for a requeue, else how it ended (see the module docstring)."""
    from submitit.core.utils import FailedJobError, UncompletedJobError
    from submitit.local.local import LocalJob

    if job.num_tasks > 1:  # a DDP job, one Slurm task per process: rank 0's result is the job's
        main = job.task(0)
        if engine_state(job) in ACTIVE_STATES:
            return None
        job = main
    if not job.paths.result_pickle.exists():
        if isinstance(job, LocalJob):
            if not job.done():
                return None
            state = job.state
        else:
            state = engine_state(job)
            if state in ACTIVE_STATES:
                return None
        with contextlib.suppress(OSError):  # refresh the folder's attribute cache (NFS) before concluding
            job.paths.folder.chmod(job.paths.folder.stat().st_mode)
        if not job.paths.result_pickle.exists():
            return Outcome(INTERRUPTED, None, f"engine state {state}; the job left no result")
    try:
        result = job.result()
    except FailedJobError as exc:
        text = str(exc)
        found = re.search(r"\(exit code (\d+)\)", text)
        return Outcome(FAILED, int(found.group(1)) if found else 1, _error_line(text))
    except UncompletedJobError as exc:
        return Outcome(INTERRUPTED, None, str(exc).splitlines()[0])
    if isinstance(result, JobResult):
        return Outcome(result.outcome, result.exit_code, result.message, result.requeues)
    return Outcome(FINISHED, 0, repr(result)[:200])


def _error_line(text: str) -> str:
    """``TrainingFailed: job …`` — the exception line of the traceback submitit passes on."""
    found = re.findall(r"^([A-Za-z_][\w.]*(?:Error|Exception|Failed|Exceeded)): (.*)$", text, re.M)
    if found:
        name, message = found[-1]
        return f"{name.rsplit('.', 1)[-1]}: {message}"
    return text.strip().splitlines()[0] if text.strip() else ""


def engine_tag(queue_job_id: str, attempt: int) -> str:
    """The comment a submission carries, naming the queue job and its attempt."""
    return f"mlsystem:{queue_job_id}:{attempt}"


def find_tagged(tag: str) -> list[str]:
    """Slurm job ids whose comment is ``tag``, among the jobs the controller knows (pending,
    running, and ended within ``MinJobAge``); ``[]`` when there are none or Slurm is unreachable."""
    found = []
    for line in _run_quiet(["scontrol", "-o", "show", "job"]).splitlines():
        jid, comment = re.search(r"\bJobId=(\S+)", line), re.search(r"\bComment=(\S+)", line)
        if jid and comment and comment.group(1) == tag:
            array = re.search(r"\bArrayJobId=(\d+) ArrayTaskId=(\d+)", line)
            found.append(f"{array.group(1)}_{array.group(2)}" if array else jid.group(1))
    return found


def make_executor(kind: str, folder: str | os.PathLike[str], config: Any = None, *, devices: int = 1,
                  num_nodes: int = 1, gpu: bool = False, job_name: str = "mlsystem", **local: Any):
    """A submitit executor: ``"slurm"`` (parameters from a :class:`~MLSystem.launcher_config.LauncherConfig`)
    or ``"local"`` (``timeout_min``, ``signal_delay_s``, ``max_num_timeout`` in ``local``)."""
    import submitit

    config = config or LauncherConfig()
    if kind == "local":
        executor = submitit.LocalExecutor(folder=str(folder), max_num_timeout=local.pop("max_num_timeout",
                                                                                       config.max_requeues + 1))
        params = {"timeout_min": config.time_min, "signal_delay_s": config.signal_delay_s, **local}
        executor.update_parameters(**params)
        return executor
    if kind == "slurm":
        # submitit's own timeout countdown is kept above max_requeues: TrainJob's limit is the one users see.
        executor = submitit.SlurmExecutor(folder=str(folder), max_num_timeout=config.max_requeues + 1)
        executor.update_parameters(**slurm_parameters(config, devices=devices, num_nodes=num_nodes, gpu=gpu,
                                                      job_name=job_name))
        return executor
    raise ValueError(f"executor: {kind!r} is not a submitit executor (valid: local, slurm)")
