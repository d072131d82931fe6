"""Bring your own LightningModule: ``WrappedModel`` holds a user's module safely, and Lightning's
own demo Transformer, registered as `transformer` on the `text` dataset, goes through the whole
journey: new -> extend -> stop -> resume -> plot."""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path

import pytest
from conftest import cli_env, run_cli


class _Calls:
    init = prepare_data = 0


def _user_module_class():
    """A LightningModule written without MLSystem in mind: its own optimizer, a download in
    prepare_data, its own self.log calls, and a constructor default that builds a large model."""
    import pytorch_lightning as pl
    import torch

    class UserModule(pl.LightningModule):
        def __init__(self, vocab_size: int = 33278):
            super().__init__()
            _Calls.init += 1
            self.vocab_size = vocab_size
            self.net = torch.nn.Linear(4, 1)

        def training_step(self, batch, batch_idx):
            x, y = batch
            loss = torch.nn.functional.mse_loss(self.net(x).squeeze(-1), y)
            self.log("user_metric", loss * 2)
            return {"loss": loss}

        def validation_step(self, batch, batch_idx):
            x, y = batch
            self.log("val_mse", torch.nn.functional.mse_loss(self.net(x).squeeze(-1), y))

        def configure_optimizers(self):
            return torch.optim.SGD(self.parameters(), lr=0.5)

        def prepare_data(self):
            _Calls.prepare_data += 1
            raise RuntimeError("would download")

        def on_save_checkpoint(self, checkpoint):
            checkpoint["user_state"] = {"vocab_size": self.vocab_size}

    return UserModule


def _fit(model):
    import pytorch_lightning as pl
    import torch
    from torch.utils.data import DataLoader, TensorDataset

    x = torch.randn(64, 4)
    data = TensorDataset(x, x.sum(-1))

    class DM(pl.LightningDataModule):
        def train_dataloader(self):
            return DataLoader(data, batch_size=16)

        def val_dataloader(self):
            return DataLoader(data, batch_size=32)

    trainer = pl.Trainer(max_epochs=1, logger=False, enable_checkpointing=False, enable_progress_bar=False,
                         enable_model_summary=False, num_sanity_val_steps=0, accelerator="cpu")
    trainer.fit(model, datamodule=DM())
    return trainer


@pytest.mark.slow  # two in-process Trainer fits (Lightning import included)
def test_wrapped_model_holds_a_users_module_safely(project, tmp_path):
    import torch

    from MLSystem.base.wrapped import WrappedModel
    from MLSystem.builder import ExperimentBuilder

    UserModule = _user_module_class()

    class Wrapped(WrappedModel):
        def build_module(self, vocab_size):
            return UserModule(vocab_size=vocab_size)

    params = ExperimentBuilder(["dataset=digits", "model=cnn", "optimizer=adamw", "lr=0.01"]).build().all_params
    _Calls.init = _Calls.prepare_data = 0
    model = Wrapped(params, vocab_size=7)
    assert _Calls.init == 1 and model.module.vocab_size == 7  # built once, with the real size
    trainer = _fit(model)
    assert _Calls.prepare_data == 0  # data comes from the data module, never from the module
    # the user's own self.log calls work, train_loss is logged from the returned loss
    assert {"user_metric", "val_mse", "train_loss_epoch"} <= set(trainer.callback_metrics)
    [opt] = trainer.optimizers
    assert isinstance(opt, torch.optim.AdamW) and opt.param_groups[0]["initial_lr"] == 0.01  # the common layer's
    path = tmp_path / "w.ckpt"
    trainer.save_checkpoint(path)
    ckpt = torch.load(path, map_location="cpu", weights_only=False)
    assert ckpt["user_state"] == {"vocab_size": 7} and "module.net.weight" in ckpt["state_dict"]

    class OwnOptimizer(Wrapped):
        use_module_optimizers = True

    trainer = _fit(OwnOptimizer(params, vocab_size=7))
    assert isinstance(trainer.optimizers[0], torch.optim.SGD) and trainer.optimizers[0].param_groups[0]["lr"] == 0.5

    class NotAModule(WrappedModel):
        def build_module(self, **kw):
            return torch.nn.Linear(1, 1)

    with pytest.raises(TypeError, match="NotAModule.build_module must return a LightningModule, got Linear"):
        NotAModule(params)


