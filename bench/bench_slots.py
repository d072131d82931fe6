"""Parallel slots: ``python bench/bench_slots.py [--jobs 8] [--epochs 2]``.

The same N short digits jobs (distinct experiments), in two fresh copies of the project, drained by

* ``runner --slots 1 --threads T`` (one job at a time with all T cores), and
* ``runner --slots T --threads 1`` (T jobs at once, one thread each),

where T is the number of cores the process may use (``--single``: also ``--slots 1 --threads 1``,
to see how much of the difference is threads fighting). Prints a Markdown table: wall time of each
drain, their ratio, and the scheduler gap — from a job's end to the next job's start (the latest end
before each start that had to wait for a slot).
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from benchlib import make_project  # noqa: E402


def drain(root: Path, n: int, epochs: int, runner_args: list[str]) -> tuple[float, list[float], list[dict]]:
    """Submit N jobs, drain them with one runner; (wall seconds, gaps, job records)."""
    import json

    env = dict(os.environ, MLSYSTEM_ROOT=str(root), PYTHONUNBUFFERED="1")
    args = ["dataset=digits", "model=mlp", f"max_epochs={epochs}", "n_train=2048", "n_val=256", "batch_size=32"]
    sweep = ",".join(str(round(0.001 * (i + 1), 4)) for i in range(n))
    subprocess.run([sys.executable, "-m", "MLSystem.submit", *args, f"lr={sweep}"], cwd=root, env=env, check=True,
                   capture_output=True)
    t0 = time.perf_counter()
    subprocess.run([sys.executable, "-m", "MLSystem.runner", *runner_args], cwd=root, env=env, check=True,
                   capture_output=True)
    wall = time.perf_counter() - t0
    from datetime import datetime

    def parse_iso(text: str) -> float:
        return datetime.fromisoformat(text).timestamp()

    records = [json.loads(p.read_text()) for p in (root / "queue/finished").glob("*.json")]
    assert len(records) == n, f"{len(records)} of {n} jobs finished"
    starts = sorted(parse_iso(r["started"]) for r in records)
    ends = sorted(parse_iso(r["ended"]) for r in records)
    slots = int(runner_args[runner_args.index("--slots") + 1])
    gaps = []
    for s in starts[slots:]:  # the first `slots` jobs start at once; each later one waited for an end
        before = [e for e in ends if e <= s]
        if before:
            gaps.append(s - before[-1])
    return wall, gaps, records


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--jobs", type=int, default=8)
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--single", action="store_true", help="also drain with --slots 1 --threads 1")
    a = parser.parse_args()
    cores = len(os.sched_getaffinity(0))
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        serial = drain(make_project(Path(tmp) / "serial"), a.jobs, a.epochs, ["--slots", "1", "--threads", str(cores)])
        parallel = drain(make_project(Path(tmp) / "parallel"), a.jobs, a.epochs,
                         ["--slots", str(cores), "--threads", "1"])
        # For reading the ratio: one job at a time with one thread (how much is oversubscription).
        single = drain(make_project(Path(tmp) / "single"), a.jobs, a.epochs, ["--slots", "1", "--threads", "1"]) \
            if a.single else None
    ratio = parallel[0] / serial[0]
    rows.append((f"{a.jobs} digits jobs, `--slots 1 --threads {cores}`", f"{serial[0]:.1f} s", "", ""))
    rows.append((f"{a.jobs} digits jobs, `--slots {cores} --threads 1`", f"{parallel[0]:.1f} s", "", ""))
    if single:
        rows.append((f"{a.jobs} digits jobs, `--slots 1 --threads 1` (for reference)", f"{single[0]:.1f} s", "", ""))
    rows.append(("ratio parallel / serial", f"{ratio:.2f}x", "< 0.8x", "ok" if ratio < 0.8 else "MISSED"))
    for name, (_, gaps, _) in (("--slots 1", serial), (f"--slots {cores}", parallel)):
        if gaps:
            worst = max(gaps)
            rows.append((f"gap job end -> next start, `{name}` (median / max of {len(gaps)})",
                         f"{statistics.median(gaps):.3f} / {worst:.3f} s", "<= 0.2 s",
                         "ok" if worst <= 0.2 else "MISSED"))
    print(f"| measure ({cores} cores) | value | target | |\n|---|---|---|---|")
    for row in rows:
        print("| " + " | ".join(row) + " |")


if __name__ == "__main__":
    main()
