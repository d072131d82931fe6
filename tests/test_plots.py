"""Plots at every layer, execute_plot, the experiment loader and ID prefixes (issue 4)."""

from __future__ import annotations

import json
import os
import shutil

import pytest

from conftest import FAST, make_project, run_cli

CNN = ["dataset=digits", "model=cnn", *FAST, "max_epochs=2", "log_every_n_steps=1"]
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def train(project, *args: str) -> str:
    """Train through the CLI and return the experiment ID."""
    proc = run_cli(project, "MLSystem.execute_train", *args, check=True)
    return proc.stdout.split("trained to epoch")[0].split()[-1]


def index(project, eid: str) -> dict[tuple[str, str], dict]:
    data = json.loads((project / "output/experiments" / eid / "plots/index.json").read_text())
    return {(p["layer"], p["name"]): p for p in data["plots"]}


@pytest.fixture(scope="module")
def trained_template(tmp_path_factory):
    """One trained digits/cnn experiment per module; each test gets its own copy of the project."""
    root = make_project(tmp_path_factory.mktemp("template") / "proj")
    return root, train(root, *CNN)


@pytest.fixture
def trained(trained_template, tmp_path, monkeypatch):
    template, eid = trained_template
    root = tmp_path / "proj"
    shutil.copytree(template, root, ignore=shutil.ignore_patterns("__pycache__"))
    monkeypatch.setenv("MLSYSTEM_ROOT", str(root))
    monkeypatch.chdir(root)
    return root, eid


def test_plots_are_discovered_per_layer(trained):
    project, eid = trained
    listed = json.loads(run_cli(project, "MLSystem.execute_plot", "--list", eid[:6], "--json", check=True).stdout)
    assert listed["experiment_id"] == eid and listed["problems"] == []
    by_layer = {}
    for p in listed["plots"]:
        by_layer.setdefault(p["layer"], []).append(p["name"])
    assert by_layer == {
        "dataset": ["samples", "class_balance"],
        "adapter": ["adapted_inputs"],
        "model": ["loss_curves", "learning_rate", "validation_metrics", "predictions", "confusion_matrix"],
    }
    needs = {p["name"] for p in listed["plots"] if p["needs_weights"]}
    assert needs == {"predictions", "confusion_matrix"}
    text = run_cli(project, "MLSystem.execute_plot", "--list", eid, check=True).stdout
    assert "adapter:" in text and "adapted_inputs" in text and "[needs weights]" in text


def test_execute_plot_writes_every_png_and_an_index(trained):
    project, eid = trained
    proc = run_cli(project, "MLSystem.execute_plot", eid[:5])
    assert proc.returncode == 0, proc.stderr
    assert "training it first" not in proc.stdout  # a checkpoint exists: no training
    assert f"{eid}: 8 plot(s) written" in proc.stdout
    entries = index(project, eid)
    assert len(entries) == 8 and all(e["ok"] and e["error"] is None for e in entries.values())
    for (layer, name), entry in entries.items():
        png = project / "output/experiments" / eid / entry["file"]
        assert png == project / "output/experiments" / eid / "plots" / layer / f"{name}.png"
        data = png.read_bytes()
        assert data.startswith(PNG_MAGIC) and len(data) > 5000
    assert entries[("model", "predictions")]["checkpoint"] == "last"
    assert entries[("model", "loss_curves")]["checkpoint"] is None
    assert entries[("dataset", "samples")]["params"] == {"rows": 4, "cols": 8}


def test_a_broken_plot_is_reported_and_the_others_still_succeed(trained):
    project, eid = trained
    with open(project / "definitions/datasets/digits/plots.py", "a") as fh:
        fh.write("\n\nclass Broken(BasePlot):\n    def execute(self, context):\n"
                 "        raise RuntimeError('deliberately broken')\n")
    proc = run_cli(project, "MLSystem.execute_plot", eid, "--layer", "dataset")
    assert proc.returncode == 1
    assert "2 plot(s) written" in proc.stdout and "1 failed: dataset/broken: RuntimeError: deliberately broken" in proc.stdout
    entries = index(project, eid)
    assert entries[("dataset", "broken")]["ok"] is False
    assert entries[("dataset", "samples")]["ok"] and entries[("dataset", "class_balance")]["ok"]
    assert ("model", "loss_curves") not in entries  # --layer dataset drew only that layer
    log = (project / "output/experiments" / eid / "plots/plot.log").read_text()
    assert "Traceback" in log and "deliberately broken" in log


