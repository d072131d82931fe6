"""The runner end to end, through real subprocesses: order and live edits, SIGKILL fault
injection, killed and stopped jobs, runner shutdown, bad input, one runner per queue, drain and
the per-experiment lease. Assertions are what a user sees: where each job is filed and the
experiment's trained epochs/steps in ``state.json``."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import FAST, cli_env, job_record, queue_folders, run_cli, wait_for

from MLSystem.jobs import Job, new_job_id
from MLSystem.queue_store import JobQueue
from MLSystem.utils.procs import pid_alive
from MLSystem.submit import submit

pytestmark = pytest.mark.slow

# Long enough (3 epochs = 384 steps) that a signal sent after the first steps lands mid-training
# even on a fast, quiet machine.
LONGER = ["n_train=4096", "n_val=64", "batch_size=32"]
STEPS = 128



def start_runner(root: Path, *args: str, fault: str | None = None, out: Path | None = None) -> subprocess.Popen:
    env = cli_env(root, **({"MLSYSTEM_RUNNER_FAULT": fault} if fault else {}))
    log = open(out or root / "runner-out.txt", "ab")
    return subprocess.Popen([sys.executable, "-m", "MLSystem.runner", *args], cwd=root, env=env,
                            stdout=log, stderr=subprocess.STDOUT)


def finish(proc: subprocess.Popen, timeout: float = 600) -> int:  # generous: 2 shared CPUs can be 5x slower
    try:
        return proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        raise


def queued(*args: str, **kw) -> tuple[str, str]:
    report = submit(list(args), **kw)
    assert len(report.queued) == 1, report
    return report.queued[0]["job"], report.queued[0]["experiment_id"]


def state(root: Path, eid: str) -> dict:
    return json.loads((root / "output/experiments" / eid / "state.json").read_text())


def training_started(root: Path, job_id: str, steps: int = 3):
    """True once the job's training has logged ``steps`` steps (it is mid-training)."""
    f = root / "queue/logs" / f"{job_id}.metrics.jsonl"
    if not f.exists():
        return False
    rows = [json.loads(x) for x in f.read_text().splitlines() if x.strip().endswith("}")]
    return any(r.get("step", 0) >= steps for r in rows)


def running_pid(root: Path, job_id: str) -> int | None:
    p = root / "queue/running" / f"{job_id}.json"
    try:
        return json.loads(p.read_text()).get("pid")
    except (FileNotFoundError, json.JSONDecodeError):
        return None


def test_runs_in_priority_order_with_live_edits(project):
    first, eid = queued("dataset=digits", "model=mlp", "max_epochs=2", *FAST)
    runner = start_runner(project)
    wait_for(lambda: running_pid(project, first), what="first job running")
    # While it runs: three more jobs of the same experiment (complete by then: quick), reorder, delete, hold.
    a, b, c = (queued("dataset=digits", "model=mlp", "max_epochs=2", *FAST, force=True)[0] for _ in range(3))
    held, _ = queued("dataset=digits", "model=mlp", "max_epochs=2", *FAST, force=True, held=True)
    q = JobQueue()
    q.run_next(c)
    q.delete(b)
    q.set_priority(held, 9)  # held jobs never run, whatever their priority
    assert [j.id for j in q.pending() if not j.held] == [c, a]
    assert finish(runner) == 0
    out = (project / "runner-out.txt").read_text()
    assert "1 held job(s) left" in out
    assert queue_folders(project) == {"pending": [held], "running": [], "finished": sorted([first, a, c]),
                              "failed": [], "stopped": []}
    starts = {j: job_record(project, j)["started"] for j in (first, c, a)}
    assert starts[first] < starts[c] < starts[a]
    assert state(project, eid)["epochs_completed"] == 2
    assert "already complete" in job_record(project, a)["note"]
    assert job_record(project, first)["exit_code"] == 0 and job_record(project, first)["pid"] > 0


def test_sigkill_runner_at_several_points_each_job_finishes_once(project):
    j1, e1 = queued("dataset=digits", "model=cnn", "max_epochs=3", *LONGER, priority=1)
    j2, e2 = queued("dataset=digits", "model=mlp", "max_epochs=2", *FAST)
    # 1. killed right after claiming j1, before starting it
    r = start_runner(project, fault="after_claim")
    assert finish(r) == -signal.SIGKILL and queue_folders(project)["running"] == [j1]
    # 2. killed mid-training (real SIGKILL from outside): the job gets SIGTERM, checkpoints, exits
    r = start_runner(project)
    wait_for(lambda: training_started(project, j1, steps=10), what="j1 mid-training")
    child = running_pid(project, j1)
    r.send_signal(signal.SIGKILL)
    assert finish(r) == -signal.SIGKILL
    wait_for(lambda: not pid_alive(child), timeout=60, what="orphaned job to stop")
    assert 10 <= state(project, e1)["global_step"] < 3 * STEPS
    # 3. killed after the job process exited, before filing it
    r = start_runner(project, fault="after_exit")
    assert finish(r) == -signal.SIGKILL and queue_folders(project)["running"] == [j1]
    # 4. a clean runner recovers j1 (already complete now) and trains j2
    r = start_runner(project)
    assert finish(r) == 0
    assert queue_folders(project) == {"pending": [], "running": [], "finished": sorted([j1, j2]), "failed": [],
                              "stopped": []}
    assert state(project, e1)["epochs_completed"] == 3 and state(project, e1)["global_step"] == 3 * STEPS
    assert state(project, e2)["epochs_completed"] == 2 and state(project, e2)["global_step"] == 16
    rec = job_record(project, j1)
    # The runner's deaths are not the job's failures (attempts not spent); the run that ended just
    # before the runner died is filed finished at recovery, not run again (issue 14 item 5).
    assert rec["attempts"] == 1
    assert [h["outcome"] for h in rec["history"]] == ["pending", "pending", "finished"]
    assert all("recovered: runner pid" in h["note"] for h in rec["history"][:2])
    assert "filed at recovery" in rec["note"] and "complete (3/3 epochs)" in rec["note"]
    assert job_record(project, j2)["attempts"] == 1


