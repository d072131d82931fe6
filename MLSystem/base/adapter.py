"""``BaseAdapter``: the bridge between a Dataset and a Model.

A Model never imports a Dataset. The adapter gives the data module its transform (dependency
injection) and gives the model its build arguments (input size, number of classes, ...).
"""

from __future__ import annotations

from typing import Any, Callable


class BaseAdapter:
    """Subclass in ``definitions/models/{model}/adapters/{name}/adapter.py``."""

    def __init__(self, params: dict[str, Any]):
        self.params = params

    def get_transform(self, split: str) -> Callable[[Any], Any] | None:
        """Per-sample transform the data module applies for ``split`` ("train", "val", ...)."""
        return None

    def collate_fn(self, split: str) -> Callable[[list], Any] | None:
        """Batch collation for ``split``; None uses PyTorch's default."""
        return None

    def build_args(self, datamodule: Any) -> dict[str, Any]:
        """Keyword arguments for the model's constructor, derived from the data (plain values only)."""
        return {}
