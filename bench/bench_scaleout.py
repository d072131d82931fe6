"""Scale-out benchmarks: ``python bench/bench_scaleout.py [--jobs 20] [--skip-slurm] [--skip-ddp]``.

Prints a Markdown table:

* DDP on CPU (gloo): seconds per optimizer step of digits/cnn with devices=1 and devices=2 (the
  same per-process batch, so devices=2 does twice the work per step), from the epoch time in
  ``metrics.jsonl``; and the cost of the per-step stop decision MLSystem adds under DDP (one
  1-element all-reduce between 2 gloo processes);
* dispatch latency, submit -> the job's command running, one job at a time: submitit's
  LocalExecutor, and the local Slurm (``scripts/slurm_up.sh``) when it is up;
* the same through the runner (``--runner-jobs 50``): a job written to ``queue/pending`` -> its
  ``execute_train`` process started, for ``python -m MLSystem.runner`` (local slots) vs
  ``--executor slurm`` (sbatch, Slurm's scheduling, the allocation starting Python) — the real path;
* preemption -> resumed on Slurm: ``scancel --signal=USR2`` while training, until the requeued
  attempt has reopened the experiment (a new ``resume`` segment in ``experiment.json``);
* the queue lock: acquire + release, flock vs the NFS-safe lease (MLSystem.shared_lock).
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from benchlib import REPO, env_for, make_project  # noqa: E402


def p95(values: list[float]) -> float:
    return sorted(values)[max(0, int(round(0.95 * len(values))) - 1)]


def ddp_step(work: Path, devices: int) -> float:
    root = make_project(work / f"ddp{devices}")
    args = ["dataset=digits", "model=cnn", "max_epochs=1", "n_train=2048", "n_val=64", "batch_size=32",
            "accelerator=cpu", f"devices={devices}", "checkpoint_every_minutes=0"]
    # One intra-op thread per process in both runs (Lightning gives each DDP process cpus/devices
    # threads; a single process would otherwise use every core and the two would not compare).
    subprocess.run([sys.executable, "-m", "MLSystem.execute_train", *args], cwd=root,
                   env=dict(env_for(root), OMP_NUM_THREADS="1"), check=True, capture_output=True)
    metrics = next((root / "output" / "experiments").glob("*/metrics.jsonl"))
    row = next(r for r in map(json.loads, metrics.read_text().splitlines()) if r.get("kind") == "epoch")
    return row["epoch_time"] / row["step"]


ALLREDUCE = """
import os, sys, time, torch, torch.distributed as dist
rank = int(sys.argv[1])
dist.init_process_group("gloo", init_method="tcp://127.0.0.1:" + sys.argv[2], rank=rank, world_size=2)
t = torch.tensor([0])
for _ in range(50):
    dist.all_reduce(t)
t0 = time.perf_counter()
for _ in range(int(sys.argv[3])):
    dist.all_reduce(t)
if rank == 0:
    print((time.perf_counter() - t0) / int(sys.argv[3]))
dist.destroy_process_group()
"""


def allreduce_cost(n: int = 2000) -> float:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = str(s.getsockname()[1])
    procs = [subprocess.Popen([sys.executable, "-c", ALLREDUCE, str(r), port, str(n)], stdout=subprocess.PIPE, text=True)
             for r in (0, 1)]
    out = procs[0].communicate()[0]
    procs[1].wait()
    return float(out.strip())


def dispatch(kind: str, work: Path, jobs: int, partition: str | None = None) -> list[float]:
    from MLSystem.launcher_config import LauncherConfig
    from MLSystem.submitit_job import TrainJob, make_executor, outcome

    config = LauncherConfig(partition=partition, time_min=10, signal_delay_s=60, cpus_per_task=1)
    executor = make_executor(kind, work / f"submitit-{kind}", config, **({"timeout_min": 10} if kind == "local" else {}))
    latencies = []
    for i in range(jobs):
        mark = work / f"{kind}-started-{i}"
        cmd = [sys.executable, "-c", f"import pathlib, time; pathlib.Path({str(mark)!r}).write_text(repr(time.time()))"]
        t0 = time.time()
        job = executor.submit(TrainJob(cmd, str(work), job_id=f"b{i}"))
        while not mark.exists() or not mark.read_text():
            time.sleep(0.01)
        latencies.append(float(mark.read_text()) - t0)
        while outcome(job) is None:
            time.sleep(0.05)
    return latencies


SITE = """
import os, time
if os.environ.get("MLSYSTEM_JOB_ID") and os.environ.get("BENCH_STAMPS"):
    with open(os.path.join(os.environ["BENCH_STAMPS"], os.environ["MLSYSTEM_JOB_ID"]), "a") as fh:
        fh.write(repr(time.time()) + "\\n")
