"""Stop, kill and resume through the real CLI: nothing learned is lost, nothing is trained twice,
and a run interrupted mid-epoch ends exactly where an uninterrupted run ends."""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from conftest import FAST, add_probe_model, cli_env, run_cli, wait_for
from MLSystem.paths import ProjectPaths

pytestmark = pytest.mark.slow


def exp_dir(root: Path, stdout: str) -> Path:
    eid = next(w for line in stdout.splitlines() for w in line.split() if len(w) == 12 and w.isalnum())
    return ProjectPaths(root).experiment(eid).dir


def probe_rows(d: Path) -> list[dict]:
    return [json.loads(line) for line in (d / "probe.jsonl").read_text().splitlines()]


def state(d: Path) -> dict:
    return json.loads((d / "state.json").read_text())


def weights(d: Path) -> dict[str, torch.Tensor]:
    return torch.load(d / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=False)["state_dict"]


@pytest.fixture
def probe_project(project: Path) -> Path:
    add_probe_model(project)
    return project


ARGS = ["dataset=digits", "model=probe", "max_epochs=2", *FAST, "n_train=200"]  # 7 steps/epoch, last one short


def test_exact_resume_after_mid_epoch_stops_matches_uninterrupted_run(probe_project, tmp_path):
    # Reference: the same config in a separate project, never interrupted.
    from conftest import make_project

    ref_root = make_project(tmp_path / "ref")
    add_probe_model(ref_root)
    ref = run_cli(ref_root, "MLSystem.execute_train", *ARGS, check=True)
    ref_dir = exp_dir(ref_root, ref.stdout)

    # Interrupted: stop mid-epoch 1 (step 3), then mid-epoch 2 (step 10), then finish.
    first = run_cli(probe_project, "MLSystem.execute_train", *ARGS, "stop_at_step=3")
    assert first.returncode == 3, first.stderr
    d = exp_dir(probe_project, first.stdout)
    assert d.name == ref_dir.name  # stop_at_step is a runtime knob: same experiment ID
    assert state(d) == {**state(d), "global_step": 3, "epochs_completed": 0, "mid_epoch": True}
    second = run_cli(probe_project, "MLSystem.execute_train", *ARGS, "stop_at_step=10")
    assert second.returncode == 3, second.stderr
    assert "resuming" in second.stdout and "mid-epoch 1 of" in second.stdout and "(global step 3)" in second.stdout
    third = run_cli(probe_project, "MLSystem.execute_train", *ARGS, check=True)
    assert "mid-epoch 2 of" in third.stdout and "(global step 10)" in third.stdout

    got, want = probe_rows(d), probe_rows(ref_dir)
    assert [r["step"] for r in got] == list(range(1, 15))  # every step once, in order
    assert got == want  # same samples, same order, same epochs
    for epoch in (0, 1):  # every sample of every epoch exactly once
        seen = [s for r in got if r["epoch"] == epoch for s in r["samples"]]
        assert len(seen) == len(set(seen)) == 200
    assert state(d)["global_step"] == state(ref_dir)["global_step"] == 14
    w, w_ref = weights(d), weights(ref_dir)
    assert w.keys() == w_ref.keys()
    for k in w:
        torch.testing.assert_close(w[k], w_ref[k], rtol=1e-5, atol=1e-6)


def test_stop_flag_saves_checkpoint_exits_3_and_rerun_resumes(probe_project):
    r = run_cli(probe_project, "MLSystem.execute_train", *ARGS, "stop_at_step=4")
    assert r.returncode == 3
    d = exp_dir(probe_project, r.stdout)
    meta = json.loads((d / "experiment.json").read_text())
    assert meta["status"] == "stopped" and meta["segments"][-1]["status"] == "stopped"
    assert (d / "checkpoints" / "last.ckpt").is_file() and state(d)["global_step"] == 4
    r = run_cli(probe_project, "MLSystem.execute_train", *ARGS, check=True)
    assert "resuming" in r.stdout
    assert state(d)["epochs_completed"] == 2 and state(d)["global_step"] == 14
    # The metrics log is one series: no step logged twice across the stop.
    steps = [row["step"] for row in map(json.loads, (d / "metrics.jsonl").read_text().splitlines())
             if "loss" in row and row.get("kind") != "epoch"]
    assert steps == sorted(set(steps))


def _start(root: Path, *args: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "MLSystem.execute_train", *args], cwd=root, env=cli_env(root),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _wait_for_step(d: Path, step: int, proc: subprocess.Popen, timeout: float = 120,
                   source: str = "progress.json") -> None:
    def reached() -> bool:
        try:
            if json.loads((d / source).read_text())["global_step" if source == "state.json" else "step"] >= step:
                return True
        except (FileNotFoundError, json.JSONDecodeError, KeyError):
            pass
        assert proc.poll() is None, proc.communicate()
        return False

    wait_for(reached, timeout, f"step {step} in {d / source}")