# Tiny settings: a few seconds per epoch on one CPU core. The corpus is the default one: modules
# of the Python standard library on this machine (no download), cut to 20,000 characters.
TINY = ["dataset=text", "model=transformer", "ninp=32", "nhead=2", "nhid=64", "nlayers=1", "block_size=32",
        "max_chars=20000", "limit_samples=128", "batch_size=32", "log_every_n_steps=1"]


def _fake_srun(tmp_path: Path) -> str:
    """A `srun` on PATH, as on a machine with Slurm installed (Lightning then warns on every run)."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    srun = bin_dir / "srun"
    srun.write_text("#!/bin/sh\nexit 0\n")
    srun.chmod(srun.stat().st_mode | stat.S_IEXEC)
    return f"{bin_dir}{os.pathsep}{os.environ.get('PATH', '')}"


@pytest.mark.slow
def test_lightning_demo_transformer_new_extend_stop_resume_plot(project, tmp_path):
    env = cli_env(project, OMP_NUM_THREADS="1", PATH=_fake_srun(tmp_path))
    env.pop("SLURM_JOB_ID", None)

    def train(*extra, stop=False, code=0):
        run_env = dict(env, MLSYSTEM_STOP_FILE=str(flag)) if stop else env
        proc = run_cli(project, "MLSystem.execute_train", *TINY, *extra, env=run_env)
        assert proc.returncode == code, proc.stdout + proc.stderr
        assert "srun" not in proc.stderr  # not launched by Slurm: no hint to use srun
        return proc

    flag = tmp_path / "STOP"
    first = train("max_epochs=1")
    eid = first.stdout.split("new experiment ")[1].split()[0]
    exp = project / "output" / "experiments" / eid
    meta = json.loads((exp / "experiment.json").read_text())
    assert meta["metric_modes"] == {"val_loss": "min", "val_ppl": "min", "val_acc": "max"}
    assert meta["best_metric"] == "val_ppl" and (exp / "checkpoints" / "best.ckpt").is_file()

    assert f"extending {eid}: 1 -> 2 epochs" in train("max_epochs=2").stdout
    flag.touch()  # the runner's per-job stop flag: the next run stops after its first step
    stopped = train("max_epochs=3", stop=True, code=3)
    assert f"stopped {eid} at step" in stopped.stdout
    flag.unlink()
    resumed = train("max_epochs=3")
    assert f"resuming {eid} mid-epoch 3 of 3 epochs (global step" in resumed.stdout
    assert f"{eid} trained to epoch 3/3" in resumed.stdout

    log = (exp / "train.log").read_text()
    assert "finished: stopped " in log and "stopped stopped" not in log
    assert f"finished: {eid} trained to epoch 3/3" in log

    from MLSystem.gui.index import ExperimentIndex
    from MLSystem.metrics_reader import MetricSeries, read_rows, run_label
    from MLSystem.paths import ProjectPaths

    series = MetricSeries.from_rows(read_rows(exp / "metrics.jsonl"))
    # the plots' and live charts' markers say what the CLI said ("resuming … mid-epoch 3")
    assert [run_label(e) for e in series.resumes()] == ["extend after epoch 1", "extend after epoch 2",
                                                        "resume mid-epoch 3"]
    ppl = [r["val_ppl"] for r in series.epochs if "val_ppl" in r]
    assert len(ppl) == 3
    assert ExperimentIndex(ProjectPaths(project)).best(eid)["val_ppl"] == min(ppl)
    # best.ckpt holds the lowest val_ppl (the direction the definition declared)
    import torch

    best = torch.load(exp / "checkpoints" / "best.ckpt", map_location="cpu", weights_only=False)
    [state] = [v for k, v in best["callbacks"].items() if "val_ppl" in k]
    assert float(state["best_model_score"]) == pytest.approx(min(ppl), rel=1e-4)

    plots = run_cli(project, "MLSystem.execute_plot", eid, env=env)
    assert plots.returncode == 0, plots.stdout + plots.stderr
    pngs = {p.relative_to(exp / "plots").as_posix() for p in (exp / "plots").rglob("*.png")}
    assert {"dataset/token_frequencies.png", "model/loss_curves.png", "model/validation_metrics.png",
            "model/continuations.png"} <= pngs, pngs
