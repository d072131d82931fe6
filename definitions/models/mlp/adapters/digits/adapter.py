"""digits -> mlp: images become flat vectors; the MLP learns the input width and classes."""

from __future__ import annotations

from typing import Any

import torch

from MLSystem.base import BaseAdapter


class DigitsToMLP(BaseAdapter):
    def get_transform(self, split: str):
        shift = 0.5 if self.params["center"] else 0.0

        def flatten(sample: tuple[Any, int]) -> tuple[torch.Tensor, int]:
            image, label = sample
            return torch.from_numpy(image).reshape(-1) - shift, label

        return flatten

    def build_args(self, datamodule) -> dict[str, Any]:
        return {"input_dim": datamodule.image_size ** 2, "num_classes": datamodule.num_classes}
