"""``loggers=tensorboard,csv,mlflow``: Lightning's loggers write in the experiment folder, continue
across a stop + resume, are not part of the experiment ID, and a missing package is a clear error."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import FAST, cli_env, run_cli, wait_for

from MLSystem.errors import ConfigError

MEDIUM = ["n_train=2048", "n_val=64", "batch_size=32"]  # 64 steps an epoch


def test_loggers_are_not_part_of_the_id_and_bad_names_are_refused(project):
    from MLSystem.submit import plan

    base = ["dataset=digits", "model=mlp", *FAST]
    [a] = plan(base)
    [b] = plan([*base, "loggers=tensorboard,csv"])  # one comma-separated value, not a sweep
    assert a.experiment_id == b.experiment_id and "loggers='tensorboard,csv'" in b.args
    r = run_cli(project, "MLSystem.execute_train", *base, "loggers=wandb")
    assert r.returncode == 2 and "loggers: 'wandb' not one of tensorboard, csv, mlflow" in r.stderr


def test_a_missing_logger_package_names_the_extra(monkeypatch):
    import importlib.util

    from MLSystem import lightning_loggers

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "mlflow" else real(name, *a))
    with pytest.raises(ConfigError, match=r"loggers=mlflow needs the mlflow-skinny package: pip install -e '\.\[loggers\]'"):
        lightning_loggers.check_available("csv,mlflow")
    lightning_loggers.check_available("csv")


@pytest.mark.slow
def test_tensorboard_and_csv_continue_after_a_resume(project):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    args = ["dataset=digits", "model=mlp", "max_epochs=2", *MEDIUM, "log_every_n_steps=4", "loggers=tensorboard,csv"]
    proc = subprocess.Popen([sys.executable, "-m", "MLSystem.execute_train", *args], cwd=project, env=cli_env(project),
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    exp = wait_for(lambda: next((p for p in (project / "output" / "experiments").glob("*")
                                 if (p / "metrics.jsonl").is_file() and '"loss"' in (p / "metrics.jsonl").read_text()), None),
                   180, "the first logged steps")
    (exp / "STOP").touch()
    out = proc.communicate(timeout=180)[0]
    assert proc.returncode == 3, out
    stopped_at = json.loads((exp / "state.json").read_text())["global_step"]
    assert 0 < stopped_at < 128
    tb = exp / "logs" / "tensorboard"
    assert len(list(tb.glob("events.out.tfevents.*"))) == 1
    run_cli(project, "MLSystem.execute_train", *args, check=True)  # resumes, same logger folders
    assert len(list(tb.glob("events.out.tfevents.*"))) == 2  # a second event file in the same run folder
    acc = EventAccumulator(str(tb))
    acc.Reload()
    steps = [e.step for e in acc.Scalars("train_loss_step")]
    assert steps == sorted(steps) and steps[0] < stopped_at < steps[-1]  # one curve through the resume
    assert [e.step for e in acc.Scalars("val_acc")] == [63, 127]  # both epochs' validation
    rows = (exp / "logs" / "csv" / "metrics.csv").read_text().splitlines()
    csv_steps = [int(r.split(",")[1]) for r in rows[1:]]
    assert csv_steps == sorted(csv_steps) and csv_steps[0] < stopped_at and csv_steps[-1] == 127
