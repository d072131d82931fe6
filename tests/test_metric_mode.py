"""Metric direction: one rule (utils.metric_mode) for the cockpit's best metrics, best.ckpt and
summaries; declared per metric by a definition, with naming defaults. best_metric/best_mode live
in the common layer and moving them there kept every experiment ID."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import ClassVar

import pytest

from MLSystem.builder import ExperimentBuilder
from MLSystem.errors import ConfigError
from MLSystem.utils.config_base import ConfigBase
from MLSystem.utils.metric_mode import best_of, better, declared_modes, describe, is_known, metric_mode


@pytest.mark.parametrize("name, mode", [
    ("val_loss", "min"), ("train_loss_epoch", "min"), ("val_ppl", "min"), ("val_cer", "min"),
    ("val_wer", "min"), ("val_err", "min"), ("val_error_rate", "min"),
    ("val_acc", "max"), ("val_accuracy", "max"), ("val_f1", "max"), ("val_macro_f1", "max"),
])
def test_naming_defaults(name, mode):
    assert metric_mode(name) == mode and is_known(name)


def test_declared_mode_wins_and_unknown_names_are_a_marked_guess():
    assert metric_mode("val_ppl", {"val_ppl": "max"}) == "max"  # declared beats the name
    assert metric_mode("val_margin") == "min" and not is_known("val_margin")
    assert describe("val_margin", 0.5) == "val_margin 0.5 (min?)"
    assert describe("val_margin", 0.5, {"val_margin": "max"}) == "val_margin 0.5"
    assert describe("val_ppl", 1.847) == "val_ppl 1.847"
    assert best_of([8.892, 3.1, 1.847, 2.0], metric_mode("val_ppl")) == 1.847  # the run from the issue
    assert best_of([0.5, 0.9, float("nan")], "max") == 0.9 and best_of([], "min") is None
    assert better(0.1, 0.2, "min") and not better(0.1, 0.2, "max")
    with pytest.raises(ValueError, match="'up' is not 'min' or 'max'"):
        metric_mode("val_x", {"val_x": "up"})


@dataclass
class _DatasetCfg(ConfigBase):
    metric_modes: ClassVar[dict[str, str]] = {"val_score": "min", "val_x": "max"}


@dataclass
class _ModelCfg(ConfigBase):
    metric_modes: ClassVar[dict[str, str]] = {"val_x": "min"}


def test_declared_modes_merge_in_layer_order_and_best_mode_overrides():
    assert declared_modes([_DatasetCfg, _ModelCfg], {}) == {"val_score": "min", "val_x": "min"}
    got = declared_modes([_DatasetCfg, _ModelCfg], {"best_metric": "val_x", "best_mode": "max"})
    assert got["val_x"] == "max"
    assert "val_x" not in declared_modes([], {"best_metric": "val_x", "best_mode": "auto"})

    @dataclass
    class Bad(ConfigBase):
        metric_modes: ClassVar[dict[str, str]] = {"val_y": "higher"}

    with pytest.raises(ValueError, match=r"Bad.metric_modes\['val_y'\]: 'higher'"):
        declared_modes([Bad], {})


# IDs computed by the code BEFORE best_metric/best_mode moved from the conformer config into
# the common layer (commit 4c84b6f): the move must not change any experiment ID.
IDS_BEFORE_THE_MOVE = {
    ("dataset=digits", "model=cnn"): "55c158756c28",
    ("dataset=digits", "model=cnn", "lr=0.01"): "24badda7580c",
    ("dataset=digits", "model=mlp"): "220b522da39b",
    ("dataset=ljspeech", "model=conformer"): "31a44005956f",
    ("dataset=ljspeech", "model=conformer", "best_metric=val_wer", "best_mode=min"): "31a44005956f",
    ("dataset=ljspeech", "model=conformer", "d_model=96", "num_layers=2", "ffn_dim=192", "lr=3e-3"): "e5022f0d70b4",
}


@pytest.mark.parametrize("overrides, eid", IDS_BEFORE_THE_MOVE.items())
def test_best_metric_in_the_common_layer_keeps_experiment_ids(project, overrides, eid):
    assert ExperimentBuilder(list(overrides)).build().experiment_id == eid


def test_any_model_names_its_best_metric_and_best_ckpt_follows_the_rule(project):
    from MLSystem.checkpoint_manager import checkpoint_callbacks

    cnn = ExperimentBuilder(["dataset=digits", "model=cnn", "best_metric=val_acc"]).build()
    assert cnn.sources["best_metric"] == "override" and cnn.merged.fields["best_metric"].identity is False
    assert cnn.experiment_id == "55c158756c28"
    [best] = [c for c in checkpoint_callbacks(cnn.exp, cnn.all_params, cnn.metric_modes) if c.monitor == "val_acc"]
    assert best.mode == "max"  # val_acc: higher is better, with best_mode=auto
    conf = ExperimentBuilder(["dataset=ljspeech", "model=conformer"]).build()
    assert conf.all_params["best_metric"] == "val_cer" and conf.all_params["best_mode"] == "auto"
    [best] = [c for c in checkpoint_callbacks(conf.exp, conf.all_params, conf.metric_modes) if c.monitor]
    assert (best.monitor, best.mode) == ("val_cer", "min")
    forced = ExperimentBuilder(["dataset=digits", "model=cnn", "best_metric=val_acc", "best_mode=min"]).build()
    [best] = [c for c in checkpoint_callbacks(forced.exp, forced.all_params, forced.metric_modes)
              if c.monitor == "val_acc"]
    assert best.mode == "min"
    with pytest.raises(ConfigError, match="best_mode: 'up' is not one of"):
        ExperimentBuilder(["dataset=digits", "model=cnn", "best_mode=up"]).build()


def test_a_bad_metric_modes_declaration_is_a_config_error(project):
    cfg = project / "definitions" / "models" / "cnn" / "config.py"
    text = cfg.read_text()
    text = text.replace("from dataclasses import dataclass", "from dataclasses import dataclass\nfrom typing import ClassVar")
    text = text.replace("class CNNConfig(ConfigBase):\n",
                        "class CNNConfig(ConfigBase):\n    metric_modes: ClassVar[dict] = {'val_acc': 'up'}\n")
    cfg.write_text(text)
    with pytest.raises(ConfigError, match=r"CNNConfig.metric_modes\['val_acc'\]: 'up' is not 'min' or 'max'"):
        ExperimentBuilder(["dataset=digits", "model=cnn"]).build()


def _fake_experiment(root, eid, rows, metric_modes=None):
    d = root / "output" / "experiments" / eid
    d.mkdir(parents=True)
    meta = {"id": eid, "dataset": "digits", "model": "cnn", "adapter": "digits", "status": "complete",
            "created": "2026-11-22T00:00:00+00:00", "updated": "2026-11-22T00:00:00+00:00"}
    if metric_modes is not None:
        meta["metric_modes"] = metric_modes
    (d / "experiment.json").write_text(json.dumps(meta))
    (d / "metrics.jsonl").write_text("".join(
        json.dumps({"kind": "epoch", "step": 10 * (i + 1), "epoch": i, **r}) + "\n" for i, r in enumerate(rows)))


def test_cockpit_best_metrics_use_the_declared_direction(project):
    from MLSystem.gui.index import ExperimentIndex
    from MLSystem.paths import ProjectPaths

    rows = [{"val_ppl": 8.892, "val_acc": 0.2, "val_margin": 0.1, "val_custom": 5.0},
            {"val_ppl": 1.847, "val_acc": 0.7, "val_margin": 0.6, "val_custom": 1.0},
            {"val_ppl": 2.5, "val_acc": 0.6, "val_margin": 0.3, "val_custom": 3.0}]
    _fake_experiment(project, "aaaaaaaaaaaa", rows, {"val_custom": "max"})
    _fake_experiment(project, "bbbbbbbbbbbb", rows)
    index = ExperimentIndex(ProjectPaths.discover())
    assert index.best("aaaaaaaaaaaa") == {"val_ppl": 1.847, "val_acc": 0.7, "val_margin": 0.1, "val_custom": 5.0}
    assert index.best("bbbbbbbbbbbb")["val_custom"] == 1.0  # undeclared: the naming rule's guess
    page = {r["id"]: r["best"] for r in index.page().rows}
    assert page["aaaaaaaaaaaa"] == "val_acc 0.7 · val_custom 5 · val_margin 0.1 (min?) · val_ppl 1.847"
    assert "val_custom 1 (min?)" in page["bbbbbbbbbbbb"]
