"""Config merge, provenance, experiment ID and registry errors (in-process, no training)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from MLSystem.builder import ExperimentBuilder
from MLSystem.config_merge import merge_config
from MLSystem.overrides import expand_sweeps
from MLSystem.errors import ConfigError, RegistryError, UnknownExperimentError
from MLSystem.hashing import canonical


def build(*overrides: str):
    return ExperimentBuilder(list(overrides)).build()


def test_merge_priority_and_provenance(project):
    ctx = build("dataset=digits", "model=cnn")
    assert ctx.all_params["lr"] == 3e-3 and ctx.sources["lr"] == "model"  # cnn redeclares Common's lr
    assert ctx.sources["batch_size"] == "common" and ctx.sources["noise"] == "dataset"
    assert ctx.sources["normalize"] == "adapter"
    assert ctx.sources["num_workers"] == "config.yaml"
    ctx = build("dataset=digits", "model=cnn", "lr=0.01", "num_workers=2")
    assert ctx.all_params["lr"] == 0.01 and ctx.sources["lr"] == "override"
    assert ctx.all_params["num_workers"] == 2 and ctx.sources["num_workers"] == "override"
    mlp = build("dataset=digits", "model=mlp")
    assert mlp.all_params["lr"] == 1e-3 and mlp.sources["lr"] == "common"
    assert mlp.selection.adapter == "digits" and "center" in mlp.all_params


def test_building_a_context_loads_no_data_and_no_torch(project):
    code = ("import sys; from MLSystem.builder import ExperimentBuilder; "
            "c = ExperimentBuilder(['model=cnn']).build(); c.decide(); "
            "print(c.experiment_id, 'torch' in sys.modules, 'pytorch_lightning' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], cwd=project, capture_output=True, text=True, check=True)
    eid, torch_loaded, pl_loaded = out.stdout.split()
    assert len(eid) == 12 and torch_loaded == "False" and pl_loaded == "False"


def test_same_id_for_equivalent_spellings(project):
    base = build("dataset=digits", "model=cnn", "lr=0.001", "dropout=0.2").experiment_id
    assert build("model=cnn", "dropout=0.2", "lr=1e-3", "dataset=digits").experiment_id == base
    assert build("dataset=digits", "model=cnn", "lr=1e-3", "dropout=0.2", "max_epochs=9").experiment_id == base
    assert build("dataset=digits", "model=cnn", "lr=0.001", "dropout=0.2", "num_workers=3").experiment_id == base
    assert build("model=cnn", "lr=1", "dropout=0.2").experiment_id == build("model=cnn", "lr=1.0", "dropout=0.2").experiment_id
    # Setting a value equal to the default is the same experiment as not setting it.
    assert build("model=cnn", "lr=0.003").experiment_id == build("model=cnn").experiment_id


def test_different_id_for_any_identity_change(project):
    base = build("model=cnn")
    changed = {build("model=cnn", o).experiment_id for o in ("lr=0.01", "seed=1", "batch_size=16", "channels=8",
                                                              "noise=0.5", "normalize=false", "scheduler=none")}
    assert base.experiment_id not in changed and len(changed) == 7
    assert build("model=mlp").experiment_id != base.experiment_id
    parent = "abcdef012345"
    (project / "output" / "experiments" / parent).mkdir(parents=True)
    warm = build("model=cnn", f"init_from={parent}")
    assert warm.experiment_id != base.experiment_id
    # An ID prefix and a checkpoint's file name resolve to the same experiment as the full form.
    assert build("model=cnn", "init_from=abcd").experiment_id == warm.experiment_id
    assert (build("model=cnn", "init_from=abc/epoch-0002.ckpt").experiment_id
            == build("model=cnn", f"init_from={parent}/epoch-0002").experiment_id != warm.experiment_id)


def test_unknown_or_ambiguous_id_prefix_is_a_clear_error(project):
    from MLSystem.experiment_store import resolve_id
    from MLSystem.paths import ProjectPaths

    for name in ("abc111111111", "abc222222222", "def333333333"):
        (project / "output" / "experiments" / name).mkdir(parents=True)
    paths = ProjectPaths.discover()
    assert resolve_id(paths, "abc1") == "abc111111111"
    with pytest.raises(ConfigError, match=r"init_from: experiment id 'abc' is ambiguous: it matches abc111111111, abc222222222"):
        build("model=cnn", "init_from=abc")
    with pytest.raises(UnknownExperimentError, match=r"'0f': no such experiment.*3 exist"):
        resolve_id(paths, "0f")
    with pytest.raises(UnknownExperimentError, match="hexadecimal"):
        resolve_id(paths, "xyz")


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(lr=st.floats(1e-6, 1.0, allow_nan=False), seed=st.integers(0, 10**6), order=st.permutations(range(3)))
def test_id_independent_of_override_order_and_float_spelling(project, lr, seed, order):
    items = [f"lr={lr!r}", f"seed={seed}", "model=cnn"]
    ordered = [items[i] for i in order]
    respelled = [f"lr={lr:.17e}", f"seed={seed}", "model=cnn"]
    assert build(*ordered).experiment_id == build(*respelled).experiment_id


def test_id_stable_across_processes_and_hash_seeds(project):
    code = "from MLSystem.builder import ExperimentBuilder; print(ExperimentBuilder(['model=cnn','lr=0.02']).build().experiment_id)"
    ids = set()
    for seed in ("0", "1", "12345"):
        env = {"PYTHONHASHSEED": seed, "MLSYSTEM_ROOT": str(project), "PATH": "/usr/bin:/bin",
               **({"PYTHONPATH": os.environ["PYTHONPATH"]} if os.environ.get("PYTHONPATH") else {})}
        ids.add(subprocess.run([sys.executable, "-c", code], env=env, cwd=project, capture_output=True,
                               text=True, check=True).stdout.strip())
    assert ids == {build("model=cnn", "lr=0.02").experiment_id}


def test_adding_a_field_with_a_default_keeps_existing_ids(project):
    before = build("model=cnn", "lr=0.02").experiment_id
    cfg = project / "definitions" / "models" / "cnn" / "config.py"
    cfg.write_text(cfg.read_text().replace(
        '    lr: float = param(3e-3, "Peak learning rate")',
        '    lr: float = param(3e-3, "Peak learning rate")\n    label_smoothing: float = param(0.0, "new knob")'))
    code = ("from MLSystem.builder import ExperimentBuilder; c = ExperimentBuilder(['model=cnn','lr=0.02']).build(); "
            "print(c.experiment_id, 'label_smoothing' in c.all_params)")
    out = subprocess.run([sys.executable, "-c", code], cwd=project, capture_output=True, text=True, check=True)
    assert out.stdout.split() == [before, "True"]


def test_canonical_form_is_sorted_and_typed():
    assert canonical({"b": 1.0, "a": [1, 2]}) == '{"a":[1,2],"b":1.0}'
    with pytest.raises(ValueError):
        canonical({"lr": float("nan")})


def test_unknown_key_names_the_closest_valid_keys(project):
    with pytest.raises(ConfigError, match=r"hiden: unknown parameter .*did you mean hidden"):
        build("model=cnn", "hiden=3")


def test_wrong_type_and_bad_value_are_all_reported_at_once(project):
    with pytest.raises(ConfigError) as info:
        build("model=cnn", "lr=abc", "dropout=2", "optimizer=rmsprop")
    msg = str(info.value)
    assert "lr: 'abc' is not a valid float" in msg
    assert "dropout: must be in [0, 1), got 2.0" in msg
    assert "optimizer: 'rmsprop' is not one of 'adam', 'adamw', 'sgd'" in msg
    assert "\n" not in msg


def test_selection_errors(project):
    with pytest.raises(RegistryError, match=r"model=cnx: not in registry.json \(did you mean cnn\?\)"):
        build("model=cnx")
    with pytest.raises(RegistryError, match=r"adapter=foo: model 'cnn' has no such adapter"):
        build("model=cnn", "adapter=foo")
    with pytest.raises(ConfigError, match="sweeps"):
        build("model=cnn", "lr=0.1,0.2")


def _edit_registry(project: Path, edit) -> None:
    f = project / "configs" / "registry.json"
    reg = json.loads(f.read_text())
    edit(reg)
    f.write_text(json.dumps(reg))


def test_registry_missing_path_and_keys(project):
    _edit_registry(project, lambda r: r["datasets"]["digits"].update(path="definitions/datasets/nope"))
    with pytest.raises(RegistryError, match=r"datasets.digits.path: folder 'definitions/datasets/nope' does not exist"):
        build("model=cnn")
    _edit_registry(project, lambda r: r["datasets"]["digits"].pop("config"))
    with pytest.raises(RegistryError, match=r"datasets.digits: missing 'config'"):
        build("model=cnn")


def test_registry_missing_class_and_wrong_base(project):
    _edit_registry(project, lambda r: r["models"]["cnn"].update(config="CnnConfig"))
    with pytest.raises(RegistryError, match=r"class 'CnnConfig' not found .*did you mean CNNConfig"):
        build("model=cnn")
    model_py = project / "definitions" / "models" / "cnn" / "model.py"
    model_py.write_text(model_py.read_text() + "\n\nclass NotAModel:\n    pass\n")
    _edit_registry(project, lambda r: r["models"]["cnn"].update(config="CNNConfig", **{"class": "NotAModel"}))
    ctx = build("model=cnn")  # configs alone do not import the model module
    with pytest.raises(RegistryError, match=r"NotAModel in .*model.py must subclass MLSystem.base.model.BaseModel"):
        ctx.model


def test_registry_invalid_json(project):
    (project / "configs" / "registry.json").write_text('{"datasets": {,}')
    with pytest.raises(RegistryError, match=r"registry.json: invalid JSON at line 1"):
        build("model=cnn")


def test_every_registered_definition_builds(project):
    """A new definition that cannot be built fails here (like lightning-hydra-template's config tests)."""
    from MLSystem.registry import Registry

    reg = Registry.load()
    built = set()
    for model, adapters in reg.adapters.items():
        for adapter in adapters.values():
            dataset = adapter.name if adapter.name in reg.datasets else next(iter(reg.datasets))
            ctx = build(f"model={model}", f"dataset={dataset}", f"adapter={adapter.name}")
            for entry in ctx.entries.values():  # every class imports and has the right base class
                entry.impl_class()
            built.add((dataset, model))
            if dataset == "digits":  # data that needs no files: run a batch through the model too
                ctx = build(f"model={model}", f"dataset={dataset}", f"adapter={adapter.name}", "n_train=64", "n_val=32")
                ctx.datamodule.setup("fit")
                x, y = next(iter(ctx.datamodule.train_dataloader()))
                assert ctx.model(x).shape == (len(y), ctx.datamodule.num_classes)
    assert {("digits", "cnn"), ("digits", "mlp")} <= built


def test_expand_sweeps_is_a_cross_product():
    jobs = expand_sweeps(["model=mlp", "lr=0.1,0.01", "seed=range(1,4)"])
    assert len(jobs) == 6
    assert ["model=mlp", "lr=0.1", "seed=1"] in jobs and ["model=mlp", "lr=0.01", "seed=3"] in jobs
    merge_config(jobs[0])  # every expanded job is a valid plain override list


def test_new_experiment_explains_a_changed_default(project):
    """A value set explicitly when it was not the default yet is part of that experiment's ID."""
    from MLSystem.paths import ProjectPaths
    from MLSystem.utils.atomic import atomic_write_json

    ctx = build("model=cnn")
    old = ProjectPaths.discover().experiment("a" * 12)
    old.dir.mkdir(parents=True)
    atomic_write_json(old.metadata, {"id": old.id, "updated": "2026-01-01", "identity_values": ctx.identity_values,
                                     "identity": {**ctx.identity, "params": {"lr": ctx.all_params["lr"]}}})
    assert ctx.explain_new() == (f"nearest existing {old.id} has the same values, but lr had another default when "
                                 "it was created (IDs leave out default values)")
    assert build("model=cnn", "lr=0.01").explain_new() == f"nearest existing {old.id} differs in lr: 0.003 -> 0.01"
