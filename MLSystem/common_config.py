"""The Common layer: training knobs every experiment has, lowest in the merge order.

Dataset, Adapter and Model configs may redeclare any of these fields to change its default
for their selection (e.g. a model that wants ``lr = 3e-3``).
"""

from __future__ import annotations

from dataclasses import dataclass

from MLSystem.lightning_loggers import parse as parse_loggers
from MLSystem.utils.config_base import ConfigBase, param

SEED_MAX = 2**32 - 1


@dataclass
class CommonConfig(ConfigBase):
    seed: int = param(42, "Random seed for weights, data order and augmentation")
    max_epochs: int = param(
        10, "Epochs to train; raising it on a finished experiment trains the extra epochs",
        identity=False,
    )
    batch_size: int = param(64, "Training batch size")
    optimizer: str = param("adamw", "Optimizer", choices=("adam", "adamw", "sgd"))
    lr: float = param(1e-3, "Peak learning rate")
    weight_decay: float = param(0.0, "Weight decay")
    momentum: float = param(0.9, "Momentum (sgd only)")
    scheduler: str = param(
        "cosine", "Learning-rate schedule over the whole run (rebuilt when epochs are added)",
        choices=("none", "cosine", "linear"),
    )
    warmup_steps: int = param(0, "Linear warm-up steps before the schedule")
    grad_clip: float = param(0.0, "Gradient-norm clipping; 0 disables it")
    precision: str = param(
        "32-true", "Numeric precision", choices=("32-true", "16-mixed", "bf16-mixed"),
    )
    limit_samples: int = param(
        0, "Light mode: use at most this many training samples (0 = all)",
    )
    accelerator: str = param(
        "auto", "Device type", identity=False, choices=("auto", "cpu", "gpu", "mps"),
    )
    devices: str = param("auto", "Devices to use (Lightning syntax); per node when num_nodes > 1", identity=False)
    num_nodes: int = param(1, "Machines to train on (DDP over devices x num_nodes processes)", identity=False)
    num_workers: int = param(0, "DataLoader worker processes", identity=False)
    log_every_n_steps: int = param(10, "Metrics-log interval in optimizer steps", identity=False)
    checkpoint_every_n_steps: int = param(
        0, "Also checkpoint every N steps mid-epoch (0 = only at epoch ends)", identity=False,
    )
    checkpoint_every_minutes: float = param(
        5.0, "Also checkpoint mid-epoch after this many minutes (0 = off); bounds what a kill loses",
        identity=False,
    )
    keep_epoch_checkpoints: int = param(
        -1, "Per-epoch checkpoint files to keep (-1 = all)", identity=False,
    )
    # Which metric "best" means for this experiment (not part of the ID: it chooses a file, not
    # what is learned). Any layer may redeclare the default, e.g. a model with "val_cer".
    best_metric: str = param(
        "", "Also keep checkpoints/best.ckpt for this logged metric, e.g. val_loss ('' = none)", identity=False,
    )
    best_mode: str = param(
        "auto", "Whether best_metric is better low or high; auto: the definition's metric_modes, "
        "then the name (loss/err/cer/wer/ppl -> min, acc/f1 -> max)", identity=False,
        choices=("auto", "min", "max"),
    )
    loggers: str = param(
        "", "Lightning loggers beside MLSystem's log, comma-separated: tensorboard, csv, mlflow "
        "(files in the experiment's logs/; the 'loggers' extra installs them)", identity=False,
    )

    def __post_init__(self) -> None:
        problems = []
        if not 0 <= self.seed <= SEED_MAX:  # numpy / Lightning's seed_everything take 32-bit seeds
            problems.append(f"seed: must be between 0 and {SEED_MAX}, got {self.seed}")
        if self.max_epochs < 1:
            problems.append(f"max_epochs: must be >= 1, got {self.max_epochs}")
        if self.batch_size < 1:
            problems.append(f"batch_size: must be >= 1, got {self.batch_size}")
        if self.lr <= 0:
            problems.append(f"lr: must be > 0, got {self.lr}")
        if self.num_nodes < 1:
            problems.append(f"num_nodes: must be >= 1, got {self.num_nodes}")
        if self.limit_samples < 0:
            problems.append(f"limit_samples: must be >= 0, got {self.limit_samples}")
        try:
            parse_loggers(self.loggers)
        except ValueError as exc:
            problems.append(str(exc))
        if problems:
            raise ValueError("; ".join(problems))
