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


def lr_factor(kind: str, warmup: int, total: int) -> Callable[[int], float]:
    """Multiplier of the peak lr at a given optimizer step."""
    total = max(1, int(total))

    def factor(step: int) -> float:
        if warmup > 0 and step < warmup:
            return (step + 1) / warmup
        if kind == "none":
            return 1.0
        progress = min(1.0, (step - warmup) / max(1, total - warmup))
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
    total = int(module.trainer.estimated_stepping_batches)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lr_factor(params["scheduler"], int(params["warmup_steps"]), total))
    return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "interval": "step"}}


def sync_scheduler_lr(trainer) -> None:
    """Set each param group's lr to what the (possibly rebuilt) schedule says for this step."""
    for config in trainer.lr_scheduler_configs:
        sched = config.scheduler
        if isinstance(sched, torch.optim.lr_scheduler.LambdaLR):
            for group, base, fn in zip(sched.optimizer.param_groups, sched.base_lrs, sched.lr_lambdas):
                group["lr"] = base * fn(sched.last_epoch)
