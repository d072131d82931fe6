"""``BaseModel``: a LightningModule built from the merged params and the adapter's build args;
``BaseClassifier``: the same with the classification steps written once."""

from __future__ import annotations

from typing import Any

import pytorch_lightning as pl
from torch.nn import functional as F

from MLSystem.optim import build_optimizers, sync_scheduler_lr


class BaseModel(pl.LightningModule):
    """Subclass in ``definitions/models/{name}/model.py``.

    ``self.params`` is the merged parameter dict; the adapter's ``build_args`` arrive as keyword
    arguments. Optimizer and schedule come from the common params (``optimizer``, ``lr``,
    ``scheduler``...) unless ``configure_optimizers`` is overridden. Log ``train_loss`` and
    ``val_*`` metrics with ``self.log`` to see them in the metrics log.
    """

    def __init__(self, params: dict[str, Any], **build_args: Any):
        super().__init__()
        self.params = dict(params)
        # Stored in checkpoints so plain Lightning `load_from_checkpoint` can rebuild the model.
        self.save_hyperparameters({"params": self.params, **build_args})

    def configure_optimizers(self):
        return build_optimizers(self, self.params)

    def on_train_start(self) -> None:
        # After a resume with more epochs the schedule's horizon changed: apply it from this step.
        sync_scheduler_lr(self.trainer)


class BaseClassifier(BaseModel):
    """A ``BaseModel`` for classification: write ``forward`` (inputs -> logits), nothing else.

    Batches are ``(inputs, labels)``; it logs ``train_loss`` (cross-entropy), ``val_loss`` and
    ``val_acc``, the names the ready-made plots and ``best_metric=val_acc`` expect.
    """

    def training_step(self, batch, batch_idx):
        x, y = batch
        loss = F.cross_entropy(self(x), y)
        self.log("train_loss", loss, on_step=True, on_epoch=True)
        return loss

    def validation_step(self, batch, batch_idx):
        x, y = batch
        logits = self(x)
        self.log("val_loss", F.cross_entropy(logits, y))
        self.log("val_acc", (logits.argmax(-1) == y).float().mean())
