"""A small CNN classifier. Knows nothing about datasets: its adapter supplies the input shape."""

from __future__ import annotations

import torch
from torch import nn

from MLSystem.base import BaseClassifier


class CNN(BaseClassifier):
    def __init__(self, params: dict, in_channels: int, image_size: int, num_classes: int):
        super().__init__(params, in_channels=in_channels, image_size=image_size, num_classes=num_classes)
        c, h = int(params["channels"]), int(params["hidden"])
        self.features = nn.Sequential(
            nn.Conv2d(in_channels, c, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(c, 2 * c, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
        )
        side = image_size // 4
        self.head = nn.Sequential(
            nn.Flatten(), nn.Linear(2 * c * side * side, h), nn.ReLU(),
            nn.Dropout(float(params["dropout"])), nn.Linear(h, num_classes),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x))
