"""Transient queue runner: ``python -m MLSystem.runner [--wait SECONDS] [--json]``.

Runs pending jobs one at a time (priority, then queue position, then age) as subprocesses and
exits when nothing is left (``--wait`` lingers for new jobs). One runner per queue: a second one
says which pid holds the queue and exits 0.

* Output of each job goes to ``queue/logs/{job}.log``; the job records pid, host, start/end,
  exit code, experiment ID and, on failure, the last lines of its log.
* Exit 0 -> finished/, 3 -> stopped/ when a stop was requested (``submit --stop``), 4 (the
  experiment is trained by another process) -> stays pending and is retried later, other ->
  failed/. Killed by a signal -> failed/ with the signal named (``submit --requeue`` runs it again).
* Interrupted by infrastructure, not by its code: a job left in running/ by a dead runner goes back
  to pending at the next runner start (attempts +1, failed past ``max_attempts``); a job stopped by
  a signal from outside (checkpoint saved, exit 3 without a request) is requeued the same way.
* The job process gets SIGTERM if the runner dies (Linux ``PR_SET_PDEATHSIG``), so it saves a
  checkpoint instead of training on unsupervised.
* SIGTERM / Ctrl-C on the runner: the current job checkpoints and stops; it stays pending and
  resumes at the next runner start. Exit status 3 then, else 0.
* ``submit --drain``: the runner finishes the current job, then exits.
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
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

from MLSystem.errors import ExitCode, MLSystemError
from MLSystem.experiment_store import lease_holder, trained_epochs
from MLSystem.job_hooks import Hooks
from MLSystem.jobs import Job, Kind, Status
from MLSystem.paths import ProjectPaths
from MLSystem.queue_store import JobQueue
from MLSystem.runner_record import RunnerLock, runner_info
from MLSystem.utils.clock import format_seconds, now_iso, parse_iso

POLL_S = 0.05  # how often an idle runner looks for new jobs (submit-to-start latency)
BUSY_BACKOFF_S = 3.0
LINGER_MAX_S = 60.0  # a transient runner waits for jobs due within this (or --wait), not longer
TAIL_LINES = 15
FAULT_ENV = "MLSYSTEM_RUNNER_FAULT"  # tests: SIGKILL the runner itself at a named point


def _fault(point: str) -> None:
    """Fault injection for tests: ``MLSYSTEM_RUNNER_FAULT=after_claim`` kills the runner there."""
    if os.environ.get(FAULT_ENV) == point:
        os.kill(os.getpid(), signal.SIGKILL)


def _die_with_parent_hook() -> Callable[[], None] | None:
    """A ``preexec_fn`` that makes the child receive SIGTERM when the runner dies (Linux only)."""
    if not sys.platform.startswith("linux"):
        return None
    import ctypes

    try:
        libc = ctypes.CDLL("libc.so.6", use_errno=True)
    except OSError:
        return None
    parent = os.getpid()

    def hook() -> None:
        libc.prctl(1, int(signal.SIGTERM))  # PR_SET_PDEATHSIG
        if os.getppid() != parent:  # the runner died before prctl took effect
            os.kill(os.getpid(), signal.SIGTERM)

    return hook


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


def _signal_name(num: int) -> str:
    try:
        return signal.Signals(num).name
    except ValueError:
        return f"signal {num}"


class Runner:
    def __init__(self, queue: JobQueue, *, wait: float = 0.0, as_json: bool = False, out=print):
        self.queue = queue
        self.wait = wait
        self.as_json = as_json
        self.out = out
        self.shutdown: str | None = None  # name of the signal that asked us to stop
        self.proc: subprocess.Popen | None = None
        self.current: Job | None = None
        self.counts = {s.value: 0 for s in Status}
        self.info = runner_info()
        self.hooks = Hooks([])

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
            self.hooks = Hooks.load(self.queue.paths, say=lambda text: self.say("hook", text))
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
        for job, status in self.queue.recover():
            self.say("recovered", f"{job.id}: {job.note if status == Status.PENDING else job.error}",
                     job=job.id, status=status.value)
        idle_since: float | None = None
        while not self.shutdown:
            if self.queue.drain_requested():
                self.queue.cancel_drain()
                self.say("drained", "drain requested: stopping (pending jobs stay queued)")
                break
            job = self.queue.claim_next(self.info, busy=self._busy, backoff_s=BUSY_BACKOFF_S)
            if job is not None:
                idle_since = None
                self._execute(job)
                continue
            wake = self.queue.next_wakeup()
            if wake is not None and wake > max(LINGER_MAX_S, self.wait):
                wake = None  # due far in the future (a hand-written not_before): not worth staying for
            if wake is None:  # nothing runnable now or later (held jobs do not keep us alive)
                idle_since = idle_since or time.monotonic()
                if time.monotonic() - idle_since >= self.wait:
                    break
            time.sleep(POLL_S if wake is None else min(max(wake, 0.01), POLL_S * 4))
        self.hooks.queue_drained(dict(self.counts))
        held = sum(1 for j in self.queue.pending() if j.held)
        summary = ", ".join(f"{n} {s}" for s, n in self.counts.items() if n) or "no jobs run"
        self.say("exit", f"runner done: {summary}" + (f"; {held} held job(s) left" if held else "")
                 + (f" (stopped by {self.shutdown})" if self.shutdown else ""), counts=self.counts)
        return int(ExitCode.STOPPED if self.shutdown else ExitCode.OK)

    def _busy(self, job: Job) -> str | None:
        """Why the job's experiment cannot be trained now (its lease is held), else None."""
        if job.kind != Kind.TRAIN.value or not job.experiment_id:
            return None
        exp = self.queue.project.experiment(job.experiment_id)
        owner = lease_holder(exp, probe=True)
        if owner is None:
            return None
        return f"experiment {exp.id} is busy: {owner.get('purpose', 'training')} by pid {owner.get('pid')}"

    # -- one job ---------------------------------------------------------------------------------
    def _command(self, job: Job) -> list[str]:
        if job.kind == Kind.PLOT.value:
            return [sys.executable, "-m", "MLSystem.execute_plot", *job.args]
        return [sys.executable, "-m", "MLSystem.execute_train", *job.args]

    def _execute(self, job: Job) -> None:
        _fault("after_claim")
        q, project = self.queue, self.queue.project
        log_path, stop_flag = q.paths.log(job.id), q.paths.stop_flag(job.id)
        with contextlib.suppress(FileNotFoundError):
            stop_flag.unlink()  # a request meant for an earlier attempt
        epochs_before = self._epochs(job)
        env = dict(os.environ, MLSYSTEM_ROOT=str(project.root), PYTHONUNBUFFERED="1", MLSYSTEM_JOB_ID=job.id,
                   MLSYSTEM_JOB_METRICS=str(q.paths.metrics(job.id)), MLSYSTEM_STOP_FILE=str(stop_flag))
        env.pop(FAULT_ENV, None)
        cmd = self._command(job)
        with open(log_path, "ab") as log:
            offset = log.tell()
            header = (f"=== {now_iso()} attempt {job.attempts} of {job.id} by runner pid {os.getpid()} "
                      f"on {self.info['host']}: {' '.join(cmd[1:])}\n")
            log.write(header.encode())
            log.flush()
            offset += len(header.encode())
            try:
                self.proc = subprocess.Popen(cmd, cwd=project.root, env=env, stdin=subprocess.DEVNULL, stdout=log,
                                             stderr=subprocess.STDOUT, start_new_session=True,
                                             preexec_fn=_die_with_parent_hook())
            except OSError as exc:
                q.complete(job, Status.FAILED, ended=now_iso(), error=f"could not start {cmd[2]}: {exc}")
                self.counts[Status.FAILED.value] += 1
                return
        self.current = job
        # "started" is when the process was spawned (the claim time was a placeholder)
        job = q.update_running(job.id, pid=self.proc.pid, started=now_iso(), epochs_before=epochs_before) or job
        self.say("started", f"started {job.id} (experiment {job.experiment_id or '-'}, attempt {job.attempts}, "
                            f"pid {self.proc.pid}): {' '.join(job.args)}",
                 job=job.id, experiment_id=job.experiment_id, pid=self.proc.pid)
        self.hooks.job_started(job)
        _fault("after_start")
        forwarded = None
        while True:
            try:
                rc = self.proc.wait(timeout=0.1)
                break
            except subprocess.TimeoutExpired:
                self.hooks.job_polled(job)
                if self.shutdown and forwarded != self.shutdown:
                    self._forward_stop(job, stop_flag)
                    forwarded = self.shutdown
        ended = now_iso()
        _fault("after_exit")
        self.current, self.proc = None, None
        self._file(job, rc, ended, log_path, offset)

    def _forward_stop(self, job: Job, stop_flag: Path) -> None:
        """Runner stopping: ask the job to checkpoint and exit (flag file + SIGTERM)."""
        with contextlib.suppress(OSError):
            stop_flag.write_text(now_iso() + "\n")
        with contextlib.suppress(ProcessLookupError):
            if self.proc is not None:
                self.proc.send_signal(signal.SIGINT if self.shutdown == "SIGINT-again" else signal.SIGTERM)

    def _epochs(self, job: Job) -> int | None:
        if job.kind != Kind.TRAIN.value or not job.experiment_id:
            return None
        return trained_epochs(self.queue.project.experiment(job.experiment_id))

    def _file(self, job: Job, rc: int, ended: str, log_path: Path, offset: int) -> None:
        """Decide where the finished process leaves its job."""
        q = self.queue
        current = q.running(job.id) or job  # re-read: a stop may have been requested meanwhile
        tail = _log_tail(log_path, offset)
        outcome = classify_exit(rc, stop_requested=bool(current.stop_requested), shutdown=self.shutdown,
                                attempts=current.attempts, max_attempts=current.max_attempts, tail=tail,
                                job_id=job.id, now=time.time())
        fields: dict[str, Any] = {"ended": ended, "exit_code": rc, "epochs_done": self._epochs(job), **outcome.fields}
        status = outcome.status
        done = q.complete(current, status, **fields)
        self.counts[status.value] += 1
        self.hooks.job_ended(done)
        took = (time.time() - (parse_iso(done.started) or time.time()))
        self.say(status.value, f"{status.value}: {job.id} (exit {rc}, {format_seconds(took)}) {done.note}",
                 job=job.id, exit_code=rc, status=status.value, experiment_id=job.experiment_id,
                 error=done.error)

    # -- signals ---------------------------------------------------------------------------------
    def _install_signals(self) -> dict:
        def on_signal(signum, frame):
            name = _signal_name(signum)
            if self.shutdown and signum == signal.SIGINT:
                self.shutdown = "SIGINT-again"  # a second Ctrl-C interrupts the job itself
                return
            self.shutdown = name
            if self.current is not None:
                print(f"received {name}: {self.current.id} saves a checkpoint at its next step and stops; "
                      "it stays queued (Ctrl-C again to interrupt it)", file=sys.stderr, flush=True)

        previous = {}
        for sig in (signal.SIGTERM, signal.SIGINT):
            previous[sig] = signal.signal(sig, on_signal)
        return previous


