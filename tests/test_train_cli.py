"""The user's journey through ``python -m MLSystem.execute_train`` (real subprocesses)."""

from __future__ import annotations

import json
import math
import subprocess
import sys

import pytest

from conftest import FAST, cli_env, run_cli
from MLSystem.paths import ProjectPaths

pytestmark = pytest.mark.slow
CNN = ["dataset=digits", "model=cnn", *FAST, "log_every_n_steps=1"]


def rows(exp_dir):
    return [json.loads(line) for line in (exp_dir / "metrics.jsonl").read_text().splitlines()]


def test_new_complete_extend_and_changed_lr(project):
    first = run_cli(project, "MLSystem.execute_train", *CNN, "max_epochs=2", check=True)
    assert first.stdout.startswith("new experiment ")
    eid = first.stdout.split()[2]
    exp = ProjectPaths(project).experiment(eid)
    assert sorted(p.name for p in exp.checkpoints.iterdir()) == ["epoch-0001.ckpt", "epoch-0002.ckpt", "last.ckpt"]
    for name in ("config.yaml", "experiment.json", "state.json", "metrics.jsonl", "train.log"):
        assert (exp.dir / name).is_file(), name
    from MLSystem.checkpoint_manager import list_checkpoints

    listed = list_checkpoints(exp)
    assert [(c.name, c.epochs_done) for c in listed] == [("epoch-0001", 1), ("epoch-0002", 2), ("last", 2)]
    assert all(c.size > 10_000 and c.modified for c in listed)

    # Same config: complete at once, without importing torch.
    code = ("import sys; from MLSystem.execute_train import main; rc = main(sys.argv[1:]); "
            "print('torch-imported' if 'torch' in sys.modules else 'no-torch'); sys.exit(rc)")
    again = subprocess.run([sys.executable, "-c", code, *CNN, "max_epochs=2"], cwd=project, env=cli_env(project),
                           capture_output=True, text=True)
    assert again.returncode == 0
    assert again.stdout.splitlines() == [f"{eid} already complete (2/2 epochs)", "no-torch"]

    # More epochs: the same experiment trains epochs 3-4 only.
    ext = run_cli(project, "MLSystem.execute_train", *CNN, "max_epochs=4", check=True)
    assert ext.stdout.startswith(f"extending {eid}: 2 -> 4 epochs")
    assert "epoch 1/4" not in ext.stdout and "epoch 2/4" not in ext.stdout and "epoch 3/4 done" in ext.stdout
    log = rows(exp.dir)
    assert [r["epoch"] for r in log if r.get("kind") == "epoch"] == [0, 1, 2, 3]
    steps = [r["step"] for r in log if "loss" in r and r.get("kind") != "epoch"]
    assert steps == sorted(set(steps))
    meta = json.loads(exp.metadata.read_text())
    assert [(s["kind"], s["from_epoch"], s["to_epoch"], s["status"]) for s in meta["segments"]] == [
        ("new", 0, 2, "complete"), ("extend", 2, 4, "complete")]
    epoch_times = [r["epoch_time"] for r in log if r.get("kind") == "epoch"]
    assert meta["epoch_seconds"] == pytest.approx(sum(epoch_times) / 4, abs=1e-3)  # read by queue ETAs

    # LR policy: the cosine schedule is rebuilt over 4 epochs and continues from step 16 of 32,
    # so the first extension steps run near half the peak lr instead of ~0.
    ext_event = next(i for i, r in enumerate(log) if r.get("event") == "extend")
    last_before = [r for r in log[:ext_event] if "lr" in r][-1]["lr"]
    first_after = next(r for r in log[ext_event:] if "lr" in r)
    peak = 3e-3
    assert last_before < 0.05 * peak
    expected = peak * 0.5 * (1 + math.cos(math.pi * first_after["step"] / 32))
    assert first_after["lr"] == pytest.approx(expected, rel=0.05)

    # Changed hyperparameter: new experiment, and the message says what differs.
    other = run_cli(project, "MLSystem.execute_train", *CNN, "max_epochs=1", "lr=0.01", check=True)
    assert other.stdout.startswith("new experiment ")
    assert f"nearest existing {eid} differs in lr: 0.003 -> 0.01" in other.stdout.splitlines()[0]
    assert other.stdout.split()[2] != eid

    # Another model on the same dataset through its own adapter.
    mlp = run_cli(project, "MLSystem.execute_train", "dataset=digits", "model=mlp", *FAST, "max_epochs=1", check=True)
    mlp_exp = ProjectPaths(project).experiment(mlp.stdout.split()[2])
    assert json.loads(mlp_exp.state.read_text())["epochs_completed"] == 1
    assert json.loads(mlp_exp.metadata.read_text())["adapter"] == "digits"


