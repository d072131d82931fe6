"""The runner's loop (:class:`Runner`): claim pending jobs into free slots, start them through an
executor (``MLSystem.executor``), watch them, and file each one when it ends (the filing rule is
``job_outcome.classify_exit``). ``python -m MLSystem.runner`` (``MLSystem.runner``) is its command
line; the behaviour a user sees is described there."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from MLSystem.errors import ExitCode
from MLSystem.executor import Executor, LocalExecutor, Run
from MLSystem.experiment_store import lease_holder, trained_epochs
from MLSystem.job_hooks import Hooks
from MLSystem.job_outcome import BUSY_BACKOFF_S, classify_exit, signal_name
from MLSystem.jobs import Job, Kind, Status
from MLSystem.placement import need_from_params
from MLSystem.queue_store import JobQueue
from MLSystem.runner_record import RunnerLock, runner_info
from MLSystem.runner_remote import (Reattach, batches, ended_fields, is_remote, state_change, submitted_fields,
                                    tail_offset)
from MLSystem.scheduler import Impossible, Need, Placement, Pool, Round, Waiting
from MLSystem.utils.clock import format_seconds, now_iso

__all__ = ["FAULT_ENV", "POLL_S", "Active", "Runner"]

POLL_S = 0.05  # how often the runner looks at its children and for new jobs (end-to-start latency)
LINGER_MAX_S = 60.0  # a transient runner waits for jobs due within this (or --wait), not longer
TAIL_LINES = 15
RESCAN_S = 1.0  # a queue that did not change is looked at again after this long
LOOKAHEAD = 64  # GPU mode: pending jobs whose needs are known ahead (later ones are looked at later)
FAULT_ENV = "MLSYSTEM_RUNNER_FAULT"  # tests: SIGKILL the runner itself at a named point


def _fault(point: str) -> None:
    """Fault injection for tests: ``MLSYSTEM_RUNNER_FAULT=after_claim`` kills the runner there."""
    if os.environ.get(FAULT_ENV) == point:
        os.kill(os.getpid(), signal.SIGKILL)


def _log_tail(path: Path, offset: int, lines: int = TAIL_LINES) -> str:
    """Last lines this attempt wrote to the log (the error summary of a failed job)."""
    try:
        with open(path, "rb") as fh:
            fh.seek(offset)
            text = fh.read().decode("utf-8", "replace")
    except FileNotFoundError:
        return ""
    kept = [ln for ln in text.splitlines() if ln.strip()][-lines:]
    return "\n".join(kept)[-3000:]


@dataclass
class _Launch:
    """A claimed job ready to be started: what runs, where, and where its output goes."""

    job: Job
    where: Placement
    cmd: list[str]
    env: dict[str, str]
    log_path: Path
    offset: int  # where this attempt's output starts in the log
    stop_flag: Path
    epochs_before: int | None
    slot: str  # " in slot N on GPU g" for messages


@dataclass
class Active:
    """A job this runner started and has not filed yet."""

    job: Job
    run: Run
    log_path: Path
    offset: int  # where this attempt's output starts in the log
    stop_flag: Path
    forwarded: str | None = None  # the shutdown level already forwarded to it


class Runner:
    def __init__(self, queue: JobQueue, *, wait: float = 0.0, as_json: bool = False, out=print,
                 executor: Executor | None = None, detach: bool = False):
        self.queue = queue
        self.detach = detach  # cluster executors: exit once nothing more can be submitted now
        self.wait = wait
        self.as_json = as_json
        self.out = out
        self.executor: Executor = executor or LocalExecutor(Pool(slots=1))
        self.pool = self.executor.pool()
        self.shutdown: str | None = None  # name of the signal that asked us to stop
        self.active: dict[str, Active] = {}
        self.counts = {s.value: 0 for s in Status}
        self.remote = is_remote(self.executor)
        self.info = {**runner_info(), "executor": getattr(self.executor, "name", "local"), "slots": self.pool.slots,
                     "gpus": list(self.pool.gpus),
                     "slots_per_gpu": self.pool.per_gpu, "threads": self.pool.threads}
        self.hooks = Hooks([])
        self._needs: dict[tuple, Need] = {}
        self._seen: tuple = ()  # pending/'s mtime and our job count at the last scan of the queue
        self._rescan_at = 0.0

    # -- output ----------------------------------------------------------------------------------
    def say(self, event: str, text: str, **data: Any) -> None:
        if self.as_json:
            self.out(json.dumps({"event": event, "message": text, "time": now_iso(), **data}, default=str))
        else:
            self.out(text)

    # -- main loop -------------------------------------------------------------------------------
    def run(self) -> int:
        lock = RunnerLock(self.queue.paths, self.info)
        if not lock.acquire():
            holder = lock.holder()
            self.say("busy", f"another runner is active on {self.queue.paths.root}: pid {holder.get('pid', '?')} "
                             f"on {holder.get('host', '?')} since {holder.get('since', '?')}; exiting",
                     holder=holder)
            return int(ExitCode.OK)
        try:
            self.hooks = Hooks.load(self.queue.project, say=lambda text: self.say("hook", text))
            previous = self._install_signals()
            try:
                return self._run_locked()
            finally:
                for sig, handler in previous.items():
                    signal.signal(sig, handler)
        finally:
            lock.release()

    def _run_locked(self) -> int:
        if self.queue.cancel_drain():
            self.say("drain", "removed a drain request left from an earlier runner")
        reattach = Reattach(self.executor)
        for job, status in self.queue.recover(self._done_before_filing, keep=reattach.keep):
            self.say("recovered", f"{job.id}: {job.note}", job=job.id, status=status.value)
            if job.id in reattach.runs:  # still runs on the cluster: follow it again, never resubmit
                job = self.queue.update_running(job.id, **reattach.engine_fields(job)) or job
                log = self.queue.paths.log(job.id)
                self.active[job.id] = Active(job, reattach.runs[job.id], log, tail_offset(log),
                                             self.queue.paths.stop_flag(job.id))
        if self.pool.slots > 1 or self.pool.gpus:
            gpus = f", GPUs {','.join(self.pool.gpus)} ({self.pool.per_gpu} per GPU)" if self.pool.gpus else ""
            threads = f", {self.pool.threads} CPU thread(s) each" if self.pool.threads else ""
            self.say("slots", f"runner pid {os.getpid()}: {self.pool.slots} slot(s){gpus}{threads}",
                     slots=self.pool.slots, gpus=list(self.pool.gpus), threads=self.pool.threads)
        idle_since: float | None = None
        draining = False
        while True:
            self._reap()
            if self.shutdown:
                if not self.active or self.remote:  # cluster jobs run on without us: a later runner reattaches
                    break
                self._forward_shutdown()
            elif not draining and self.queue.drain_requested():
                draining = True
                if self.active:
                    self.say("draining", f"drain requested: finishing {len(self.active)} running job(s), "
                                         "starting no more")
            if draining and not self.active:
                self.queue.cancel_drain()
                self.say("drained", "drain requested: stopping (pending jobs stay queued)")
                break
            started, scanned = 0, False
            if not self.shutdown and not draining and len(self.active) < self.pool.slots and self._queue_changed():
                started, scanned = self._fill(), True
            if self.detach and self.remote and self.active and (
                    (scanned and not started) or len(self.active) >= self.pool.slots):
                break
            if self.active or started:
                idle_since = None
                for a in list(self.active.values()):
                    self.hooks.job_polled(a.job)
                time.sleep(POLL_S)
                continue
            if scanned:
                wake = self.queue.next_wakeup()
                if wake is not None and wake > max(LINGER_MAX_S, self.wait):
                    wake = None  # due far in the future (a hand-written not_before): not worth staying for
                if wake is None:  # nothing runnable now or later (held jobs do not keep us alive)
                    idle_since = idle_since or time.monotonic()
                else:
                    idle_since = None
            if idle_since is not None and time.monotonic() - idle_since >= self.wait:
                break
            time.sleep(POLL_S)
        if not self.active:
            self.hooks.queue_drained(dict(self.counts))
        held = sum(1 for j in self.queue.pending() if j.held)
        summary = ", ".join(f"{n} {s}" for s, n in self.counts.items() if n) or "no jobs run"
        left = (f"; {len(self.active)} job(s) still run on {self.executor.name} (a later runner reattaches them)"
                if self.active else "")
        self.say("exit", f"runner done: {summary}" + (f"; {held} held job(s) left" if held else "") + left
                 + (f" (stopped by {self.shutdown})" if self.shutdown else ""), counts=self.counts)
        return int(ExitCode.STOPPED if self.shutdown else ExitCode.OK)

    # -- scheduling ------------------------------------------------------------------------------
    def _queue_changed(self) -> bool:
        """Whether a scan of pending/ may find something new: the folder changed (a submit, an edit),
        one of our jobs ended, or a second passed (back-offs expire, GPUs free up). Scanning a
        1,000-job queue 20 times a second while the slots are full would cost a core."""
        try:
            mtime = os.stat(self.queue.paths.dir(Status.PENDING)).st_mtime_ns
        except OSError:
            mtime = 0
        key, now = (mtime, len(self.active)), time.monotonic()
        if key != self._seen or now >= self._rescan_at:
            self._seen, self._rescan_at = key, now + RESCAN_S
            return True
        return False

    def _busy(self, job: Job) -> str | None:
        """Why the job's experiment cannot be trained now (one of our slots or another process
        trains it), else None."""
        if job.kind != Kind.TRAIN.value or not job.experiment_id or self._own(job):
            return None  # our own slot's lease: handled by the scheduling pick, without a backoff
        exp = self.queue.project.experiment(job.experiment_id)
        owner = lease_holder(exp, probe=True)
        if owner is None:
            return None
        return f"experiment {exp.id} is busy: {owner.get('purpose', 'training')} by pid {owner.get('pid')}"

    def _own(self, job: Job) -> Active | None:
        """The running job of ours that trains the same experiment (so this one must wait)."""
        if job.kind != Kind.TRAIN.value or not job.experiment_id:
            return None
        return next((a for a in self.active.values()
                     if a.job.kind == Kind.TRAIN.value and a.job.experiment_id == job.experiment_id), None)

    def _need(self, job: Job) -> Need | None:
        """GPUs the job asks for (GPU mode only; None until known)."""
        if not self.pool.gpu_mode or job.kind != Kind.TRAIN.value:
            return Need(0) if job.kind != Kind.TRAIN.value else Need(1)
        return self._needs.get((job.id, tuple(job.args)))

    def _learn_needs(self) -> None:
        """Merge the params of the next pending jobs (outside the queue lock: a merge takes ~0.1 s)."""
        from MLSystem.config_merge import merge_config  # lazy: Hydra, only in GPU mode

        for job in [j for j in self.queue.pending() if j.runnable and j.kind == Kind.TRAIN.value][:LOOKAHEAD]:
            key = (job.id, tuple(job.args))
            if key in self._needs:
                continue
            try:
                params = merge_config(job.args, paths=self.queue.project).params
            except Exception:  # bad input: the job itself reports it (exit 2) on one GPU
                params = {}
            self._needs[key] = need_from_params(params, len(self.pool.gpus))

    def _fill(self) -> int:
        """Start jobs in the free slots; returns how many started."""
        if self.pool.gpu_mode:
            self._learn_needs()
        runs = [a.run for a in self.active.values()]
        rnd = Round(self.pool, running=[r.placement for r in runs], busy=self.executor.busy_gpus(runs))
        claimed_now: dict[str, str] = {}  # experiment -> job claimed in this round

        def pick(job: Job) -> Any:
            same = job.experiment_id if job.kind == Kind.TRAIN.value else None
            if same and (other := self._own(job) or claimed_now.get(same)):
                # our own slot trains it: picked as soon as that job ends (no backoff)
                other_id = other.job.id if isinstance(other, Active) else other
                return f"waiting: experiment {same} is being trained by {other_id}"
            need = self._need(job)
            if need is None:
                return None
            got = rnd.offer(need)
            if isinstance(got, Waiting):
                return f"waiting: {got.reason}"
            if same:
                claimed_now[same] = job.id
            return got

        claimed = self.queue.claim(self.info, pick, busy=self._busy, backoff_s=BUSY_BACKOFF_S,
                                   limit=self.pool.slots - len(self.active))
        for batch in batches(self.executor, claimed):
            self._start_batch(batch)
        return len(claimed)

    # -- one job ---------------------------------------------------------------------------------
    def _command(self, job: Job) -> list[str]:
        if job.kind == Kind.PLOT.value:
            return [sys.executable, "-m", "MLSystem.execute_plot", *job.args]
        return [sys.executable, "-m", "MLSystem.execute_train", *job.args]

    def _start_batch(self, claimed: list[tuple[Job, Placement | Impossible]]) -> None:
        """Start claimed jobs: one by one, or — several jobs the executor groups (a sweep on Slurm) —
        as one submission (a job array), each job's engine record written before it."""
        _fault("after_claim")
        launches = [launch for job, where in claimed if (launch := self._prepare(job, where))]
        if not launches:
            return
        q = self.queue
        if self.remote:  # the intent first: a runner killed during the submission finds it by its tag
            records = self.executor.engine_records([la.job for la in launches])  # type: ignore[attr-defined]
            for la in launches:
                la.job = q.update_running(la.job.id, engine=records[la.job.id]) or la.job
        try:
            if len(launches) == 1:
                la = launches[0]
                runs = [self.executor.start(la.job, la.cmd, la.env, q.project.root, la.log_path, la.where)]
            else:
                runs = self.executor.start_array(  # type: ignore[attr-defined]
                    [(la.job, la.cmd, la.env, la.log_path, la.where) for la in launches], q.project.root)
        except OSError as exc:
            for la in launches:
                done = q.complete(la.job, Status.FAILED, ended=now_iso(), error=f"could not start {la.cmd[2]}: {exc}")
                self.counts[Status.FAILED.value] += 1
                self.hooks.job_ended(done)
            return
        _fault("after_submit")
        for la, run in zip(launches, runs):
            self._started(la, run)

    def _prepare(self, job: Job, where: Placement | Impossible) -> _Launch | None:
        """The command, environment and log of a claimed job (None: it cannot run here, filed failed)."""
        q, project = self.queue, self.queue.project
        if isinstance(where, Impossible):
            done = q.complete(job, Status.FAILED, ended=now_iso(), error=f"cannot run here: {where.reason}",
                              note=f"cannot run here: {where.reason}; requeue it for a runner with more GPUs")
            self.counts[Status.FAILED.value] += 1
            self.hooks.job_ended(done)
            self.say("failed", f"failed: {job.id} {done.note}", job=job.id, status="failed", error=done.error)
            return None
        log_path, stop_flag = q.paths.log(job.id), q.paths.stop_flag(job.id)
        with contextlib.suppress(FileNotFoundError):
            stop_flag.unlink()  # a request meant for an earlier attempt
        epochs_before = self._epochs(job)
        env = dict(os.environ, MLSYSTEM_ROOT=str(project.root), PYTHONUNBUFFERED="1", MLSYSTEM_JOB_ID=job.id,
                   MLSYSTEM_JOB_METRICS=str(q.paths.metrics(job.id)), MLSYSTEM_STOP_FILE=str(stop_flag))
        env.pop(FAULT_ENV, None)
        cmd = self._command(job)
        slot = f" in slot {where.slot}" + (f" on GPU {','.join(where.gpus)}" if where.gpus else "")
        with open(log_path, "ab") as log:
            offset = log.tell()
            header = (f"=== {now_iso()} attempt {job.attempts} of {job.id} by runner pid {os.getpid()} "
                      f"on {self.info['host']}{slot}: {' '.join(cmd[1:])}\n").encode()
            log.write(header)
            offset += len(header)
        return _Launch(job, where, cmd, env, log_path, offset, stop_flag, epochs_before, slot)

    def _started(self, la: _Launch, run: Run) -> None:
        q, job, where = self.queue, la.job, la.where
        # "started" is when the process was spawned / the job submitted (the claim time was a placeholder)
        job = q.update_running(job.id, pid=run.pid, started=now_iso(), epochs_before=la.epochs_before,
                               placement=where.to_dict(), **submitted_fields(job, run)) or job
        self.active[job.id] = Active(job, run, la.log_path, la.offset, la.stop_flag)
        how = f"{self.executor.name} job {run.engine_id}" if run.engine_id else f"pid {run.pid}"
        slot = la.slot if not self.remote else ""
        self.say("started", f"started {job.id}{slot} (experiment {job.experiment_id or '-'}, "
                            f"attempt {job.attempts}, {how}): {' '.join(job.args)}",
                 job=job.id, experiment_id=job.experiment_id, pid=run.pid, slot=where.slot, gpus=list(where.gpus),
                 engine_id=run.engine_id)
        self.hooks.job_started(job)
        _fault("after_start")

    def _reap(self) -> None:
        """File every job whose process has ended."""
        for job_id, a in list(self.active.items()):
            rc = self.executor.poll(a.run)
            if rc is None:
                if self.remote and (engine := state_change(self.executor, a.job, a.run)):
                    a.job = self.queue.update_running(job_id, engine=engine) or a.job
                continue
            ended = now_iso()
            _fault("after_exit")
            del self.active[job_id]
            self._file(a, rc, ended)

    def _forward_shutdown(self) -> None:
        """Runner stopping: ask every job to checkpoint and exit (flag file + SIGTERM; SIGINT on
        a second Ctrl-C), once per level."""
        for a in self.active.values():
            if a.forwarded == self.shutdown:
                continue
            with contextlib.suppress(OSError):
                a.stop_flag.write_text(now_iso() + "\n")
            self.executor.stop(a.run, "interrupt" if self.shutdown == "SIGINT-again" else "graceful")
            a.forwarded = self.shutdown

    def _done_before_filing(self, job: Job) -> str | None:
        """At recovery: a note when the job's experiment already has the job's epochs (its process
        finished, the runner died before filing it), else None."""
        done = self._epochs(job)
        if done is None or job.max_epochs is None or done < job.max_epochs:
            return None
        return f"{job.experiment_id} complete ({done}/{job.max_epochs} epochs)"

    def _epochs(self, job: Job) -> int | None:
        if job.kind != Kind.TRAIN.value or not job.experiment_id:
            return None
        return trained_epochs(self.queue.project.experiment(job.experiment_id))

    def _file(self, a: Active, rc: int, ended: str) -> None:
        """Decide where the finished process leaves its job (``job_outcome.classify_exit``)."""
        q, job = self.queue, a.job
        current = q.running(job.id) or job  # re-read: a stop may have been requested meanwhile
        ending = self.executor.classify(a.run, rc)
        outcome = classify_exit(rc, stop_requested=bool(current.stop_requested), shutdown=self.shutdown,
                                attempts=current.attempts, max_attempts=current.max_attempts,
                                tail=_log_tail(a.log_path, a.offset), job_id=job.id, now=time.time(),
                                infrastructure=ending.infrastructure)
        fields: dict[str, Any] = {"ended": ended, "exit_code": rc, "epochs_done": self._epochs(job), **outcome.fields,
                                  **ended_fields(current)}
        status = outcome.status
        done = q.complete(current, status, **fields)
        self.counts[status.value] += 1
        self.hooks.job_ended(done)
        took = time.time() - a.run.started
        self.say(status.value, f"{status.value}: {job.id} (exit {rc}, {format_seconds(took)}) {done.note}",
                 job=job.id, exit_code=rc, status=status.value, experiment_id=job.experiment_id,
                 error=done.error, slot=a.run.placement.slot)

    # -- signals ---------------------------------------------------------------------------------
    def _install_signals(self) -> dict:
        def on_signal(signum, frame):
            name = signal_name(signum)
            if self.shutdown and signum == signal.SIGINT:
                self.shutdown = "SIGINT-again"  # a second Ctrl-C interrupts the jobs themselves
                return
            self.shutdown = name
            if self.active:
                print(f"received {name}: {', '.join(self.active)} save a checkpoint at their next step and stop; "
                      "they stay queued (Ctrl-C again to interrupt them)", file=sys.stderr, flush=True)

        previous = {}
        for sig in (signal.SIGTERM, signal.SIGINT):
            previous[sig] = signal.signal(sig, on_signal)
        return previous
