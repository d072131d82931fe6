"""Comparing experiments: the CLI and the API report exactly the parameters that differ and each
metric's best / last value (read independently from the metrics files here); the cockpit's
compare page through NiceGUI's User fixture."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import FAST, cli_env, run_cli
from gui_fixtures import experiment_ids
from nicegui.testing import User

TRAIN = ("from MLSystem.execute_train import main\nimport json, sys\n"
         "for args in json.loads(sys.argv[1]):\n    assert main(args) == 0, args\n")


def train(root: Path, *runs: list[str]) -> None:
    """Train several runs in one process (one import of torch and Lightning)."""
    proc = subprocess.run([sys.executable, "-c", TRAIN, json.dumps([list(r) for r in runs])], cwd=root,
                          env=cli_env(root), capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]


def ids_by(root: Path, key: str) -> dict:
    out = {}
    for meta in (root / "output" / "experiments").glob("*/experiment.json"):
        data = json.loads(meta.read_text())
        out[(data["model"], data["identity_values"].get("lr"), data["identity_values"].get("hidden"))] = data["id"]
    return out


def epoch_rows(root: Path, eid: str) -> list[dict]:
    rows = [json.loads(x) for x in (root / "output" / "experiments" / eid / "metrics.jsonl").read_text().splitlines()]
    return [r for r in rows if r.get("kind") == "epoch"]


@pytest.mark.slow
def test_compare_cli_reports_exactly_what_differs_and_best_last(project):
    mlp = ["dataset=digits", "model=mlp", *FAST]
    # C is trained 1 epoch, then extended to 2: its curves continue across the extension.
    train(project, [*mlp, "max_epochs=2", "lr=0.01"], [*mlp, "max_epochs=2", "lr=0.05"],
          [*mlp, "max_epochs=1", "lr=0.01", "hidden=32"], [*mlp, "max_epochs=2", "lr=0.01", "hidden=32"])
    ids = ids_by(project, "lr")
    a, b, c = ids[("mlp", 0.01, 128)], ids[("mlp", 0.05, 128)], ids[("mlp", 0.01, 32)]
    r = json.loads(run_cli(project, "MLSystem.compare", a[:6], b, c, "--json", "--curves", check=True).stdout)
    assert r["ids"] == [a, b, c]
    assert r["differing"] == ["hidden", "lr"]
    assert r["params"]["lr"] == {a: 0.01, b: 0.05, c: 0.01} and r["params"]["max_epochs"] == {a: 2, b: 2, c: 2}
    for eid in (a, b, c):
        rows = epoch_rows(project, eid)
        acc, loss = [x["val_acc"] for x in rows], [x["val_loss"] for x in rows]
        assert r["metrics"][eid]["val_acc"]["best"] == max(acc) and r["metrics"][eid]["val_acc"]["mode"] == "max"
        assert r["metrics"][eid]["val_loss"]["best"] == min(loss) and r["metrics"][eid]["val_loss"]["mode"] == "min"
        assert r["metrics"][eid]["val_acc"]["last"] == acc[-1] and r["metrics"][eid]["val_loss"]["last"] == loss[-1]
    curve = r["curves"][c]["epoch_metrics"]["val_acc"]
    assert curve["epoch"] == [1, 2] and curve["step"] == sorted(curve["step"])
    assert [e["event"] for e in r["curves"][c]["resumes"]] == ["extend"]
    text = run_cli(project, "MLSystem.compare", a, b, c, check=True).stdout
    assert "parameters that differ:" in text and "hidden" in text and "lr" in text and "optimizer" not in text
    assert "optimizer" in run_cli(project, "MLSystem.compare", a, b, "--all", check=True).stdout
    bad = run_cli(project, "MLSystem.compare", a, "ffffff")
    assert bad.returncode == 2 and "ffffff" in bad.stderr


async def test_compare_api_and_page(user: User, gui_project) -> None:
    cnn = experiment_ids(gui_project)["cnn"]
    train(gui_project, ["dataset=digits", "model=cnn", "max_epochs=1", "lr=0.01", *FAST])
    other = next(e for m, e in ((json.loads(p.read_text())["model"], p.parent.name)
                                for p in (gui_project / "output" / "experiments").glob("*/experiment.json"))
                 if m == "cnn" and e != cnn)
    r = (await user.http_client.get("/api/compare", params={"ids": [cnn, other[:7]]})).json()
    assert r["differing"] == ["lr", "max_epochs"]
    for eid in (cnn, other):
        acc = [x["val_acc"] for x in epoch_rows(gui_project, eid)]
        assert r["metrics"][eid]["val_acc"] == {**r["metrics"][eid]["val_acc"], "best": max(acc), "last": acc[-1]}
    assert (await user.http_client.get("/api/compare", params={"ids": "nothex!"})).status_code == 400

    await user.open("/experiments")
    await user.should_see(marker="exp-compare", retries=150)
    await user.open(f"/compare?ids={cnn},{other}")
    await user.should_see(marker="cmp-params", retries=150)
    params = user.find(marker="cmp-params").elements.pop()
    assert [row["param"] for row in params.rows] == ["lr", "max_epochs"]
    assert params.rows[0][other] == "0.01"
    best = user.find(marker="cmp-best").elements.pop()
    acc_best = next(row for row in best.rows if row["key"] == "val_acc-best")
    assert acc_best[cnn] == f"{max(x['val_acc'] for x in epoch_rows(gui_project, cnn)):.6g}"
    user.find(marker="cmp-only-diff").click()  # every parameter, differing ones starred
    await asyncio.sleep(0.2)
    rows = user.find(marker="cmp-params").elements.pop().rows
    assert {"lr *", "max_epochs *", "optimizer", "model"} <= {row["param"] for row in rows}
    chart = user.find(marker="cmp-curves").elements.pop()
    assert len(chart.options["series"]) == 2
    await user.open("/compare?ids=zzz")
    await user.should_see(marker="cmp-error", retries=150)


async def test_study_page_shows_trials_best_so_far_and_importance(user: User, gui_project) -> None:
    import optuna
    from optuna.distributions import CategoricalDistribution, FloatDistribution

    from MLSystem.paths import ProjectPaths
    from MLSystem.tune.store import StudySpec, StudyStore

    cnn = experiment_ids(gui_project)["cnn"]
    store = StudyStore(ProjectPaths.discover(gui_project), "cnn-lr")
    store.write_spec(StudySpec("cnn-lr", ["dataset=digits", "model=cnn", "lr=interval(0.001, 0.1)",
                                          "batch_size=choice(32, 64)"], "val_acc", "max", 8))
    study = optuna.create_study(study_name="cnn-lr", storage=store.storage(), direction="maximize")
    dists = {"lr": FloatDistribution(0.001, 0.1), "batch_size": CategoricalDistribution((32, 64))}
    values = [0.5, 0.7, 0.6, 0.9, 0.8]
    for i, v in enumerate(values):
        study.add_trial(optuna.trial.create_trial(params={"lr": 0.001 + 0.01 * i, "batch_size": 32 if i % 2 else 64},
                                                  distributions=dists, value=v, user_attrs={"experiment_id": cnn}))
    study.add_trial(optuna.trial.create_trial(params={"lr": 0.05, "batch_size": 32}, distributions=dists,
                                              state=optuna.trial.TrialState.PRUNED,
                                              user_attrs={"experiment_id": cnn, "pruned_at_epoch": 1}))
    await user.open("/studies")
    await user.should_see(marker="study-list", retries=150)
    assert user.find(marker="study-list").elements.pop().rows[0]["best"] == "0.9"
    await user.open("/studies/cnn-lr")
    await user.should_see(marker="study-trials", retries=150)
    await user.should_see("Best: trial 3", retries=20)
    rows = user.find(marker="study-trials").elements.pop().rows
    assert [r["state"] for r in rows] == ["complete"] * 5 + ["pruned"] and rows[5]["note"] == "pruned at epoch 1"
    history = user.find(marker="study-history").elements.pop().options["series"][1]["data"]
    assert [h[1] for h in history] == [0.5, 0.7, 0.7, 0.9, 0.9]
    await user.should_see(marker="study-importance", retries=150)  # computed after the page is served
    assert set(user.find(marker="study-importance").elements.pop().options["yAxis"]["data"]) == {"lr", "batch_size"}
    await user.should_see(marker="study-compare", retries=20)
