"""``WrappedModel``: bring your own LightningModule by composition.

Subclassing a ready-made LightningModule together with :class:`BaseModel`
(``class M(BaseModel, TheirModule)``) is a trap: the constructor chain builds the parent's
default network first, the two ``configure_optimizers`` compete by base-class order, and the
parent's ``prepare_data`` / dataloaders (downloads!) sit on the model the Trainer receives.

``WrappedModel`` *holds* the user's module instead (``self.module``), built by
:meth:`build_module` with the adapter's build arguments, and forwards to it explicitly:

* ``forward``, ``training_step``, ``validation_step``, ``test_step``, ``predict_step`` and the
  checkpoint hooks ``on_save_checkpoint`` / ``on_load_checkpoint`` go to the module (a step the
  module does not define is skipped; override any of them in the subclass to change it). The
  module's own ``self.log`` calls work: it is attached to the same Trainer.
* ``train_loss`` is logged from the loss ``training_step`` returns (``log_train_loss = False``
  if the module logs ``train_loss`` itself).
* The optimizer and schedule come from the common layer (``optimizer``, ``lr``, ``scheduler``...)
  like every MLSystem model; ``use_module_optimizers = True`` uses the module's
  ``configure_optimizers`` instead (then ``lr``/``scheduler`` overrides do not apply).
* Data always comes from the data module: the module's ``prepare_data``, ``setup`` and
  ``*_dataloader`` methods are never called.

Its weights live under ``module.`` in the checkpoint's ``state_dict``.
"""

from __future__ import annotations

from typing import Any, ClassVar, Mapping

import pytorch_lightning as pl

from MLSystem.base.model import BaseModel


class WrappedModel(BaseModel):
    """Subclass in ``definitions/models/{name}/model.py`` and implement :meth:`build_module`."""

    log_train_loss: ClassVar[bool] = True
    use_module_optimizers: ClassVar[bool] = False

    def __init__(self, params: dict[str, Any], **build_args: Any):
        super().__init__(params, **build_args)
        module = self.build_module(**build_args)
        if not isinstance(module, pl.LightningModule):
            raise TypeError(f"{type(self).__name__}.build_module must return a LightningModule, "
                            f"got {type(module).__name__}")
        self.module = module

    def build_module(self, **build_args: Any) -> pl.LightningModule:
        """Construct the wrapped module from the adapter's build args (and ``self.params``)."""
        raise NotImplementedError(f"{type(self).__name__}: implement build_module(**build_args) -> LightningModule")

    # -- forwarding ------------------------------------------------------------------------------
    def _defines(self, hook: str) -> bool:
        return getattr(type(self.module), hook, None) is not getattr(pl.LightningModule, hook, None)

    def _call(self, hook: str, *args: Any, **kwargs: Any) -> Any:
        # Lightning tells a module which hook runs (its `self.log` needs it); the Trainer only
        # tells the module it was given, so pass the name on.
        self.module._current_fx_name = self._current_fx_name
        return getattr(self.module, hook)(*args, **kwargs)

    def forward(self, *args: Any, **kwargs: Any) -> Any:
        return self.module(*args, **kwargs)

    def training_step(self, batch: Any, batch_idx: int) -> Any:
        out = self._call("training_step", batch, batch_idx)
        loss = out.get("loss") if isinstance(out, Mapping) else out
        if self.log_train_loss and loss is not None:
            self.log("train_loss", loss.detach(), on_step=True, on_epoch=True)
        return out

    def validation_step(self, batch: Any, batch_idx: int, *args: Any) -> Any:
        if self._defines("validation_step"):
            return self._call("validation_step", batch, batch_idx, *args)
        return None

    def test_step(self, batch: Any, batch_idx: int, *args: Any) -> Any:
        if self._defines("test_step"):
            return self._call("test_step", batch, batch_idx, *args)
        return None

    def predict_step(self, batch: Any, batch_idx: int, *args: Any) -> Any:
        return self._call("predict_step", batch, batch_idx, *args)

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        self.module.on_save_checkpoint(checkpoint)

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        self.module.on_load_checkpoint(checkpoint)

    def configure_optimizers(self):
        if self.use_module_optimizers:
            return self.module.configure_optimizers()
        return super().configure_optimizers()
