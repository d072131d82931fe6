"""Several processes submit, reorder, hold/release and delete while a real runner drains the queue
and another process keeps reading every job file: every job is accounted for exactly once and no
reader ever sees a half-written file."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

import pytest

from conftest import FAST, cli_env, run_cli
from MLSystem.queue_store import JobQueue

pytestmark = pytest.mark.slow

ARGS = ["dataset=digits", "model=mlp", "max_epochs=1", *FAST]

# Submits N jobs of one (already trained) experiment, reordering random pending jobs after each.
SUBMITTER = textwrap.dedent("""
    import json, random, sys
    from MLSystem.jobs import QueueError
    from MLSystem.queue_store import JobQueue
    from MLSystem.submit import submit
    seed, n, args = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3:]
    rnd, q = random.Random(seed), JobQueue()
    mine, deleted = [], []
    for i in range(n):
        mine += [x["job"] for x in submit(args, force=True, priority=rnd.randint(0, 2), queue=q).queued]
        pending = [j.id for j in q.pending()]
        if len(pending) < 2:
            continue
        a, b = rnd.sample(pending, 2)
        try:  # the runner may claim a or b at any moment: then QueueError, which is fine
            op = rnd.choice(["move", "next", "priority", "hold", "delete"])
            if op == "move":
                q.move(a, before=b)
            elif op == "next":
                q.run_next(a)
            elif op == "priority":
                q.set_priority(a, rnd.randint(0, 3))
            elif op == "hold":
                q.hold(a)
                q.release(a)
            elif a in mine:
                q.delete(a)
                deleted.append(a)
        except QueueError:
            pass
    print(json.dumps({"submitted": mine, "deleted": deleted}))
""")

# Reads every job file in a loop until told to stop; counts files that are not valid JSON.
READER = textwrap.dedent("""
    import json, os, sys, pathlib
    root, stop = pathlib.Path(sys.argv[1]), pathlib.Path(sys.argv[2])
    reads = bad = 0
    while not stop.exists():
        for d in ("pending", "running", "finished", "failed", "stopped"):
            for p in (root / d).glob("*.json"):
                try:
                    json.loads(p.read_text())
                    reads += 1
                except FileNotFoundError:
                    pass
                except ValueError:
                    bad += 1
    print(json.dumps({"reads": reads, "bad": bad}))
""")


def test_concurrent_submitters_reorderers_and_a_runner(project, tmp_path):
    run_cli(project, "MLSystem.execute_train", *ARGS, check=True)  # later jobs are "already complete": fast
    env = cli_env(project)
    queue_dir, stop = project / "queue", tmp_path / "stop-reader"
    JobQueue()  # create the folders the reader scans
    reader = subprocess.Popen([sys.executable, "-c", READER, str(queue_dir), str(stop)], env=env, cwd=project,
                              stdout=subprocess.PIPE, text=True)
    runner = subprocess.Popen([sys.executable, "-m", "MLSystem.runner", "--wait", "4"], env=env, cwd=project,
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    submitters = [subprocess.Popen([sys.executable, "-c", SUBMITTER, str(seed), "8", *ARGS], env=env, cwd=project,
                                   stdout=subprocess.PIPE, text=True) for seed in range(4)]
    reports = [json.loads(p.communicate(timeout=120)[0]) for p in submitters]
    runner_out = runner.communicate(timeout=180)[0]
    stop.write_text("")
    reads = json.loads(reader.communicate(timeout=60)[0])
    assert runner.returncode == 0, runner_out
    assert all(p.returncode == 0 for p in submitters)

    submitted = [j for r in reports for j in r["submitted"]]
    deleted = {j for r in reports for j in r["deleted"]}
    assert len(submitted) == 32 == len(set(submitted))
    found: dict[str, list[str]] = {}
    for status in ("pending", "running", "finished", "failed", "stopped"):
        for p in (queue_dir / status).glob("*.json"):
            found.setdefault(p.stem, []).append(status)
    assert all(len(v) == 1 for v in found.values()), found  # never in two folders
    assert set(found) == set(submitted) - deleted  # nothing lost, nothing invented
    assert all(v == ["finished"] for v in found.values()), found
    for job_id in found:
        rec = json.loads((queue_dir / "finished" / f"{job_id}.json").read_text())
        assert rec["attempts"] == 1 and rec["exit_code"] == 0 and len(rec["history"]) == 1  # run exactly once
    assert runner_out.count("started ") == len(found)
    assert reads["bad"] == 0 and reads["reads"] > 100
    assert not list(queue_dir.rglob("*.tmp"))  # no temp file left behind
