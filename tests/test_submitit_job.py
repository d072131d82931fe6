"""The submitit job callable (MLSystem.submitit_job): outcomes, requeue counting, and preemption
with exact resume — on submitit's LocalExecutor and, when the local Slurm is up, on real Slurm."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
import uuid
from pathlib import Path

import pytest
import torch

from conftest import add_probe_model, make_project, run_cli, wait_for
from MLSystem.launcher_config import LauncherConfig
from MLSystem.paths import ProjectPaths
from MLSystem.submitit_job import (BUSY, FAILED, FINISHED, INTERRUPTED, STOPPED, TrainJob, engine_state,
                                   engine_tag, find_tagged, make_executor, outcome)
from slurm_fixtures import slurm_cluster  # noqa: F401  (fixture)

# A stand-in for execute_train: exits 3 on SIGTERM (the graceful stop), counts its starts, and
# exits 0 once it has been started FINISH_AT times.
ATTEMPT = textwrap.dedent("""
    import signal, sys, time
    from pathlib import Path
    count = Path(sys.argv[1])
    n = int(count.read_text()) + 1 if count.exists() else 1
    count.write_text(str(n))
    if n >= int(sys.argv[2]):
        sys.exit(0)
    signal.signal(signal.SIGTERM, lambda *a: sys.exit(3))
    print("ready", flush=True)
    time.sleep(120)
