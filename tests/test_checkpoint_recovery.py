"""A missing or damaged ``last.ckpt`` never costs work: the run resumes from the newest readable
epoch checkpoint and says so; with nothing readable, the history is kept until ``--restart``."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from conftest import FAST, run_cli

CNN = ["dataset=digits", "model=cnn", *FAST]


def _events(exp: Path) -> list[str]:
    rows = [json.loads(line) for line in (exp / "metrics.jsonl").read_text().splitlines() if line.strip()]
    return [r["event"] for r in rows if "event" in r]


@pytest.mark.slow
def test_damaged_or_missing_last_checkpoint_falls_back_and_keeps_history(project: Path) -> None:
    run_cli(project, "MLSystem.execute_train", *CNN, "max_epochs=2", check=True)
    [exp] = (project / "output" / "experiments").iterdir()
    ckpts = exp / "checkpoints"
    kept = {name: (ckpts / name).read_bytes() for name in ("epoch-0001.ckpt", "epoch-0002.ckpt")}
    metrics_before = (exp / "metrics.jsonl").read_text()

    # Truncated last.ckpt (a full disk, an interrupted copy) and more epochs asked for.
    last = ckpts / "last.ckpt"
    last.write_bytes(last.read_bytes()[: last.stat().st_size // 2])
    proc = run_cli(project, "MLSystem.execute_train", *CNN, "max_epochs=3", check=True)
    assert "last.ckpt is damaged" in proc.stdout and "using epoch-0002.ckpt" in proc.stdout, proc.stdout
    assert "trained to epoch 3/3" in proc.stdout
    assert {name: (ckpts / name).read_bytes() for name in kept} == kept  # never overwritten
    assert len(list(ckpts.glob("last.ckpt.damaged-*"))) == 1  # the bad file is kept for inspection
    assert (exp / "metrics.jsonl").read_text().startswith(metrics_before)  # epochs 1-2 untouched
    assert _events(exp) == ["new", "extend"]
    meta = json.loads((exp / "experiment.json").read_text())
    assert "last.ckpt is damaged" in meta["segments"][-1]["fallback"]

    # last.ckpt gone (deleted by hand): resumes from epoch-0003, not from scratch.
    last.unlink()
    proc = run_cli(project, "MLSystem.execute_train", *CNN, "max_epochs=4", check=True)
    assert "last.ckpt is missing; using epoch-0003.ckpt" in proc.stdout, proc.stdout
    assert _events(exp) == ["new", "extend", "extend"]


@pytest.mark.slow
def test_no_readable_checkpoint_refuses_until_restart(project: Path) -> None:
    run_cli(project, "MLSystem.execute_train", *CNN, "max_epochs=1", check=True)
    [exp] = (project / "output" / "experiments").iterdir()
    for ckpt in (exp / "checkpoints").glob("*.ckpt"):
        ckpt.write_bytes(b"not a checkpoint")
    history = (exp / "metrics.jsonl").read_text()

    proc = run_cli(project, "MLSystem.execute_train", *CNN, "max_epochs=2")
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert "no epoch checkpoint is readable" in proc.stderr and "--restart" in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1
    assert (exp / "metrics.jsonl").read_text() == history
    submit = run_cli(project, "MLSystem.submit", *CNN, "max_epochs=2")
    assert submit.returncode == 2 and "--restart" in submit.stderr  # not queued to fail later
    # Checkpoints and state deleted by hand: the metrics still say it trained; still refused.
    saved = project / "saved"
    saved.mkdir()
    for name in ("checkpoints", "state.json"):
        (exp / name).rename(saved / name)
    proc = run_cli(project, "MLSystem.execute_train", *CNN, "max_epochs=2")
    assert proc.returncode == 2 and "last.ckpt is missing" in proc.stderr, proc.stdout + proc.stderr
    assert (exp / "metrics.jsonl").read_text() == history
    for name in ("checkpoints", "state.json"):
        (saved / name).rename(exp / name)

    proc = run_cli(project, "MLSystem.execute_train", *CNN, "max_epochs=1", "--restart", check=True)
    assert "restart: moved the earlier training" in proc.stdout and "new experiment" in proc.stdout
    [old] = exp.glob("replaced-*")
    assert (old / "metrics.jsonl").read_text() == history
    assert (old / "checkpoints" / "epoch-0001.ckpt").read_bytes() == b"not a checkpoint"
    assert _events(exp) == ["new"] and (exp / "checkpoints" / "epoch-0001.ckpt").stat().st_size > 1000
