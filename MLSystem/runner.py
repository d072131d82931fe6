"""Transient queue runner: ``python -m MLSystem.runner [--slots N] [--gpus all|0,1] [--slots-per-gpu K]``.

Runs pending jobs as subprocesses, up to N at once (``--slots``, default 1), in queue order
(priority, then queue position, then age), and exits when nothing is pending and no job runs
(``--wait`` lingers for new jobs). One runner per queue: a second one says which pid holds the
queue and exits 0. Which job starts in which slot is decided by ``MLSystem.scheduler`` (with
``--gpus``: disjoint GPUs per job, a ``devices=2`` job takes two, GPUs busy outside the queue are
skipped, a job waiting for several GPUs reserves them so smaller jobs cannot starve it); jobs are
started through an executor (``MLSystem.executor``: the local one here; a cluster one later).

* Each job gets ``MLSYSTEM_SLOT``, a CPU thread budget (``OMP_NUM_THREADS``, ``torch.set_num_threads``;
  cores / slots unless ``--threads``) and, with ``--gpus``, ``CUDA_VISIBLE_DEVICES``.
* Output of each job goes to ``queue/logs/{job}.log``; the job records pid, host, slot/GPUs,
  start/end, exit code, experiment ID and, on failure, the last lines of its log.
* Exit 0 -> finished/, 3 -> stopped/ when a stop was requested (``submit --stop``), 4 (the
  experiment is trained by another process) -> stays pending and is retried later, other ->
  failed/. Killed by a signal -> failed/ with the signal named (``submit --requeue`` runs it again).
  Two jobs of one experiment never run at once (the experiment's lease; the runner also does not
  start a job whose experiment one of its slots is training).
* Interrupted by infrastructure, not by its code: a job left in running/ by a dead runner goes back
  to pending at the next runner start without counting toward ``max_attempts`` (or to finished/
  when its experiment reached the job's epochs before the runner died); a job stopped by a signal
  from outside (checkpoint saved, exit 3 without a request) is requeued, counting as an attempt.
* The job processes get SIGTERM if the runner dies (Linux ``PR_SET_PDEATHSIG``), so they save a
  checkpoint instead of training on unsupervised.
* SIGTERM / Ctrl-C on the runner: every running job checkpoints and stops; they stay pending and
  resume at the next runner start. Exit status 3 then, else 0.
* ``submit --drain``: the runner finishes the running jobs, starts no more, then exits.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

from MLSystem.errors import ExitCode, MLSystemError
from MLSystem.events.notify import NOTIFY_ENV
from MLSystem.executor import Executor, LocalExecutor, Run
from MLSystem.experiment_store import lease_holder, trained_epochs
from MLSystem.job_hooks import Hooks
from MLSystem.job_outcome import BUSY_BACKOFF_S, Outcome, classify_exit, signal_name
from MLSystem.jobs import Job, Kind, Status
from MLSystem.paths import ProjectPaths
from MLSystem.placement import build_pool, need_from_params, slot_args
from MLSystem.queue_store import JobQueue
from MLSystem.runner_record import RunnerLock, runner_info
from MLSystem.scheduler import Impossible, Need, Placement, Pool, Round, Waiting
from MLSystem.utils.clock import format_seconds, now_iso

__all__ = ["BUSY_BACKOFF_S", "Outcome", "Runner", "classify_exit", "main", "start_detached"]

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
                 executor: Executor | None = None):
        self.queue = queue
        self.wait = wait
        self.as_json = as_json
        self.out = out
        self.executor: Executor = executor or LocalExecutor(Pool(slots=1))
        self.pool = self.executor.pool()
        self.shutdown: str | None = None  # name of the signal that asked us to stop
        self.active: dict[str, Active] = {}
        self.counts = {s.value: 0 for s in Status}
        self.info = {**runner_info(), "slots": self.pool.slots, "gpus": list(self.pool.gpus),
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
        for job, status in self.queue.recover(self._done_before_filing):
            self.say("recovered", f"{job.id}: {job.note}", job=job.id, status=status.value)
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
                if not self.active:
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
        self.hooks.queue_drained(dict(self.counts))
        held = sum(1 for j in self.queue.pending() if j.held)
        summary = ", ".join(f"{n} {s}" for s, n in self.counts.items() if n) or "no jobs run"
        self.say("exit", f"runner done: {summary}" + (f"; {held} held job(s) left" if held else "")
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
        for job, where in claimed:
            self._start(job, where)
        return len(claimed)

    # -- one job ---------------------------------------------------------------------------------
    def _command(self, job: Job) -> list[str]:
        if job.kind == Kind.PLOT.value:
            return [sys.executable, "-m", "MLSystem.execute_plot", *job.args]
        return [sys.executable, "-m", "MLSystem.execute_train", *job.args]

    def _start(self, job: Job, where: Placement | Impossible) -> None:
        _fault("after_claim")
        q, project = self.queue, self.queue.project
        if isinstance(where, Impossible):
            done = q.complete(job, Status.FAILED, ended=now_iso(), error=f"cannot run here: {where.reason}",
                              note=f"cannot run here: {where.reason}; requeue it for a runner with more GPUs")
            self.counts[Status.FAILED.value] += 1
            self.hooks.job_ended(done)
            self.say("failed", f"failed: {job.id} {done.note}", job=job.id, status="failed", error=done.error)
            return
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
        try:
            run = self.executor.start(job, cmd, env, project.root, log_path, where)
        except OSError as exc:
            done = q.complete(job, Status.FAILED, ended=now_iso(), error=f"could not start {cmd[2]}: {exc}")
            self.counts[Status.FAILED.value] += 1
            self.hooks.job_ended(done)
            return
        # "started" is when the process was spawned (the claim time was a placeholder)
        job = q.update_running(job.id, pid=run.pid, started=now_iso(), epochs_before=epochs_before,
                               placement=where.to_dict()) or job
        self.active[job.id] = Active(job, run, log_path, offset, stop_flag)
        self.say("started", f"started {job.id}{slot} (experiment {job.experiment_id or '-'}, attempt {job.attempts}, "
                            f"pid {run.pid}): {' '.join(job.args)}",
                 job=job.id, experiment_id=job.experiment_id, pid=run.pid, slot=where.slot, gpus=list(where.gpus))
        self.hooks.job_started(job)
        _fault("after_start")

    def _reap(self) -> None:
        """File every job whose process has ended."""
        for job_id, a in list(self.active.items()):
            rc = self.executor.poll(a.run)
            if rc is None:
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
        fields: dict[str, Any] = {"ended": ended, "exit_code": rc, "epochs_done": self._epochs(job), **outcome.fields}
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


def start_detached(paths: ProjectPaths, *, wait: float = 0.0, slots: int | None = None, gpus: str | None = None,
                   slots_per_gpu: int | None = None, threads: int | None = None) -> int:
    """Start ``python -m MLSystem.runner`` in its own session (it outlives the caller, e.g. the
    cockpit or a closed browser); output goes to ``queue/logs/runner.log``. Returns its pid.
    A second runner on the same queue just reports the active one and exits."""
    log_path = JobQueue(paths).paths.logs / "runner.log"
    env = dict(os.environ, MLSYSTEM_ROOT=str(paths.root), PYTHONUNBUFFERED="1")
    cmd = [sys.executable, "-m", "MLSystem.runner", "--wait", str(wait),
           *slot_args(slots, gpus, slots_per_gpu, threads)]
    with open(log_path, "ab") as log:
        proc = subprocess.Popen(cmd, cwd=paths.root, env=env, stdin=subprocess.DEVNULL, stdout=log,
                                stderr=subprocess.STDOUT, start_new_session=True)
    # Reap it when it exits, so a long-lived caller does not keep a zombie that looks alive.
    threading.Thread(target=proc.wait, daemon=True, name=f"reap-runner-{proc.pid}").start()
    return proc.pid


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m MLSystem.runner", description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--wait", type=float, default=0.0, metavar="SECONDS",
                        help="keep waiting this long for new jobs once the queue is empty (default 0)")
    parser.add_argument("--slots", type=int, default=None, metavar="N",
                        help="run up to N jobs at once (default 1; with --gpus: GPUs x --slots-per-gpu)")
    parser.add_argument("--gpus", default=None, metavar="all|0,1",
                        help="place jobs on these GPUs (CUDA_VISIBLE_DEVICES per job); default: no placement")
    parser.add_argument("--slots-per-gpu", type=int, default=1, metavar="K",
                        help="jobs that may share one GPU (default 1)")
    parser.add_argument("--threads", type=int, default=None, metavar="N",
                        help="CPU threads per job (default: cores / slots when slots > 1)")
    parser.add_argument("--json", action="store_true", help="one JSON object per event line")
    parser.add_argument("--notify", action="append", default=[], metavar="URL",
                        help="POST a JSON notification here when a job ends or the queue drains (repeatable; "
                             "also configs/notify.yaml and $MLSYSTEM_NOTIFY)")
    args = parser.parse_args(argv)
    if args.notify:
        os.environ[NOTIFY_ENV] = "\n".join([os.environ.get(NOTIFY_ENV, ""), *args.notify]).strip()
    if args.wait < 0:
        parser.error("--wait: must be >= 0 seconds")
    try:
        pool = build_pool(args.slots, args.gpus, args.slots_per_gpu, args.threads,
                          warn=lambda s: print(s, file=sys.stderr, flush=True))
    except ValueError as exc:
        parser.error(str(exc))
    try:
        queue = JobQueue(ProjectPaths.discover())
        return Runner(queue, wait=args.wait, as_json=args.json, out=lambda s: print(s, flush=True),
                      executor=LocalExecutor(pool)).run()
    except MLSystemError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return int(exc.exit_code)


if __name__ == "__main__":
    from MLSystem.utils.cli import run_main

    sys.exit(run_main(main))
