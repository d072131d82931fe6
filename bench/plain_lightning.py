"""Baseline for bench_core: the same digits data module and CNN, trained by a plain Lightning script
(no MLSystem builder, checkpoint manager, metrics log or resume machinery)."""

import sys
import tempfile

import pytorch_lightning as pl

from definitions.datasets.digits.datamodule import DigitsDataModule
from definitions.models.cnn.adapters.digits.adapter import DigitsToCNN
from definitions.models.cnn.model import CNN
from MLSystem.builder import ExperimentBuilder

if __name__ == "__main__":
    params = ExperimentBuilder(sys.argv[1:]).build().all_params  # the same values, nothing else
    pl.seed_everything(params["seed"], verbose=False)
    adapter = DigitsToCNN(params)
    dm = DigitsDataModule(params, adapter)
    model = CNN(params, **adapter.build_args(dm))
    with tempfile.TemporaryDirectory() as tmp:
        trainer = pl.Trainer(max_epochs=params["max_epochs"], accelerator="cpu", logger=False,
                             enable_progress_bar=False, enable_model_summary=False, num_sanity_val_steps=0,
                             default_root_dir=tmp)
        trainer.fit(model, datamodule=dm)