def test_an_unimportable_plot_module_fails_its_layer_only(trained):
    project, eid = trained
    (project / "definitions/models/cnn/adapters/digits/plots.py").write_text("import no_such_module\n")
    proc = run_cli(project, "MLSystem.execute_plot", eid, "--json")
    assert proc.returncode == 1
    plots = json.loads(proc.stdout)["plots"]
    failed = [p for p in plots if not p["ok"]]
    assert len(failed) == 1 and failed[0]["layer"] == "adapter" and "no_such_module" in failed[0]["error"]
    assert sum(p["ok"] for p in plots) == 7


def test_every_layer_uses_plots_py_and_an_old_plot_py_still_works_with_a_warning(project):
    adapter = project / "definitions/models/cnn/adapters/digits"
    (adapter / "plots.py").rename(adapter / "plot.py")  # the adapters' name before MLSystem 0.2
    proc = run_cli(project, "MLSystem.inspector", "--json", check=True)
    [plot] = json.loads(proc.stdout)["models"]["cnn"]["adapters"]["digits"]["plots"]
    assert plot["layer"] == "adapter" and plot["source"].endswith("adapters/digits/plot.py")
    assert "plot.py: rename it to plots.py" in proc.stderr and "Warning" in proc.stderr


def test_no_checkpoint_trains_first_then_plots(trained):
    project, eid = trained
    exp = project / "output/experiments" / eid
    # Never trained: no checkpoint, no state, no metrics (with metrics left, training again would
    # overwrite a history; that needs execute_train --restart, see test_checkpoint_recovery).
    shutil.rmtree(exp / "checkpoints")
    (exp / "state.json").unlink()
    (exp / "metrics.jsonl").unlink()
    proc = run_cli(project, "MLSystem.execute_plot", eid, "--plot", "predictions")
    assert proc.returncode == 0, proc.stderr
    assert f"no checkpoint for {eid}: training it first (max_epochs=2)" in proc.stdout
    assert json.loads((exp / "state.json").read_text())["epochs_completed"] == 2
    assert index(project, eid)[("model", "predictions")]["ok"]
    # Plots that need no weights never train.
    shutil.rmtree(exp / "checkpoints")
    proc = run_cli(project, "MLSystem.execute_plot", eid, "--plot", "model/loss_curves", check=True)
    assert "training" not in proc.stdout and not (exp / "checkpoints").exists()


def test_chosen_checkpoint_is_used_and_recorded(trained):
    project, eid = trained
    proc = run_cli(project, "MLSystem.execute_plot", eid, "--plot", "confusion_matrix", "--checkpoint", "epoch-0001",
                   check=True)
    assert "ok   model/confusion_matrix" in proc.stdout
    assert index(project, eid)[("model", "confusion_matrix")]["checkpoint"] == "epoch-0001"
    bad = run_cli(project, "MLSystem.execute_plot", eid, "--checkpoint", "epoch-0009")
    assert bad.returncode == 2
    assert "checkpoint 'epoch-0009' not found" in bad.stderr and "epoch-0001, epoch-0002, last" in bad.stderr
    unknown = run_cli(project, "MLSystem.execute_plot", eid, "--plot", "nope")
    assert unknown.returncode == 2 and "--plot nope: no such plot" in unknown.stderr and "model/loss_curves" in unknown.stderr


def test_load_experiment_matches_plain_lightning(trained, monkeypatch):
    import torch

    from MLSystem.loader import load_experiment

    project, eid = trained
    exp = load_experiment(eid[:4])
    assert exp.experiment_id == eid and exp.warnings == []
    assert exp.all_params["n_train"] == 256 and exp.all_params["max_epochs"] == 2
    assert exp.context.sources["n_train"] == "override" and exp.context.sources["lr"] == "model"
    steps = [r for r in exp.metrics if "loss" in r]
    assert steps and steps[-1]["step"] == 16
    ckpt = project / "output/experiments" / eid / "checkpoints/last.ckpt"
    plain = type(exp.model).load_from_checkpoint(ckpt, map_location="cpu").eval()
    x = torch.stack([exp.datamodule.val_set[i][0] for i in range(16)])
    with torch.no_grad():
        assert torch.equal(exp.model(x), plain(x))
        first = load_experiment(eid, "epoch-0001").model(x)
    assert not torch.equal(first, plain(x))  # another checkpoint, other weights
    assert not exp.model.training and next(exp.model.parameters()).device.type == "cpu"