"""


def runner_dispatch(kind: str, work: Path, jobs: int, partition: str | None = None) -> list[float]:
    """Queue one job at a time into a lingering runner; seconds from the job file appearing in
    pending/ to its execute_train process starting (stamped by a sitecustomize on PYTHONPATH).
    The job is an invalid override, so execute_train exits 2 within a second: what a job does after
    it started does not change its dispatch, and 50 trainings would take many minutes."""
    import os

    from MLSystem.jobs import Job, Status, new_job_id
    from MLSystem.paths import ProjectPaths
    from MLSystem.queue_store import JobQueue

    root = make_project(work / f"runner-{kind}")
    stamps, site = work / f"stamps-{kind}", work / f"site-{kind}"
    stamps.mkdir()
    site.mkdir()
    (site / "sitecustomize.py").write_text(SITE)
    env = env_for(root, BENCH_STAMPS=str(stamps))
    env["PYTHONPATH"] = os.pathsep.join([str(site), env["PYTHONPATH"]])
    flags = [] if kind == "local" else ["--executor", "slurm", "--partition", partition, "--cpus-per-task", "1",
                                        "--mem-gb", "1", "--gpus-per-job", "0"]
    runner = subprocess.Popen([sys.executable, "-m", "MLSystem.runner", "--wait", "600", *flags], cwd=root, env=env,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    queue = JobQueue(ProjectPaths(root))
    latencies = []
    try:
        for _ in range(jobs):
            job = Job(id=new_job_id(), kind="train", args=["dataset=digits", "no_such_option=1"])
            t0 = time.time()
            queue.add(job)
            stamp = stamps / job.id
            while not stamp.exists() or not stamp.read_text().strip():
                if queue.paths.job_file(Status.FAILED, job.id).exists() and not stamp.exists():
                    raise SystemExit(f"{kind}: {job.id} never started: {queue.get(job.id).error}")
                time.sleep(0.005)
            latencies.append(float(stamp.read_text().split()[0]) - t0)
            while not queue.paths.job_file(Status.FAILED, job.id).exists():
                time.sleep(0.02)
    finally:
        queue.request_drain()
        runner.wait(timeout=120)
    return latencies


def preemption_latency(work: Path, partition: str) -> float:
    from MLSystem.launcher_config import LauncherConfig
    from MLSystem.submitit_job import TrainJob, make_executor, outcome

    root = make_project(work / "preempt")
    args = ["dataset=digits", "model=cnn", "max_epochs=1", "n_train=60000", "n_val=64", "batch_size=32"]
    executor = make_executor("slurm", work / "submitit-preempt", LauncherConfig(partition=partition, time_min=30,
                                                                                 signal_delay_s=60, cpus_per_task=1))
    job = executor.submit(TrainJob([sys.executable, "-m", "MLSystem.execute_train", *args], str(root),
                                   env={k: v for k, v in env_for(root).items() if k in ("MLSYSTEM_ROOT", "PYTHONPATH")},
                                   log=str(root / "job.log")))
    exp = root / "output" / "experiments"
    while not any(exp.glob("*/progress.json")):
        time.sleep(0.1)
    meta = next(exp.glob("*/experiment.json"))
    t0 = time.time()
    subprocess.run(["scancel", "--signal=USR2", str(job.job_id)], check=True)
    while True:
        segments = json.loads(meta.read_text()).get("segments", [])
        if len(segments) >= 2 and segments[-1]["kind"] == "resume":
            latency = time.time() - t0
            break
        time.sleep(0.05)
    subprocess.run(["scancel", str(job.job_id)])
    while outcome(job) is None:
        time.sleep(0.2)
    return latency


def stop_latency(work: Path, partition: str, runs: int = 5) -> list[dict[str, float]]:
    """A user's stop of a Slurm job through the engine's signal (``scancel --signal=USR1``), as
    ``engine_view.signal_stop`` sends it: seconds from sending to the wrapper's handler, to the
    mid-epoch checkpoint on disk, to the job's process exited (its result file), to Slurm done with it."""
    from datetime import datetime

    from MLSystem.launcher_config import LauncherConfig
    from MLSystem.engine_view import stop_markers
    from MLSystem.submitit_job import TrainJob, make_executor, outcome

    rows = []
    for i in range(runs):
        root = make_project(work / f"stop{i}")
        args = ["dataset=digits", "model=cnn", "max_epochs=1", "n_train=60000", "n_val=64", "batch_size=32",
                "accelerator=cpu", f"seed={i}"]
        folder = work / f"submitit-stop{i}"
        executor = make_executor("slurm", folder, LauncherConfig(partition=partition, time_min=30, signal_delay_s=60,
                                                                 cpus_per_task=1, mem_gb=1))
        log = root / "job.log"
        job = executor.submit(TrainJob([sys.executable, "-m", "MLSystem.execute_train", *args], str(root),
                                       env={k: v for k, v in env_for(root).items()
                                            if k in ("MLSYSTEM_ROOT", "PYTHONPATH")}, log=str(log)))
        exp = root / "output" / "experiments"
        while not (any(exp.glob("*/progress.json")) and stop_markers(folder, str(job.job_id))):
            time.sleep(0.1)
        time.sleep(2)  # well into the epoch
        ckpt = next(exp.glob("*/progress.json")).parent / "checkpoints" / "last.ckpt"
        t0 = time.time()
        subprocess.run(["scancel", "--signal=USR1", str(job.job_id)], check=True)
        while not job.paths.result_pickle.exists():
            time.sleep(0.02)
        exited = time.time() - t0
        while subprocess.run(["squeue", "-h", "-j", str(job.job_id)], capture_output=True, text=True).stdout.strip():
            time.sleep(0.05)
        gone = time.time() - t0
        got = outcome(job)
        assert got is not None and got.kind == "stopped", got
        line = next(x for x in log.read_text().splitlines() if x.startswith("stop signal SIGUSR1"))
        handled = datetime.fromisoformat(line.split(" at ", 1)[1].split(": ", 1)[0]).timestamp() - t0
        rows.append({"handled": handled, "checkpoint": ckpt.stat().st_mtime - t0, "exited": exited, "gone": gone})
    return rows


