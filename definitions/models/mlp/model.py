"""A multi-layer perceptron over flat feature vectors (its adapter flattens whatever the data is)."""

from __future__ import annotations

import torch
from torch import nn

from MLSystem.base import BaseClassifier


class MLP(BaseClassifier):
    def __init__(self, params: dict, input_dim: int, num_classes: int):
        super().__init__(params, input_dim=input_dim, num_classes=num_classes)
        layers, width = [], input_dim
        for _ in range(int(params["layers"])):
            layers += [nn.Linear(width, int(params["hidden"])), nn.ReLU(), nn.Dropout(float(params["dropout"]))]
            width = int(params["hidden"])
        self.net = nn.Sequential(*layers, nn.Linear(width, num_classes))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)