def test_job_killed_by_signal_is_failed_with_the_signal_then_requeued(project):
    job, eid = queued("dataset=digits", "model=mlp", "max_epochs=3", *LONGER)
    runner = start_runner(project)
    wait_for(lambda: training_started(project, job), what="training")
    os.kill(running_pid(project, job), signal.SIGKILL)  # like the OOM killer
    assert finish(runner) == 0
    rec = job_record(project, job)
    assert rec["status"] == "failed" and rec["signal"] == "SIGKILL" and rec["exit_code"] == -9
    assert rec["error"].startswith("killed by SIGKILL (signal 9)") and f"--requeue {job}" in rec["error"]
    listed = run_cli(project, "MLSystem.submit", "--list", check=True).stdout
    assert "killed by SIGKILL" in listed
    requeue_and_finish(project, job, eid)


def requeue_and_finish(project, job: str, eid: str) -> None:
    """`--requeue` then a runner: the job finishes all 3 epochs, resuming where it was left."""
    run_cli(project, "MLSystem.submit", "--requeue", job, check=True)
    assert run_cli(project, "MLSystem.runner", check=True).returncode == 0
    assert job_record(project, job)["status"] == "finished"
    assert state(project, eid)["epochs_completed"] == 3 and state(project, eid)["global_step"] == 3 * STEPS


def test_stop_request_checkpoints_then_requeue_resumes(project):
    job, eid = queued("dataset=digits", "model=mlp", "max_epochs=3", *LONGER)
    runner = start_runner(project)
    wait_for(lambda: training_started(project, job), what="training")
    stop = run_cli(project, "MLSystem.submit", "--stop", job[4:], check=True)
    assert "stop requested" in stop.stdout
    assert finish(runner) == 0
    rec = job_record(project, job)
    assert rec["status"] == "stopped" and rec["exit_code"] == 3 and rec["stop_requested"]
    saved = state(project, eid)
    assert 0 < saved["global_step"] < 3 * STEPS
    requeue_and_finish(project, job, eid)


def test_sigterm_on_runner_leaves_the_job_resumable(project):
    job, eid = queued("dataset=digits", "model=mlp", "max_epochs=3", *LONGER)
    runner = start_runner(project)
    wait_for(lambda: training_started(project, job), what="training")
    runner.send_signal(signal.SIGTERM)
    assert finish(runner) == 3
    rec = job_record(project, job)
    assert rec["status"] == "pending" and "runner stopped by SIGTERM" in rec["note"] and rec["attempts"] == 0
    assert 0 < state(project, eid)["global_step"] < 3 * STEPS
    run_cli(project, "MLSystem.runner", check=True)
    assert job_record(project, job)["status"] == "finished"
    assert state(project, eid)["epochs_completed"] == 3 and state(project, eid)["global_step"] == 3 * STEPS


def _add_file_dataset(root: Path) -> None:
    """A dataset that reads a folder named by its ``path`` field (to fail on a missing one)."""
    d = root / "definitions/datasets/files"
    d.mkdir()
    (d / "__init__.py").write_text("")
    (d / "config.py").write_text(
        "from dataclasses import dataclass\n"
        "from MLSystem.utils.config_base import param\n"
        "from definitions.datasets.digits.config import DigitsConfig\n\n\n"
        "@dataclass\nclass FilesConfig(DigitsConfig):\n"
        "    path: str = param('data/files', 'Folder with the dataset files')\n")
    (d / "datamodule.py").write_text(
        "from pathlib import Path\n"
        "from definitions.datasets.digits.datamodule import DigitsDataModule\n\n\n"
        "class FilesDataModule(DigitsDataModule):\n"
        "    def __init__(self, params, adapter):\n"
        "        if not Path(params['path']).is_dir():\n"
        "            raise FileNotFoundError(f\"path: dataset folder {params['path']!r} does not exist\")\n"
        "        super().__init__(params, adapter)\n")
    reg = json.loads((root / "configs/registry.json").read_text())
    reg["datasets"]["files"] = {"path": "definitions/datasets/files", "config": "FilesConfig",
                                "class": "FilesDataModule"}
    (root / "configs/registry.json").write_text(json.dumps(reg, indent=2))