def test_load_experiment_ignores_later_config_yaml_changes(trained):
    from MLSystem.loader import load_experiment

    project, eid = trained
    cfg = project / "configs/config.yaml"
    cfg.write_text(cfg.read_text().replace("num_workers: 0", "num_workers: 0\n  noise: 0.9"))
    assert load_experiment(eid).all_params["noise"] == 0.25


def test_ambiguous_and_unknown_prefixes_fail_clearly(trained):
    project, eid = trained
    other = "f" * 12 if not eid.startswith("f") else "0" * 12
    twin = project / "output/experiments" / (eid[:3] + other[3:])
    shutil.copytree(project / "output/experiments" / eid, twin)
    proc = run_cli(project, "MLSystem.execute_plot", eid[:3], "--list")
    assert proc.returncode == 2
    assert f"experiment id '{eid[:3]}' is ambiguous: it matches" in proc.stderr and eid in proc.stderr
    assert twin.name in proc.stderr and len(proc.stderr.strip().splitlines()) == 1
    proc = run_cli(project, "MLSystem.execute_plot", other[:6])
    assert proc.returncode == 2 and "no such experiment" in proc.stderr and "2 exist" in proc.stderr
    # the same prefix rules for a plot job
    proc = run_cli(project, "MLSystem.submit", "--plot", eid[:3])
    assert proc.returncode == 2 and "ambiguous" in proc.stderr


def test_plot_job_through_the_queue(trained):
    project, eid = trained
    run_cli(project, "MLSystem.submit", "--plot", eid[:6], check=True)
    run_cli(project, "MLSystem.runner", check=True)
    finished = list((project / "queue/finished").glob("*.json"))
    assert len(finished) == 1 and json.loads(finished[0].read_text())["experiment_id"] == eid
    assert (project / "output/experiments" / eid / "plots/model/loss_curves.png").stat().st_size > 0


def test_metrics_tail_reads_only_new_complete_lines(tmp_path):
    from MLSystem.metrics_reader import MetricSeries, MetricsTail, downsample

    path = tmp_path / "metrics.jsonl"
    tail = MetricsTail(path)
    assert tail.poll() == []
    path.write_text('{"event":"new","step":0}\n{"step":1,"loss":2.0}\n{"step":2,"lo')
    assert [r["step"] for r in tail.poll()] == [0, 1]
    with open(path, "a") as fh:
        fh.write('ss":1.5}\n{"kind":"epoch","step":2,"epoch":0,"val_acc":0.5}\n')
    rows = tail.poll()
    assert [r["step"] for r in rows] == [2, 2] and rows[0]["loss"] == 1.5 and not tail.reset
    path.write_text('{"step":1,"loss":2.0}\n')  # a resume dropped rows past the restored step
    assert [r["step"] for r in tail.poll()] == [1] and tail.reset
    series = MetricSeries.from_rows([{"event": "resume", "step": 5}, {"step": 1, "loss": 1.0},
                                     {"kind": "epoch", "step": 2, "val_acc": 0.3}])
    assert len(series.resumes()) == 1 and series.epoch_metric_names() == ["val_acc"]
    xs = list(range(10_000))
    ys = [float((i * 7919) % 1000) for i in xs]
    ys[5000] = 1e6
    dx, dy = downsample(xs, ys, 400)
    assert len(dx) <= 400 and max(dy) == 1e6 and dx == sorted(dx)


@pytest.mark.skipif(not os.environ.get("MLSYSTEM_TEST_GPU"), reason="needs a CUDA device (set MLSYSTEM_TEST_GPU=1)")
def test_gpu_trained_experiment_restores_on_cpu(project):
    import subprocess
    import sys

    from conftest import cli_env

    eid = train(project, *CNN, "accelerator=gpu")
    code = ("import torch; from MLSystem.loader import load_experiment; "
            f"m = load_experiment('{eid}').model; print(next(m.parameters()).device)")
    out = subprocess.run([sys.executable, "-c", code], cwd=project, capture_output=True, text=True,
                         env=cli_env(project, CUDA_VISIBLE_DEVICES=""), check=True).stdout
    assert out.strip() == "cpu"
