"""What users read: submit's "nearest existing … differs in" (plain, --dry-run, --json), resume
messages that count epochs, plot resume markers in the CLI's words, the "no plots" hint."""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace

from conftest import run_cli

from MLSystem.builder import ExperimentBuilder
from MLSystem.checkpoint_manager import EXTEND, RESUME, Decision
from MLSystem.experiment_store import init_record
from MLSystem.metrics_reader import run_label


def _existing(root: Path, *overrides: str) -> str:
    """An experiment on disk as training leaves its metadata (no training needed for 'nearest')."""
    ctx = ExperimentBuilder(list(overrides)).build()
    ctx.exp.dir.mkdir(parents=True)
    init_record(ctx.exp, ctx.identity, ctx.identity_values, {}, None)
    return ctx.experiment_id


def test_submit_says_which_existing_experiment_is_nearest_and_what_differs(project):
    old = _existing(project, "dataset=digits", "model=cnn")
    assert old == "55c158756c28"
    differs = f"nearest existing {old} differs in lr: 0.003 -> 0.01"

    plain = run_cli(project, "MLSystem.submit", "dataset=digits", "model=cnn", "lr=0.01", check=True)
    assert "new experiment 24badda7580c" in plain.stdout and differs in plain.stdout, plain.stdout

    dry = run_cli(project, "MLSystem.submit", "dataset=digits", "model=cnn", "lr=0.02,0.01", "--dry-run",
                  "--force", check=True)
    lines = dry.stdout.splitlines()
    assert len(lines) == 2 and all(line.startswith("would queue") for line in lines)
    assert f"nearest existing {old} differs in lr: 0.003 -> 0.02" in lines[0] and differs in lines[1]

    js = run_cli(project, "MLSystem.submit", "dataset=digits", "model=cnn", "lr=0.05", "hidden=32", "--json",
                 check=True)
    [queued] = json.loads(js.stdout)["queued"]
    assert queued["nearest"] == {"experiment_id": old, "differs": ["hidden: 64 -> 32", "lr: 0.003 -> 0.05"],
                                 "text": f"nearest existing {old} differs in hidden: 64 -> 32, lr: 0.003 -> 0.05"}
    assert queued["message"].endswith(f"({queued['nearest']['text']})")
    # the queued job's note carries it too (submit --list / the cockpit's queue show it)
    job = json.loads(run_cli(project, "MLSystem.submit", "--show", queued["job"], "--json", check=True).stdout)
    assert queued["nearest"]["text"] in job["note"]
    # nothing similar exists: no nearest, and no empty parentheses
    other = json.loads(run_cli(project, "MLSystem.submit", "dataset=digits", "model=mlp", "--json",
                               "--dry-run", check=True).stdout)
    assert other["queued"][0]["nearest"] is None and other["queued"][0]["message"] == "new experiment 220b522da39b"


def test_resume_messages_count_epochs_and_steps_apart():
    mid = Decision(RESUME, 4, 10, 253, True, None, "abc")
    assert mid.message == "resuming abc mid-epoch 5 of 10 epochs (global step 253)"
    assert Decision(RESUME, 4, 10, 240, False, None, "abc").message == "resuming abc after epoch 4 of 10 epochs"
    assert Decision(EXTEND, 4, 6, 240, False, None, "abc").message == "extending abc: 4 -> 6 epochs"


def test_plot_resume_markers_use_the_cli_words():
    # the event row of a run started by "resuming … mid-epoch 5" carries the 0-based index 4
    assert run_label({"event": "resume", "step": 253, "epoch": 4, "mid_epoch": True}) == "resume mid-epoch 5"
    assert run_label({"event": "extend", "step": 240, "epoch": 4, "mid_epoch": False}) == "extend after epoch 4"
    assert run_label({"event": "resume", "step": 253, "epoch": 4}) == "resume in epoch 5"  # older logs


def test_no_plots_message_says_where_plots_go(tmp_path):
    from MLSystem.execute_plot import no_plots_message

    entries = {layer: SimpleNamespace(folder=tmp_path / layer) for layer in ("dataset", "adapter", "model")}
    text = no_plots_message("abc", entries)
    assert text.startswith("experiment abc has no plots: add BasePlot subclasses to ")
    assert f"{tmp_path / 'dataset'}/plots.py" in text and f"{tmp_path / 'adapter'}/plots.py" in text
    assert "PLOTS = [...]" in text and "MLSystem.plots" in text
    only = no_plots_message("abc", entries, ["model"])
    assert "in layer model" in only and "dataset" not in only


def test_a_sweep_names_the_same_nearest_as_a_single_submit(project):
    from MLSystem.submit import plan

    for extra in (["lr=0.01"], ["hidden=32"], ["lr=0.01", "hidden=32", "dropout=0.2"], ["channels=8"]):
        _existing(project, "dataset=digits", "model=cnn", *extra)
    planned = plan(["dataset=digits", "model=cnn", "lr=0.01,0.02", "hidden=32,64", "dropout=0.2"])
    assert len(planned) == 4
    for p in planned:  # the sweep counts fixed keys once; a lone build compares everything
        alone = ExperimentBuilder(p.args).build()
        assert p.nearest == alone.nearest() and p.nearest is not None, p.args
