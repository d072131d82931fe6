"""Config of the `cnn` model.

    python -m MLSystem.execute_train dataset=digits model=cnn channels=32 lr=0.003
"""

from dataclasses import dataclass

from MLSystem.base import ConfigBase, param


@dataclass
class CNNConfig(ConfigBase):
    channels: int = param(16, "Channels of the first convolution (doubled in the second)")
    hidden: int = param(64, "Width of the fully connected layer")
    dropout: float = param(0.1, "Dropout before the classifier")
    # Redeclaring a Common field changes its default for this model only.
    lr: float = param(3e-3, "Peak learning rate")

    def __post_init__(self) -> None:
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"dropout: must be in [0, 1), got {self.dropout}")