def test_bad_input_is_one_line_and_exit_2(project):
    r = run_cli(project, "MLSystem.execute_train", "model=cnn", "lr=abc", "hiden=4")
    assert r.returncode == 2
    assert r.stderr.count("\n") == 1 and "lr: 'abc' is not a valid float" in r.stderr and "did you mean hidden" in r.stderr
    assert not ProjectPaths(project).experiments.exists()  # nothing written


def test_training_code_failure_exit_1_with_traceback_in_log(project):
    model = project / "definitions" / "models" / "mlp" / "model.py"
    model.write_text(model.read_text().replace("return self.net(x)", "raise RuntimeError('boom in forward')"))
    r = run_cli(project, "MLSystem.execute_train", "model=mlp", *FAST, "max_epochs=1")
    assert r.returncode == 1
    assert "RuntimeError: boom in forward" in r.stderr and r.stderr.count("\n") == 1
    log = next(ProjectPaths(project).experiments.glob("*/train.log"))
    assert "Traceback" in log.read_text() and "boom in forward" in log.read_text()
    meta = json.loads((log.parent / "experiment.json").read_text())
    assert meta["status"] == "failed" and "boom" in meta["error"]


def test_second_trainer_of_the_same_experiment_is_refused(project):
    from MLSystem import experiment_store as store
    from MLSystem.builder import ExperimentBuilder

    ctx = ExperimentBuilder([*CNN, "max_epochs=1"]).build()
    with store.lease(ctx.exp):
        r = run_cli(project, "MLSystem.execute_train", *CNN, "max_epochs=1")
    assert r.returncode == 4
    assert f"experiment {ctx.experiment_id} is busy" in r.stderr


def test_corrupt_records_name_the_file_and_cost_no_work(project):
    """Garbage state.json / binary in metrics.jsonl: resume from last.ckpt anyway, saying which file
    was bad. A binary experiment.json: one line naming it and what to do, nothing trained over it."""
    first = run_cli(project, "MLSystem.execute_train", "model=mlp", *FAST, "max_epochs=1", check=True)
    exp = ProjectPaths(project).experiment(first.stdout.split()[2])
    exp.state.write_text("garbage")
    with open(exp.metrics, "ab") as fh:
        fh.write(b"\x89PNG\r\n\x1a\n\xff\xfe\n")
    r = run_cli(project, "MLSystem.execute_train", "model=mlp", *FAST, "max_epochs=2")
    assert r.returncode == 0, r.stderr
    assert f"{exp.state}: not valid JSON" in r.stderr and "from last.ckpt" in r.stderr
    assert f"extending {exp.id}: 1 -> 2 epochs" in r.stdout  # the epoch already trained was kept
    assert json.loads(exp.state.read_text())["epochs_completed"] == 2
    assert [row["epoch"] for row in rows(exp.dir) if row.get("kind") == "epoch"] == [0, 1]

    exp.metadata.write_bytes(b"\x00\x01binary\xff")
    r = run_cli(project, "MLSystem.execute_train", "model=mlp", *FAST, "max_epochs=3")
    assert r.returncode == 1 and r.stderr.count("\n") == 1
    assert f"{exp.metadata}: not UTF-8 text" in r.stderr and "restore it from a backup" in r.stderr
    assert json.loads(exp.state.read_text())["epochs_completed"] == 2
