"""Optimizer and learning-rate schedule from the common params.

Schedule policy for extra-epoch training: the schedule is a pure function of the global step
and the *current* total (``max_epochs`` x steps per epoch). Raising ``max_epochs`` rebuilds it
over the new total and continues from the current step, so a finished cosine schedule does not
sit at zero (Lightning issues #2823 / #19865). Each extension is recorded as a segment in
``experiment.json``.
"""

from __future__ import annotations

import math
from typing import Any, Callable

import torch

from MLSystem.errors import ConfigError


def lr_factor(kind: str, warmup: int, total_steps: Callable[[], int]) -> Callable[[int], float]:
    """Multiplier of the peak lr at a given optimizer step; the total is read at each call."""

    def factor(step: int) -> float:
        if warmup > 0 and step < warmup:
            return (step + 1) / warmup
        if kind == "none" or step <= warmup:
            return 1.0
        progress = min(1.0, (step - warmup) / max(1, total_steps() - warmup))
        if kind == "cosine":
            return 0.5 * (1.0 + math.cos(math.pi * progress))
        return 1.0 - progress  # linear

    return factor


def build_optimizers(module: torch.nn.Module, params: dict[str, Any]) -> dict[str, Any]:
    name, lr, wd = params["optimizer"], float(params["lr"]), float(params["weight_decay"])
    trainable = [p for p in module.parameters() if p.requires_grad]
    if name == "adam":
        opt = torch.optim.Adam(trainable, lr=lr, weight_decay=wd)
    elif name == "adamw":
        opt = torch.optim.AdamW(trainable, lr=lr, weight_decay=wd)
    elif name == "sgd":
        opt = torch.optim.SGD(trainable, lr=lr, weight_decay=wd, momentum=float(params["momentum"]))
    else:
        raise ConfigError(f"optimizer: {name!r} is not one of 'adam', 'adamw', 'sgd'")
    trainer = module.trainer

    def total_steps() -> int:
        # Not `trainer.estimated_stepping_batches`: calling it here sets up the train loader
        # before the checkpoint is restored, and Lightning then skips restoring the loader's
        # position (breaking exact mid-epoch resume).
        batches = trainer.num_training_batches
        if batches == float("inf"):
            return 1
        return max(1, int(trainer.max_epochs) * int(batches) // int(trainer.accumulate_grad_batches))

    sched = torch.optim.lr_scheduler.LambdaLR(opt, lr_factor(params["scheduler"], int(params["warmup_steps"]), total_steps))
    return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "interval": "step"}}


def sync_scheduler_lr(trainer) -> None:
    """Set each param group's lr to what the (possibly rebuilt) schedule says for this step."""
    for config in trainer.lr_scheduler_configs:
        sched = config.scheduler
        if isinstance(sched, torch.optim.lr_scheduler.LambdaLR):
            for group, base, fn in zip(sched.optimizer.param_groups, sched.base_lrs, sched.lr_lambdas):
                group["lr"] = base * fn(sched.last_epoch)
