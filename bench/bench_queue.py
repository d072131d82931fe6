"""Queue benchmarks: ``python bench/bench_queue.py [--jobs 10000] [--validated 1000]``.

Runs in a throw-away copy of the project (configs + definitions) and prints a Markdown table:

* submit N jobs through the queue API one at a time (each: lock + atomic write + fsync), and
  through ``submit()`` with full validation (sweep expansion, config merge, experiment ID, decision);
* list them (``JobQueue.list()``, and the ``submit --list --json`` command with ETAs);
* runner gap: from one job's process exit to the next job's process start (real runner, real
  ``execute_train`` jobs of an already trained experiment, so each job is short);
* submit-to-start: ``submit()`` while a ``runner --wait`` is idle, until the job's process starts.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from benchlib import env_for, make_project  # noqa: E402

FAST = ["n_train=256", "n_val=64", "batch_size=32"]
TRAINED = ["dataset=digits", "model=mlp", "max_epochs=1", *FAST]


def ts(text: str) -> float:
    from MLSystem.utils.clock import parse_iso

    return parse_iso(text)


def bench_submit_and_list(root: Path, n: int, n_validated: int) -> list[tuple[str, str, str, str]]:
    from MLSystem.jobs import Job, new_job_id
    from MLSystem.queue_store import JobQueue
    from MLSystem.submit import submit

    q = JobQueue()
    t0 = time.perf_counter()
    for i in range(n):
        q.add(Job(id=new_job_id(), kind="train", args=["dataset=digits", "model=mlp", f"seed={i}"],
                  dataset="digits", model="mlp", max_epochs=1))
    add_rate = n / (time.perf_counter() - t0)

    t0 = time.perf_counter()
    jobs = q.list()
    list_s = time.perf_counter() - t0
    assert len(jobs) == n

    t0 = time.perf_counter()
    proc = subprocess.run([sys.executable, "-m", "MLSystem.submit", "--list", "--json"], cwd=root, env=env_for(root),
                          capture_output=True, text=True, check=True)
    cli_list_s = time.perf_counter() - t0
    assert len(json.loads(proc.stdout)["jobs"]) == n

    t0 = time.perf_counter()
    report = submit(["dataset=digits", "model=cnn", f"seed=range(0,{n_validated})", *FAST], queue=q)
    validated_rate = n_validated / (time.perf_counter() - t0)
    assert len(report.queued) == n_validated
    return [
        (f"submit {n:,} jobs, queue API (lock + atomic write + fsync each)", f"{add_rate:,.0f} jobs/s", ">= 500 jobs/s",
         "ok" if add_rate >= 500 else "MISSED"),
        (f"submit {n_validated:,}-job sweep with validation (`submit()`: merge, experiment ID, decision)",
         f"{validated_rate:,.0f} jobs/s", ">= 500 jobs/s", "ok" if validated_rate >= 500 else "MISSED (see notes)"),
        (f"list {n:,} jobs (`JobQueue.list()`, validated)", f"{list_s:.3f} s", "<= 0.5 s", "ok" if list_s <= 0.5 else "MISSED"),
        (f"list {n:,} jobs (`submit --list --json` command, with ETAs)", f"{cli_list_s:.3f} s", "-", "-"),
    ]


def wait_for(pred, timeout=120.0):
    end = time.time() + timeout
    while time.time() < end:
        v = pred()
        if v:
            return v
        time.sleep(0.005)
    raise TimeoutError("benchmark condition not reached")


def bench_runner(root: Path, n_gap: int, n_latency: int) -> list[tuple[str, str, str, str]]:
    from MLSystem.jobs import Status
    from MLSystem.queue_store import JobQueue
    from MLSystem.submit import submit

    subprocess.run([sys.executable, "-m", "MLSystem.execute_train", *TRAINED], cwd=root, env=env_for(root),
                   check=True, capture_output=True)
    q = JobQueue()
    for status in Status:  # start from an empty queue
        for p in q.paths.dir(status).glob("*.json"):
            p.unlink()
    ids = [submit(TRAINED, force=True, queue=q).queued[0]["job"] for _ in range(n_gap)]
    subprocess.run([sys.executable, "-m", "MLSystem.runner"], cwd=root, env=env_for(root), check=True,
                   capture_output=True)
    done = sorted((q.get(i) for i in ids), key=lambda j: ts(j.started))
    assert all(j.status == "finished" for j in done)
    gaps = [ts(b.started) - ts(a.ended) for a, b in zip(done, done[1:])]
    job_s = statistics.median(ts(j.ended) - ts(j.started) for j in done)

    runner = subprocess.Popen([sys.executable, "-m", "MLSystem.runner", "--wait", "120"], cwd=root,
                              env=env_for(root), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_for(lambda: q.active_runner())
        time.sleep(1.0)  # let it settle into idle polling
        latencies = []
        for _ in range(n_latency):
            job_id = submit(TRAINED, force=True, queue=q).queued[0]["job"]
            job = wait_for(lambda: (lambda j: j if j.status == "finished" else None)(q.get(job_id)))
            latencies.append(ts(job.started) - ts(job.created))
    finally:
        runner.terminate()
        runner.wait(timeout=60)
    return [
        (f"runner gap, job exit -> next job start (median of {len(gaps)}; max {max(gaps):.3f} s)",
         f"{statistics.median(gaps):.3f} s", "<= 0.2 s", "ok" if statistics.median(gaps) <= 0.2 else "MISSED"),
        (f"submit -> start with an idle `runner --wait` (median of {n_latency}; max {max(latencies):.3f} s)",
         f"{statistics.median(latencies):.3f} s", "<= 1 s", "ok" if max(latencies) <= 1 else "MISSED"),
        ("(for scale) one short job: `execute_train` of a complete experiment, start to exit", f"{job_s:.2f} s",
         "-", "-"),
    ]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--jobs", type=int, default=10_000)
    ap.add_argument("--validated", type=int, default=1_000)
    ap.add_argument("--gap-jobs", type=int, default=10)
    ap.add_argument("--latency-jobs", type=int, default=5)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-queue-") as tmp:
        root = make_project(Path(tmp) / "proj")
        os.environ["MLSYSTEM_ROOT"] = str(root)
        os.chdir(root)
        rows = bench_submit_and_list(root, args.jobs, args.validated)
        rows += bench_runner(root, args.gap_jobs, args.latency_jobs)
    print(f"machine: {os.cpu_count()} CPUs, Python {sys.version.split()[0]}\n")
    print("| measurement | result | target | |")
    print("|---|---|---|---|")
    for row in rows:
        print("| " + " | ".join(row) + " |")


if __name__ == "__main__":
    main()
