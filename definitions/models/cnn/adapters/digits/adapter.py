"""digits -> cnn: images become (1, H, W) tensors; the CNN learns the image size and classes."""

from __future__ import annotations

from typing import Any

import torch

from MLSystem.base import BaseAdapter


class DigitsToCNN(BaseAdapter):
    def get_transform(self, split: str):
        normalize = bool(self.params["normalize"])

        def to_image(sample: tuple[Any, int]) -> tuple[torch.Tensor, int]:
            image, label = sample
            x = torch.from_numpy(image).unsqueeze(0)
            return (x * 2 - 1 if normalize else x), label

        return to_image

    def build_args(self, datamodule) -> dict[str, Any]:
        return {"in_channels": 1, "image_size": datamodule.image_size, "num_classes": datamodule.num_classes}
