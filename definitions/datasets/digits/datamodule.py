"""The `digits` data module: 5x7 bitmap glyphs of 0-9, randomly shifted, thickened and noised.

Generation is deterministic for `data_seed` and takes milliseconds, so nothing is cached on disk.
The adapter's transform turns a raw sample (float32 image HxW in [0, 1], label) into what its
model wants.
"""

from __future__ import annotations

from typing import Any, Callable

import numpy as np
from torch.utils.data import Dataset

from MLSystem.base import BaseDataModule

# 5x7 glyphs, one string of 7 rows of 5 pixels per digit.
GLYPHS = [
    "01110 10001 10011 10101 11001 10001 01110",  # 0
    "00100 01100 00100 00100 00100 00100 01110",  # 1
    "01110 10001 00001 00010 00100 01000 11111",  # 2
    "11111 00010 00100 00010 00001 10001 01110",  # 3
    "00010 00110 01010 10010 11111 00010 00010",  # 4
    "11111 10000 11110 00001 00001 10001 01110",  # 5
    "00110 01000 10000 11110 10001 10001 01110",  # 6
    "11111 00001 00010 00100 01000 01000 01000",  # 7
    "01110 10001 10001 01110 10001 10001 01110",  # 8
    "01110 10001 10001 01111 00001 00010 01100",  # 9
]
NUM_CLASSES = len(GLYPHS)


def render(n: int, size: int, noise: float, max_shift: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """``n`` images (n, size, size) float32 in [0, 1] and their labels."""
    rng = np.random.default_rng(seed)
    glyphs = np.array([[[c == "1" for c in row] for row in g.split()] for g in GLYPHS], dtype=np.float32)
    labels = rng.integers(0, NUM_CLASSES, size=n)
    images = np.zeros((n, size, size), dtype=np.float32)
    top0, left0 = (size - 7) // 2, (size - 5) // 2
    for i, label in enumerate(labels):
        dy, dx = rng.integers(-max_shift, max_shift + 1, size=2)
        top = int(np.clip(top0 + dy, 0, size - 7))
        left = int(np.clip(left0 + dx, 0, size - 5))
        glyph = glyphs[label]
        if rng.random() < 0.5:  # a bolder stroke for half of the samples
            glyph = np.maximum(glyph, np.roll(glyph, 1, axis=1) * (np.arange(5) > 0))
        images[i, top:top + 7, left:left + 5] = glyph * rng.uniform(0.6, 1.0)
    images += rng.normal(0.0, noise, size=images.shape).astype(np.float32)
    return np.clip(images, 0.0, 1.0), labels.astype(np.int64)


class DigitsDataset(Dataset):
    def __init__(self, images: np.ndarray, labels: np.ndarray, transform: Callable[[Any], Any] | None):
        self.images, self.labels, self.transform = images, labels, transform

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, i: int) -> Any:
        sample = (self.images[i], int(self.labels[i]))
        return self.transform(sample) if self.transform else sample


class DigitsDataModule(BaseDataModule):
    num_classes = NUM_CLASSES

    @property
    def image_size(self) -> int:
        return int(self.params["image_size"])

    def setup(self, stage: str | None = None) -> None:
        p = self.params
        if hasattr(self, "train_set"):
            return
        # Train and validation come from different seeds, so they never share an image.
        x, y = render(p["n_train"], p["image_size"], p["noise"], p["max_shift"], p["data_seed"])
        self.train_set = self.limit(DigitsDataset(x, y, self.transform("train")))
        x, y = render(p["n_val"], p["image_size"], p["noise"], p["max_shift"], p["data_seed"] + 1_000_003)
        self.val_set = DigitsDataset(x, y, self.transform("val"))

    def train_dataloader(self):
        return self.train_loader(self.train_set)

    def val_dataloader(self):
        return self.eval_loader(self.val_set)