""")


def _py(code: str, *args: object) -> list[str]:
    return [sys.executable, "-c", code, *map(str, args)]


def _local(tmp_path: Path, **params):
    return make_executor("local", tmp_path / "submitit", LauncherConfig(), **params)


def _wait_outcome(job, timeout: float = 300):
    return wait_for(lambda: outcome(job), timeout=timeout, what=f"job {job.job_id} to end")


@pytest.mark.parametrize("code, kind", [(0, FINISHED), (3, STOPPED), (4, BUSY), (1, FAILED), (2, FAILED)])
def test_exit_codes_of_execute_train_map_onto_outcomes(tmp_path, code, kind):
    job = _local(tmp_path, timeout_min=5).submit(TrainJob(_py(f"import sys; sys.exit({code})"), str(tmp_path),
                                                           job_id="q1"))
    got = _wait_outcome(job, 120)
    assert (got.kind, got.exit_code, got.infrastructure) == (kind, code, False), got
    if kind == FAILED:  # raised in the job: submitit's FailedJobError, with our reason
        assert f"execute_train failed (exit code {code})" in got.reason


def test_warning_signal_requeues_through_submitit_and_counts(tmp_path):
    # Warned 2 s into each attempt (LocalExecutor's timeout path); the third start finishes.
    count = tmp_path / "starts"
    executor = _local(tmp_path, timeout_min=0.1, signal_delay_s=4)
    job = executor.submit(TrainJob(_py(ATTEMPT, count, 3), str(tmp_path), max_requeues=5, job_id="q2"))
    got = _wait_outcome(job, 180)
    assert (got.kind, got.exit_code, got.requeues) == (FINISHED, 0, 2), got
    assert count.read_text() == "3"


def test_past_max_requeues_the_job_fails_with_the_reason(tmp_path):
    count = tmp_path / "starts"
    job = _local(tmp_path, timeout_min=0.1, signal_delay_s=4).submit(
        TrainJob(_py(ATTEMPT, count, 99), str(tmp_path), max_requeues=1, job_id="q3"))
    got = _wait_outcome(job, 180)
    assert got.kind == FAILED and not got.infrastructure
    assert "preempted or timed out 2 times (max_requeues=1)" in got.reason, got
    assert count.read_text() == "2"


def test_a_job_killed_by_the_infrastructure_is_interrupted_not_failed(tmp_path):
    job = _local(tmp_path, timeout_min=5).submit(TrainJob(["sleep", "120"], str(tmp_path), job_id="q4"))
    wait_for(lambda: job.paths.stdout.exists(), 60, "the job to start")
    os.kill(job._process.pid, signal.SIGKILL)  # the whole allocation dies: no result is written
    got = _wait_outcome(job, 60)
    assert got.kind == INTERRUPTED and got.infrastructure and got.exit_code is None, got


# -- exact resume through the engine ---------------------------------------------------------------------
PROBE = ["dataset=digits", "model=probe", "max_epochs=2", "n_train=200", "n_val=64", "batch_size=32"]


@pytest.fixture(scope="module")
def reference(tmp_path_factory) -> Path:
    """The uninterrupted run every preempted one must match (built once per module)."""
    root = make_project(tmp_path_factory.mktemp("ref") / "proj")
    add_probe_model(root)
    run_cli(root, "MLSystem.execute_train", *PROBE, check=True)
    return next(ProjectPaths(root).experiments.glob("*/experiment.json")).parent


@pytest.fixture(scope="module")
def ddp_reference(tmp_path_factory) -> Path:
    """The uninterrupted 2-process DDP run (Lightning's own launcher on this machine)."""
    root = make_project(tmp_path_factory.mktemp("ddpref") / "proj")
    add_probe_model(root)
    run_cli(root, "MLSystem.execute_train", *PROBE, *DDP, check=True, timeout=600)
    return next(ProjectPaths(root).experiments.glob("*/experiment.json")).parent


DDP = ["accelerator=cpu", "devices=2"]


def _train_job(root: Path, *extra: str, **kwargs) -> TrainJob:
    return TrainJob([sys.executable, "-m", "MLSystem.execute_train", *PROBE, *extra], str(root),
                    env={"MLSYSTEM_ROOT": str(root), "PYTHONUNBUFFERED": "1"}, log=str(root / "job.log"), **kwargs)


def _assert_same_run(d: Path, ref: Path, steps: int = 14) -> None:
    def rows(p: Path) -> list[dict]:
        return sorted((json.loads(x) for x in (p / "probe.jsonl").read_text().splitlines()),
                      key=lambda r: (r["rank"], r["step"]))
    got, want = rows(d), rows(ref)
    assert [r["step"] for r in got if r["rank"] == 0] == list(range(1, steps + 1)) and got == want
    w = torch.load(d / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=False)["state_dict"]
    w_ref = torch.load(ref / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=False)["state_dict"]
    for k in w_ref:
        torch.testing.assert_close(w[k], w_ref[k], rtol=1e-5, atol=1e-6)


def _segments(d: Path) -> list[dict]:
    return json.loads((d / "experiment.json").read_text())["segments"]


@pytest.mark.slow
def test_local_time_limit_checkpoints_requeues_and_ends_like_an_uninterrupted_run(tmp_path, reference):
    root = make_project(tmp_path / "proj")
    add_probe_model(root)
    # Each attempt is warned 30 s after it starts: the training (3 s per step, 14 steps, after a
    # start-up of 5-15 s) is cut mid-epoch at least once and resumed by the next attempt.
    executor = _local(tmp_path, timeout_min=1.0, signal_delay_s=30)
    job = executor.submit(_train_job(root, "step_sleep=3", max_requeues=5, job_id="q5"))
    got = _wait_outcome(job, 600)
    log = (root / "job.log").read_text()
    assert (got.kind, got.exit_code) == (FINISHED, 0), (got, log[-3000:])
    assert got.requeues >= 1, log[-3000:]
    d = ProjectPaths(root).experiment(reference.name).dir
    statuses = [s["status"] for s in _segments(d)]
    # A warning during an attempt's start-up requeues before it opened the experiment: no segment.
    # A warning that lands after the last step (a slow machine) leaves the final segment "stopped"
    # and the next attempt finds the experiment complete: the weights below are what matters.
    assert statuses[-1] in ("complete", "stopped") and set(statuses[:-1]) <= {"stopped"}, statuses
    assert 1 <= statuses.count("stopped") <= got.requeues
    # Resumed after the preemption (mid-epoch unless the warning happened to land on an epoch end:
    # the step at which the warning lands depends on the machine's speed).
    assert any(s["kind"] == "resume" for s in _segments(d))
    _assert_same_run(d, reference)


# -- real Slurm ---------------------------------------------------------------------------------------------
@pytest.mark.slurm
def test_slurm_runs_a_batch_job(slurm_cluster, tmp_path):
    out = tmp_path / "out.txt"
    jid = subprocess.run(["sbatch", "--parsable", "-p", slurm_cluster, "-o", str(out), "--wrap", "echo hello from $SLURM_JOB_ID"],
                         capture_output=True, text=True, check=True).stdout.strip()
    wait_for(lambda: out.exists() and "hello from" in out.read_text(), 120, f"slurm job {jid} output")
    assert out.read_text().strip() == f"hello from {jid}"


@pytest.mark.slurm
def test_slurm_job_outcomes_are_read_without_accounting(slurm_cluster, tmp_path):
    executor = make_executor("slurm", tmp_path / "submitit", LauncherConfig(partition=slurm_cluster, time_min=5,
                                                                            signal_delay_s=60, cpus_per_task=1))
    ok = executor.submit(TrainJob(_py("import sys; sys.exit(0)"), str(tmp_path), job_id="s1"))
    bad = executor.submit(TrainJob(_py("import sys; sys.exit(1)"), str(tmp_path), job_id="s2"))
    assert engine_state(ok) in ("PENDING", "CONFIGURING", "RUNNING", "COMPLETING", "COMPLETED")
    assert (_wait_outcome(ok, 120).kind, _wait_outcome(bad, 120).kind) == (FINISHED, FAILED)
    assert engine_state(ok) == "COMPLETED"  # known to the controller for MinJobAge, no sacct involved


def _wait_slurm_outcome(job, timeout: float = 600):
    # A requeued job waits cred_expire before it may start again (scripts/slurm_up.sh: 20 s; Slurm's
    # default 120 s). Do not push its BeginTime forward: the node still refuses the old credential.
    return wait_for(lambda: outcome(job), timeout=timeout, what=f"slurm job {job.job_id} to end")


def _preempt_when_at_step(job, progress: Path, step: int) -> None:
    wait_for(lambda: progress.exists() and json.loads(progress.read_text())["step"] >= step, 300, "training to start")
    # A preemption: Slurm's warning signal to every process of the job.
    subprocess.run(["scancel", "--signal=USR2", str(job.job_id)], check=True)


@pytest.mark.slurm
def test_a_tagged_submission_is_found_again_and_sweeps_go_out_as_an_array(slurm_cluster, tmp_path):
    executor = make_executor("slurm", tmp_path / "submitit", LauncherConfig(partition=slurm_cluster, time_min=5,
                                                                            signal_delay_s=60, cpus_per_task=1,
                                                                            array_parallelism=1))
    # A runner killed right after sbatch still finds what it submitted, by the attempt's tag.
    queue_job = f"job-{uuid.uuid4().hex[:8]}"  # queue job ids are unique; the controller remembers ended jobs
    tag = engine_tag(queue_job, 2)
    executor.update_parameters(comment=tag)
    job = executor.submit(TrainJob(_py("import time; time.sleep(1)"), str(tmp_path)))
    assert find_tagged(tag) == [str(job.job_id)] and find_tagged(engine_tag(queue_job, 3)) == []
    # Three jobs of a sweep as one array, one at a time (array_parallelism=1).
    executor.update_parameters(comment=engine_tag("sweep-1", 1))
    jobs = executor.submit_array([TrainJob(_py(f"import sys; sys.exit({c})"), str(tmp_path)) for c in (0, 3, 0)])
    assert [j.job_id for j in jobs] == [f"{jobs[0].job_id.split('_')[0]}_{i}" for i in range(3)]
    shown = subprocess.run(["scontrol", "show", "job", jobs[0].job_id], capture_output=True, text=True).stdout
    assert "ArrayTaskThrottle=1" in shown  # the cap travels with the array
    assert [_wait_outcome(j, 180).kind for j in jobs] == [FINISHED, STOPPED, FINISHED]
    assert _wait_outcome(job, 120).kind == FINISHED


@pytest.mark.slurm
@pytest.mark.slow
def test_slurm_preemption_checkpoints_requeues_and_ends_like_an_uninterrupted_run(slurm_cluster, tmp_path, reference):
    root = make_project(tmp_path / "proj")
    add_probe_model(root)
    executor = make_executor("slurm", tmp_path / "submitit", LauncherConfig(partition=slurm_cluster, time_min=30,
                                                                            signal_delay_s=60, cpus_per_task=1))
    job = executor.submit(_train_job(root, "step_sleep=0.5", max_requeues=3, job_id="s3"))
    _preempt_when_at_step(job, ProjectPaths(root).experiment(reference.name).progress, 3)
    got = _wait_slurm_outcome(job)
    log = (root / "job.log").read_text()
    assert (got.kind, got.exit_code, got.requeues) == (FINISHED, 0, 1), (got, log[-3000:])
    d = ProjectPaths(root).experiment(reference.name).dir
    assert [s["status"] for s in _segments(d)] == ["stopped", "complete"]
    assert _segments(d)[1]["from_step"] >= 3
    _assert_same_run(d, reference)


@pytest.mark.slurm
@pytest.mark.slow
def test_slurm_ddp_job_one_task_per_process_preempted_resumes_exactly(slurm_cluster, tmp_path, ddp_reference):
    root = make_project(tmp_path / "proj")
    add_probe_model(root)
    config = LauncherConfig(partition=slurm_cluster, time_min=30, signal_delay_s=60, cpus_per_task=1)
    executor = make_executor("slurm", tmp_path / "submitit", config, devices=2)  # 2 Slurm tasks
    job = executor.submit(_train_job(root, *DDP, "step_sleep=1.0", max_requeues=3, job_id="s4"))
    _preempt_when_at_step(job, ProjectPaths(root).experiment(ddp_reference.name).progress, 2)
    got = _wait_slurm_outcome(job)
    assert (got.kind, got.exit_code, got.requeues) == (FINISHED, 0, 1), (got, (root / "job.log").read_text()[-3000:])
    d = ProjectPaths(root).experiment(ddp_reference.name).dir
    assert [s["status"] for s in _segments(d)] == ["stopped", "complete"]
    assert 2 <= _segments(d)[1]["from_step"] < 8
    _assert_same_run(d, ddp_reference, steps=8)  # both ranks: the same samples and weights