def stop_rows(work: Path, partition: str, runs: int) -> list[tuple[str, str]]:
    stops, rows = stop_latency(work, partition, runs), []
    for key, what in (("handled", "the job's wrapper handled it"), ("checkpoint", "mid-epoch checkpoint on disk"),
                      ("exited", "the job's processes exited (result file)"),
                      ("gone", "Slurm no longer lists the job")):
        got = [r[key] for r in stops]
        rows.append((f"Slurm stop (scancel --signal=USR1) -> {what} (median / max of {len(got)})",
                     f"{statistics.median(got):.2f} / {max(got):.2f} s"))
    return rows


def lock_cost(work: Path, kind: str, n: int = 300) -> float:
    from MLSystem.shared_lock import make_lock

    lock = make_lock(work / f"{kind}.lock", kind=kind)
    t0 = time.perf_counter()
    for _ in range(n):
        lock.acquire()
        lock.release()
    return (time.perf_counter() - t0) / n


def slurm_up() -> str | None:
    if not shutil.which("sinfo"):
        return None
    if subprocess.run(["bash", str(REPO / "scripts" / "slurm_up.sh"), "--check"]).returncode != 0:
        return None
    return subprocess.run(["sinfo", "-h", "-o", "%P"], capture_output=True, text=True).stdout.split()[0].rstrip("*")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--jobs", type=int, default=20, help="jobs per dispatch measurement")
    ap.add_argument("--skip-ddp", action="store_true")
    ap.add_argument("--skip-slurm", action="store_true")
    ap.add_argument("--runner-jobs", type=int, default=50, help="jobs per runner dispatch measurement (0: skip)")
    ap.add_argument("--only-runner", action="store_true", help="only the runner dispatch measurement")
    ap.add_argument("--stop-runs", type=int, default=5, help="Slurm stops through the engine's signal (0: skip)")
    ap.add_argument("--only-stop", action="store_true", help="only the Slurm stop latency")
    args = ap.parse_args()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        partition = None if args.skip_slurm else slurm_up()
        if args.only_stop:  # only the stop latency (needs the local Slurm)
            rows += stop_rows(work, partition, args.stop_runs or 5) if partition else [("local Slurm", "not up")]
            args.runner_jobs, args.skip_ddp, args.only_runner, partition = 0, True, True, None
        if args.runner_jobs:
            for kind in ("local", "slurm") if partition else ("local",):
                lat = runner_dispatch(kind, work, args.runner_jobs, partition)
                name = "runner, local slots" if kind == "local" else "runner --executor slurm"
                rows.append((f"{name}: job queued -> execute_train started (median / p95 of {args.runner_jobs})",
                             f"{statistics.median(lat):.2f} / {p95(lat):.2f} s"))
        if args.only_runner:
            args.skip_ddp, partition = True, None
        if not args.skip_ddp:
            one, two = ddp_step(work, 1), ddp_step(work, 2)
            rows.append(("DDP CPU/gloo: s per step, digits/cnn batch 32 per process, devices=1", f"{one:.4f} s"))
            rows.append(("DDP CPU/gloo: s per step, devices=2 (2 x the samples per step)", f"{two:.4f} s"))
            rows.append(("per-step stop decision under DDP (1-element gloo all-reduce, 2 procs)",
                         f"{allreduce_cost() * 1e6:.0f} us"))
        if not args.only_runner:
            lat = dispatch("local", work, args.jobs)
            rows.append((f"submitit-local: submit -> command running (median / p95 of {args.jobs})",
                         f"{statistics.median(lat):.2f} / {p95(lat):.2f} s"))
        if partition:
            lat = dispatch("slurm", work, args.jobs, partition)
            rows.append((f"local Slurm: submit -> command running (median / p95 of {args.jobs})",
                         f"{statistics.median(lat):.2f} / {p95(lat):.2f} s"))
            if args.stop_runs:
                rows += stop_rows(work, partition, args.stop_runs)
        if partition:
            rows.append(("Slurm preemption (scancel --signal=USR2) -> resumed attempt reopened the experiment",
                         f"{preemption_latency(work, partition):.1f} s"))
        elif not args.only_runner:
            rows.append(("local Slurm", "not up (scripts/slurm_up.sh as root): skipped"))
        for kind in ("flock", "lease"):
            rows.append((f"queue lock acquire + release ({kind})", f"{lock_cost(work, kind) * 1e6:.0f} us"))
    print("| measurement | result |\n|---|---|")
    for name, value in rows:
        print(f"| {name} | {value} |")


if __name__ == "__main__":
    main()
