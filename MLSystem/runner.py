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
import os
import subprocess
import sys
import threading
from typing import Sequence

from MLSystem.cluster_executor import SubmititExecutor
from MLSystem.engine_view import EXECUTORS
from MLSystem.errors import MLSystemError
from MLSystem.events.notify import NOTIFY_ENV
from MLSystem.executor import LocalExecutor
from MLSystem.launcher_config import load_launcher_config
from MLSystem.job_outcome import BUSY_BACKOFF_S, Outcome, classify_exit
from MLSystem.paths import ProjectPaths
from MLSystem.placement import build_pool, slot_args
from MLSystem.queue_store import JobQueue
from MLSystem.runner_loop import Runner

__all__ = ["BUSY_BACKOFF_S", "Outcome", "Runner", "classify_exit", "main", "start_detached"]


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


_CLUSTER_FLAGS = [
    ("--partition", "partition", str, "Slurm partition"), ("--account", "account", str, "Slurm account"),
    ("--qos", "qos", str, "Slurm QOS"), ("--time-min", "time_min", int, "time limit of one attempt, minutes"),
    ("--gpus-per-job", "gpus_per_node", int, "GPUs per node of a job (default: its devices when it trains on GPUs)"),
    ("--cpus-per-task", "cpus_per_task", int, "CPU cores per training process"),
    ("--mem-gb", "mem_gb", float, "memory per node, GB"),
    ("--max-running", "max_running", int, "queue jobs submitted at once (default 16)"),
    ("--max-requeues", "max_requeues", int, "preemptions survived per job"),
    ("--signal-delay-s", "signal_delay_s", int, "the warning signal comes this long before the time limit"),
    ("--array-parallelism", "array_parallelism", int,
     "Slurm: a sweep's jobs claimed together go out as one job array; at most this many of them run at once"),
]


def _executor(args: argparse.Namespace, paths: ProjectPaths):
    """The submitit executor for ``--executor slurm|submitit-local`` (options: file, then flags)."""
    flags = {key: getattr(args, key) for _, key, _, _ in _CLUSTER_FLAGS}
    config = load_launcher_config(paths, extra_sbatch=args.extra_sbatch, **flags)
    kind = "slurm" if args.executor == "slurm" else "local"
    return SubmititExecutor(kind, paths, config, max_running=config.max_running)


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
    cluster = parser.add_argument_group("cluster (--executor slurm|submitit-local; defaults: configs/launcher/slurm.yaml)")
    cluster.add_argument("--executor", choices=EXECUTORS, default="local",
                         help="local slots (default), submitit-local (submitit on this machine) or slurm")
    for flag, key, kind, text in _CLUSTER_FLAGS:
        cluster.add_argument(flag, dest=key, type=kind, default=None, help=text, metavar=flag[2:].upper())
    cluster.add_argument("--sbatch", dest="extra_sbatch", action="append", default=None, metavar="--OPTION=VALUE",
                         help="one more sbatch option (repeatable)")
    cluster.add_argument("--detach", action="store_true",
                         help="exit once nothing more can be submitted; the jobs run on and a later runner files them")
    args = parser.parse_args(argv)
    if args.notify:
        os.environ[NOTIFY_ENV] = "\n".join([os.environ.get(NOTIFY_ENV, ""), *args.notify]).strip()
    if args.wait < 0:
        parser.error("--wait: must be >= 0 seconds")
    if args.executor != "local" and (args.slots or args.gpus or args.threads):
        parser.error(f"--slots/--gpus/--threads are for the local slots; with --executor {args.executor} "
                     "use --max-running and --gpus-per-job")
    if args.executor == "local" and any(getattr(args, key) for _, key, _, _ in _CLUSTER_FLAGS) | bool(args.detach):
        parser.error("--partition, --max-running, --detach, ... go with --executor slurm or submitit-local")
    try:
        pool = build_pool(args.slots, args.gpus, args.slots_per_gpu, args.threads,
                          warn=lambda s: print(s, file=sys.stderr, flush=True))
    except ValueError as exc:
        parser.error(str(exc))
    try:
        paths = ProjectPaths.discover()
        queue = JobQueue(paths)
        executor = _executor(args, paths) if args.executor != "local" else LocalExecutor(pool)
        return Runner(queue, wait=args.wait, as_json=args.json, out=lambda s: print(s, flush=True),
                      executor=executor, detach=args.detach).run()
    except MLSystemError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return int(exc.exit_code)


if __name__ == "__main__":
    from MLSystem.utils.cli import run_main

    sys.exit(run_main(main))
