"""Config of the `mlp` model.

    python -m MLSystem.execute_train dataset=digits model=mlp hidden=256 layers=3
"""

from dataclasses import dataclass

from MLSystem.base import ConfigBase, param


@dataclass
class MLPConfig(ConfigBase):
    hidden: int = param(128, "Width of each hidden layer")
    layers: int = param(2, "Number of hidden layers")
    dropout: float = param(0.1, "Dropout after each hidden layer")

    def __post_init__(self) -> None:
        if self.layers < 1:
            raise ValueError(f"layers: must be >= 1, got {self.layers}")
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"dropout: must be in [0, 1), got {self.dropout}")
