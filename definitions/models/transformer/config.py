"""Config of the `transformer` model: Lightning's own demo ``LightningTransformer``
(``pytorch_lightning.demos.transformer``), brought in unchanged through ``WrappedModel``.

    python -m MLSystem.execute_train dataset=text model=transformer
    python -m MLSystem.execute_train dataset=text model=transformer ninp=64 nhid=128 limit_samples=512 max_epochs=2
"""

from dataclasses import dataclass
from typing import ClassVar

from MLSystem.base import ConfigBase, param


@dataclass
class TransformerConfig(ConfigBase):
    # Which way each metric this model logs is better (the names would say so too; declaring is
    # explicit, and required for a name the rule does not know). See README: metric direction.
    metric_modes: ClassVar[dict[str, str]] = {"val_loss": "min", "val_ppl": "min", "val_acc": "max"}

    ninp: int = param(128, "Embedding width (the demo's `ninp`)")
    nhead: int = param(2, "Attention heads (must divide ninp)")
    nhid: int = param(256, "Feed-forward width")
    nlayers: int = param(2, "Encoder and decoder layers")
    dropout: float = param(0.1, "Dropout")
    # Common fields redeclared: this model's recipe.
    lr: float = param(1e-3, "Peak learning rate")
    batch_size: int = param(32, "Sequences per batch")
    max_epochs: int = param(4, "Epochs to train", identity=False)
    best_metric: str = param("val_ppl", "Metric whose best value is kept as best.ckpt ('' = none)", identity=False)

    def __post_init__(self) -> None:
        problems = []
        if self.ninp % self.nhead:
            problems.append(f"nhead: must divide ninp={self.ninp}, got {self.nhead}")
        if self.ninp % 2:
            problems.append(f"ninp: must be even (sinusoidal positions), got {self.ninp}")
        if not 0.0 <= self.dropout < 1.0:
            problems.append(f"dropout: must be in [0, 1), got {self.dropout}")
        if problems:
            raise ValueError("; ".join(problems))