def test_sigterm_is_a_graceful_stop(probe_project):
    args = [*ARGS, "step_sleep=0.05"]
    proc = _start(probe_project, *args)
    exp = _experiment(probe_project, proc)
    _wait_for_step(exp, 2, proc)
    proc.send_signal(signal.SIGTERM)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 3, err
    assert state(exp)["global_step"] >= 2
    assert run_cli(probe_project, "MLSystem.execute_train", *args).returncode == 0
    assert state(exp)["epochs_completed"] == 2


def test_sigterm_to_the_process_group_with_loader_workers_is_a_graceful_stop(probe_project):
    """Ctrl-C, `timeout` and Slurm's preemption signal every process of the group: the loader
    workers must leave the stop to the main process, not die and fail the run."""
    args = [*ARGS, "step_sleep=0.05", "num_workers=2"]
    proc = subprocess.Popen([sys.executable, "-m", "MLSystem.execute_train", *args], cwd=probe_project,
                            env=cli_env(probe_project), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            start_new_session=True)
    exp = _experiment(probe_project, proc)
    _wait_for_step(exp, 2, proc)
    os.killpg(proc.pid, signal.SIGTERM)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 3, err
    assert "DataLoader worker" not in err
    assert json.loads((exp / "experiment.json").read_text())["status"] != "failed"
    stopped_at = state(exp)["global_step"]
    assert 2 <= stopped_at < 14
    r = run_cli(probe_project, "MLSystem.execute_train", *args, check=True)
    assert "resuming" in r.stdout
    assert (state(exp)["epochs_completed"], state(exp)["global_step"]) == (2, 14)


def _experiment(root: Path, proc: subprocess.Popen, timeout: float = 120) -> Path:
    def started() -> Path | None:
        found = next(ProjectPaths(root).experiments.glob("*/progress.json"), None)
        assert found is not None or proc.poll() is None, proc.communicate()
        return found

    return wait_for(started, timeout, "the experiment's progress.json").parent


def test_sigkill_at_random_moments_never_corrupts_last_ckpt_and_resume_finishes(probe_project):
    # A checkpoint every step makes kills land during saves too.
    args = [*ARGS, "max_epochs=3", "checkpoint_every_n_steps=1", "step_sleep=0.05"]
    rng = random.Random(1234)
    kills = []
    for _ in range(4):
        proc = _start(probe_project, *args)
        exp = _experiment(probe_project, proc)
        start = state(exp)["global_step"] if (exp / "state.json").exists() else 0
        # state.json follows every checkpoint (one per step here), so it tracks training closely.
        _wait_for_step(exp, min(19, start + rng.randint(1, 5)), proc, source="state.json")
        time.sleep(rng.uniform(0.0, 0.05))
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
        torch.load(exp / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=False)  # never corrupt
        kills.append(state(exp)["global_step"])
    assert all(step < 21 for step in kills)  # every kill landed mid-training
    r = run_cli(probe_project, "MLSystem.execute_train", *args, check=True)
    assert "resuming" in r.stdout
    assert (state(exp)["epochs_completed"], state(exp)["global_step"]) == (3, 21), (kills, r.stdout)
    # Every step appears once in the metrics series despite the kills; each epoch row once.
    rows = [json.loads(x) for x in (exp / "metrics.jsonl").read_text().splitlines()]
    steps = [row["step"] for row in rows if "loss" in row and row.get("kind") != "epoch"]
    assert steps == sorted(set(steps))
    assert [row["epoch"] for row in rows if row.get("kind") == "epoch"] == [0, 1, 2]
    assert "already complete (3/3 epochs)" in run_cli(probe_project, "MLSystem.execute_train", *args).stdout


def test_a_sigkilled_run_is_listed_as_interrupted_not_running_and_resumes(probe_project):
    """experiment.json still says "running" after a SIGKILL; listings and the cockpit's API must not."""
    from MLSystem import experiment_store as store
    from MLSystem.gui.index import ExperimentIndex

    args = [*ARGS, "step_sleep=0.05"]
    proc = _start(probe_project, *args)
    exp = _experiment(probe_project, proc)
    _wait_for_step(exp, 2, proc)
    paths = ProjectPaths.discover(probe_project)
    index = ExperimentIndex(paths, ttl=0)
    assert index.page(status="running").total == 1  # while it trains, it is running
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert json.loads((exp / "experiment.json").read_text())["status"] == "running"  # the stale record
    assert index.page(status="running").total == 0
    [row] = index.page(status="interrupted").rows
    assert row["id"] == exp.name
    assert store.live_status(paths.experiment(exp.name), store.read_record(paths.experiment(exp.name))) == "interrupted"
    r = run_cli(probe_project, "MLSystem.execute_train", *args, check=True)
    assert index.page(status="complete").total == 1 and index.page(status="interrupted").total == 0