def test_bad_input_is_filed_as_failed_and_the_runner_goes_on(project):
    _add_file_dataset(project)
    q = JobQueue()
    (project / "queue/pending/garbage.json").write_text('{"id": "garbage", "kind": "train", "args": [')
    hand = {name: q.add(Job(id=new_job_id(), kind="train", args=args, priority=5)).id for name, args in {
        "unknown_model": ["dataset=digits", "model=nope"],
        "bad_type": ["dataset=digits", "model=mlp", "lr=abc"],
        "missing_path": ["dataset=files", "model=mlp", "adapter=digits", "path=/nonexistent/data", *FAST],
    }.items()}
    good, eid = queued("dataset=digits", "model=mlp", "max_epochs=1", *FAST)
    assert run_cli(project, "MLSystem.runner", check=True).returncode == 0
    assert queue_folders(project)["finished"] == [good] and state(project, eid)["epochs_completed"] == 1
    assert sorted(queue_folders(project)["failed"]) == sorted(["garbage", *hand.values()])
    errors = {name: job_record(project, jid)["error"] for name, jid in hand.items()}
    assert "invalid job file pending/garbage.json" in job_record(project, "garbage")["error"]
    assert errors["unknown_model"].startswith("exit 2 (bad input)") and "model=nope: not in registry.json" in errors["unknown_model"]
    assert "lr: 'abc' is not a valid float" in errors["bad_type"]
    assert "dataset folder '/nonexistent/data' does not exist" in errors["missing_path"]
    assert all("Traceback" not in e for e in errors.values())
    # The one-line note (the --list and console line) is the error itself, not the log's first line.
    note = job_record(project, hand["missing_path"])["note"]
    assert note.startswith("exit 1 (failed): error: ") and "'/nonexistent/data' does not exist" in note


def test_one_runner_per_queue_drain_and_exit_when_empty(project):
    quick = run_cli(project, "MLSystem.runner", "--json", check=True)
    assert json.loads(quick.stdout.splitlines()[-1])["event"] == "exit"
    first = start_runner(project, "--wait", "60")
    wait_for(lambda: (project / "queue/runner.json").exists(), what="runner.json")
    second = run_cli(project, "MLSystem.runner")
    assert second.returncode == 0 and "another runner is active" in second.stdout
    assert f"pid {first.pid}" in second.stdout
    # drain: the runner finishes the running job, then exits; the next job stays pending
    job, eid = queued("dataset=digits", "model=mlp", "max_epochs=1", *FAST)
    wait_for(lambda: running_pid(project, job), what="job started by the waiting runner")
    q_id = queued("dataset=digits", "model=mlp", "lr=0.5", "max_epochs=1", *FAST)[0]
    drained = run_cli(project, "MLSystem.submit", "--drain", check=True)
    assert f"runner pid {first.pid} will finish its running job(s)" in drained.stdout
    assert finish(first) == 0
    assert queue_folders(project)["finished"] == [job] and queue_folders(project)["pending"] == [q_id]
    assert state(project, eid)["epochs_completed"] == 1
    assert not (project / "queue/DRAIN").exists() and not (project / "queue/runner.json").exists()


def test_never_two_processes_train_one_experiment(project):
    from filelock import FileLock

    args = ["dataset=digits", "model=mlp", "max_epochs=3", *LONGER]
    manual = subprocess.Popen([sys.executable, "-m", "MLSystem.execute_train", *args], cwd=project,
                              env=cli_env(project), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    job, eid = queued(*args)
    lease_owner = project / "output/experiments" / eid / ".lease.owner"
    wait_for(lease_owner.exists, what="manual run holding the lease")
    runner = start_runner(project)
    wait_for(lambda: JobQueue().get(job).note.startswith("waiting: experiment"), what="job waiting")
    assert manual.wait(timeout=600) == 0
    assert finish(runner) == 0
    rec = job_record(project, job)
    assert rec["status"] == "finished" and rec["attempts"] == 1 and "already complete" in rec["note"]
    meta = json.loads((project / "output/experiments" / eid / "experiment.json").read_text())
    assert len(meta["segments"]) == 1 and state(project, eid)["global_step"] == 3 * STEPS
    # The lease held without an owner file (the runner cannot see it): execute_train exits 4,
    # the job stays pending (not failed) and runs once the lease is free.
    more, _ = queued("dataset=digits", "model=mlp", "max_epochs=4", *LONGER)
    lock = FileLock(str(project / "output/experiments" / eid / ".lease"), timeout=0)
    lock.acquire()
    try:
        runner = start_runner(project)
        wait_for(lambda: JobQueue().get(more).note.startswith("waiting: error: experiment"), what="exit 4")
        assert job_record(project, more)["status"] == "pending" and job_record(project, more)["history"][0]["exit_code"] == 4
    finally:
        lock.release()
    assert finish(runner) == 0
    assert job_record(project, more)["status"] == "finished" and state(project, eid)["epochs_completed"] == 4