@dataclass(frozen=True)
class Outcome:
    """Where a job goes after its process ended, and the fields to record on it."""

    status: Status
    fields: dict[str, Any] = field(default_factory=dict)


def classify_exit(rc: int, *, stop_requested: bool, shutdown: str | None, attempts: int, max_attempts: int,
                  tail: str = "", job_id: str = "JOB", now: float = 0.0) -> Outcome:
    """The filing rule, as a pure function of how the process ended.

    ``rc``: the exit status (negative: killed by that signal); ``stop_requested``: a user asked
    this job to stop; ``shutdown``: the signal that is stopping the runner itself (None if not);
    ``attempts``/``max_attempts``: the job's run count and limit; ``tail``: the attempt's log tail.

    * 0 -> finished; 3 on request -> stopped; 3 or SIGTERM/SIGINT while the runner stops ->
      pending, and the attempt does not count; 3 from an outside signal -> pending (failed past
      ``max_attempts``); 4 (experiment busy) -> pending after a back-off, not counted;
    * killed by another signal -> failed, naming it; any other exit -> failed with the log tail.
    """
    last = tail.splitlines()[-1] if tail else ""
    hint = f"requeue with: python -m MLSystem.submit --requeue {job_id}"
    out: dict[str, Any] = {}
    if rc == ExitCode.OK:
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
        name = _signal_name(-rc)
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


