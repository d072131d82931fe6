"""Config of the `digits` dataset: procedurally rendered digits, so examples need no download.

    python -m MLSystem.execute_train dataset=digits model=cnn n_train=8000 noise=0.4
"""

from dataclasses import dataclass

from MLSystem.base import ConfigBase, param


@dataclass
class DigitsConfig(ConfigBase):
    n_train: int = param(4000, "Training images")
    n_val: int = param(1000, "Validation images")
    image_size: int = param(16, "Side of the square images in pixels")
    noise: float = param(0.25, "Std of Gaussian pixel noise")
    max_shift: int = param(2, "Maximum random shift of a glyph in pixels")
    data_seed: int = param(0, "Seed of the generated data (independent of the training seed)")

    def __post_init__(self) -> None:
        if self.image_size < 9:
            raise ValueError(f"image_size: must be >= 9 to hold a 5x7 glyph, got {self.image_size}")
        if self.n_train < 1 or self.n_val < 1:
            raise ValueError(f"n_train/n_val: must be >= 1, got {self.n_train}/{self.n_val}")
        if self.noise < 0:
            raise ValueError(f"noise: must be >= 0, got {self.noise}")
