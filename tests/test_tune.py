"""Studies through the queue (``python -m MLSystem.tune``): real runner subprocesses, Optuna's
journal read back as a user would (``tune --show --json``), experiments on disk."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import FAST, cli_env, run_cli, wait_for

from MLSystem.errors import ConfigError
from MLSystem.tune.space import parse_space

MEDIUM = ["n_train=1024", "n_val=64", "batch_size=32"]  # 32 steps an epoch


def show(root: Path, name: str) -> dict:
    return json.loads(run_cli(root, "MLSystem.tune", "--show", name, "--json", check=True).stdout)


def segments(root: Path, eid: str) -> int:
    return len(json.loads((root / "output" / "experiments" / eid / "experiment.json").read_text())["segments"])


def test_search_space_grammar():
    from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution

    s = parse_space(["dataset=digits", "max_epochs=3", "lr=tag(log, interval(1e-4, 1e-1))",
                     "batch_size=choice(32, 64, 128)", "layers=range(1, 4)", "hidden=interval(16, 64)",
                     "dropout=0.0,0.2"], int_keys=["hidden"])
    assert s.fixed == ["dataset=digits", "max_epochs=3"]
    assert s.space["lr"] == FloatDistribution(1e-4, 0.1, log=True)
    assert s.space["batch_size"] == CategoricalDistribution((32, 64, 128))
    assert s.space["layers"] == IntDistribution(1, 3)  # Hydra's range excludes its stop
    assert s.space["hidden"] == IntDistribution(16, 64)
    assert s.space["dropout"] == CategoricalDistribution((0.0, 0.2))
    assert s.trial_overrides({"lr": 0.01, "batch_size": 64, "layers": 2, "hidden": 20, "dropout": 0.2}) == [
        "dataset=digits", "max_epochs=3", "lr=0.01", "batch_size=64", "layers=2", "hidden=20", "dropout=0.2"]
    with pytest.raises(ConfigError, match="no search space"):
        parse_space(["dataset=digits", "lr=0.1"])
    with pytest.raises(ConfigError, match="lr"):
        parse_space(["lr=tag(log, interval(0, 1))"])  # log needs low > 0


def test_bad_study_arguments_are_one_line_errors(project):
    r = run_cli(project, "MLSystem.tune", "dataset=digits", "model=mlp", "lrr=interval(0.1, 1)", "--metric", "val_acc")
    assert r.returncode == 2 and "lrr" in r.stderr and "did you mean" in r.stderr
    r = run_cli(project, "MLSystem.tune", "dataset=digits", "model=mlp", "lr=interval(0.01, 1)", "--metric",
                "val_acc", "--pruner", "bogus")
    assert r.returncode == 2 and "--pruner" in r.stderr
    r = run_cli(project, "MLSystem.tune", "--show", "nope")
    assert r.returncode == 2 and "no such study" in r.stderr


@pytest.mark.slow
def test_six_trial_study_through_the_queue_survives_an_interrupted_runner(project):
    args = ["dataset=digits", "model=mlp", "max_epochs=2", *MEDIUM, "lr=tag(log, interval(1e-3, 3e-1))",
            "dropout=interval(0.0, 0.5)", "--trials", "6", "--metric", "val_acc", "--name", "mlp-lr"]
    first = run_cli(project, "MLSystem.tune", *args, check=True)
    assert "trial 0: queued" in first.stdout
    # The runner alone advances the study: it tells each trial and queues the next one.
    log = open(project / "runner-out.txt", "ab")
    runner = subprocess.Popen([sys.executable, "-m", "MLSystem.runner"], cwd=project, env=cli_env(project),
                              stdout=log, stderr=subprocess.STDOUT)
    try:
        wait_for(lambda: show(project, "mlp-lr")["counts"]["complete"] >= 2, timeout=300, what="2 trials told")
        runner.send_signal(signal.SIGTERM)  # mid-study: the running trial checkpoints and stays queued
        assert runner.wait(timeout=120) == 3
    finally:
        if runner.poll() is None:
            runner.kill()
    before = show(project, "mlp-lr")
    done = {t["experiment_id"]: segments(project, t["experiment_id"])
            for t in before["trials"] if t["state"] == "complete"}
    assert 2 <= len(done) < 6

    rerun = run_cli(project, "MLSystem.tune", *args, "--run", timeout=600, check=True)
    assert "continuing study mlp-lr" in rerun.stdout
    s = show(project, "mlp-lr")
    assert s["counts"]["complete"] == 6 and s["n_trials"] == 6
    eids = [t["experiment_id"] for t in s["trials"]]
    assert len(set(eids)) == 6 and all((project / "output" / "experiments" / e / "checkpoints" / "last.ckpt").is_file()
                                       for e in eids)
    for t in s["trials"]:  # each value is the best val_acc the experiment logged
        rows = [json.loads(x) for x in (project / "output" / "experiments" / t["experiment_id"] / "metrics.jsonl")
                .read_text().splitlines()]
        assert t["value"] == pytest.approx(max(r["val_acc"] for r in rows if r.get("kind") == "epoch"))
    for eid, n in done.items():  # finished trials were not trained again
        assert segments(project, eid) == n
    best = max(s["trials"], key=lambda t: t["value"])
    assert s["best"]["number"] == best["number"] and f"best: trial {best['number']}" in rerun.stdout
    assert len(s["best_so_far"]) == 6 and s["best_so_far"][-1]["best"] == best["value"]
    listing = json.loads(run_cli(project, "MLSystem.tune", "--list", "--json", check=True).stdout)["studies"]
    assert [r["name"] for r in listing] == ["mlp-lr"] and listing[0]["best_value"] == best["value"]

    # Running the same study again from scratch (journal removed) reuses every experiment.
    (project / "output" / "studies" / "mlp-lr" / "journal.log").unlink()
    again = run_cli(project, "MLSystem.tune", *args, "--run", timeout=600, check=True)
    assert again.stdout.count("reused existing experiment") == 6
    assert all(segments(project, e) == n for e, n in done.items())


@pytest.mark.slow
def test_pruned_trial_stops_with_a_checkpoint_and_can_be_extended(project):
    # ThresholdPruner(lower=2): an accuracy is always below 2, so the first report prunes.
    args = ["dataset=digits", "model=mlp", "max_epochs=30", *MEDIUM, "lr=interval(0.001, 0.01)",
            "--trials", "1", "--metric", "val_acc", "--pruner", "threshold:lower=2.0", "--name", "pruned"]
    run = run_cli(project, "MLSystem.tune", *args, "--run", timeout=600, check=True)
    s = show(project, "pruned")
    [trial] = s["trials"]
    assert trial["state"] == "pruned" and trial["pruned_at_epoch"] >= 1, run.stdout
    eid = trial["experiment_id"]
    exp = project / "output" / "experiments" / eid
    state = json.loads((exp / "state.json").read_text())
    assert (exp / "checkpoints" / "last.ckpt").is_file() and 1 <= state["epochs_completed"] < 30
    jobs = json.loads(run_cli(project, "MLSystem.submit", "--show", trial["job"], "--json", check=True).stdout)
    assert jobs["status"] == "stopped"
    assert "pruned at epoch" in run.stderr + run.stdout
    # A user extends the pruned experiment later: it resumes from the checkpoint, the study's record stays.
    target = state["epochs_completed"] + 1
    r = run_cli(project, "MLSystem.submit", *trial_overrides(s, trial), f"max_epochs={target}", check=True)
    assert f"queued" in r.stdout and eid in r.stdout, r.stdout
    run_cli(project, "MLSystem.runner", timeout=300, check=True)
    assert json.loads((exp / "state.json").read_text())["epochs_completed"] == target
    assert show(project, "pruned")["trials"][0]["state"] == "pruned"


def trial_overrides(summary: dict, trial: dict) -> list[str]:
    fixed = [o for o in summary["spec"]["overrides"] if "(" not in o and "max_epochs" not in o]
    return fixed + [f"{k}={v}" for k, v in trial["params"].items()]


def test_a_trial_waiting_for_another_job_is_told_when_that_job_ends(project):
    """A sampled configuration whose experiment is already queued (by hand) shares that job; the
    runner's hook tells the trial when the job is filed (no training here: the job is filed by hand)."""
    import os

    from MLSystem.jobs import Status
    from MLSystem.queue_store import JobQueue
    from MLSystem.paths import ProjectPaths
    from MLSystem.submit import submit
    from MLSystem.tune.hook import make_hook

    base = ["dataset=digits", "model=mlp", "max_epochs=1", *FAST]
    [manual] = submit([*base, "hidden=16"]).queued
    run_cli(project, "MLSystem.tune", *base, "hidden=choice(16)", "--trials", "1", "--metric", "val_acc",
            "--name", "shared", check=True)
    queue = JobQueue(ProjectPaths.discover())
    assert [j.id for j in queue.pending()] == [manual["job"]]  # no second job for the same experiment
    exp = project / "output" / "experiments" / manual["experiment_id"]
    exp.mkdir(parents=True)
    (exp / "metrics.jsonl").write_text('{"step": 8, "epoch": 0, "kind": "epoch", "val_acc": 0.25}\n')
    job = queue.claim_next({"pid": os.getpid(), "host": queue.host})
    make_hook(ProjectPaths.discover()).job_ended(queue.complete(job, Status.FINISHED, exit_code=0))
    [trial] = show(project, "shared")["trials"]
    assert trial["state"] == "complete" and trial["value"] == 0.25 and trial["experiment_id"] == manual["experiment_id"]


IMPORTANCE = """
import sys
import optuna
from optuna.distributions import CategoricalDistribution, FloatDistribution
from MLSystem.tune.report import param_importance
study = optuna.create_study(direction="maximize")
dists = {"lr": FloatDistribution(1e-4, 1e-1, log=True), "batch_size": CategoricalDistribution((32, 64))}
for i in range(8):
    study.add_trial(optuna.trial.create_trial(params={"lr": 1e-4 * 2 ** i, "batch_size": (32, 64)[i % 2]},
                                              distributions=dists, value=i / 10))
print(sorted(param_importance(study)), "sklearn" in sys.modules)
import sklearn.ensemble  # still importable by other code in the process
"""


def test_parameter_importance_does_not_import_scikit_learn(tmp_path):
    """PED-ANOVA needs only NumPy: the study page's importance does not pay scikit-learn's
    seconds of imports (which also held the cockpit's GIL) where another package installed it."""
    pytest.importorskip("sklearn")  # without it there is nothing to avoid
    proc = subprocess.run([sys.executable, "-c", IMPORTANCE], cwd=tmp_path, env=cli_env(tmp_path),
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split() == ["['batch_size',", "'lr']", "False"]