def start_detached(paths: ProjectPaths, *, wait: float = 0.0) -> int:
    """Start ``python -m MLSystem.runner`` in its own session (it outlives the caller, e.g. the
    cockpit or a closed browser); output goes to ``queue/logs/runner.log``. Returns its pid.
    A second runner on the same queue just reports the active one and exits."""
    log_path = JobQueue(paths).paths.logs / "runner.log"
    env = dict(os.environ, MLSYSTEM_ROOT=str(paths.root), PYTHONUNBUFFERED="1")
    with open(log_path, "ab") as log:
        proc = subprocess.Popen([sys.executable, "-m", "MLSystem.runner", "--wait", str(wait)], cwd=paths.root,
                                env=env, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                                start_new_session=True)
    # Reap it when it exits, so a long-lived caller does not keep a zombie that looks alive.
    threading.Thread(target=proc.wait, daemon=True, name=f"reap-runner-{proc.pid}").start()
    return proc.pid


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m MLSystem.runner", description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--wait", type=float, default=0.0, metavar="SECONDS",
                        help="keep waiting this long for new jobs once the queue is empty (default 0)")
    parser.add_argument("--json", action="store_true", help="one JSON object per event line")
    args = parser.parse_args(argv)
    if args.wait < 0:
        parser.error("--wait: must be >= 0 seconds")
    try:
        queue = JobQueue(ProjectPaths.discover())
        return Runner(queue, wait=args.wait, as_json=args.json, out=lambda s: print(s, flush=True)).run()
    except MLSystemError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return int(exc.exit_code)


if __name__ == "__main__":
    from MLSystem.utils.cli import run_main

    sys.exit(run_main(main))
