"""text -> transformer: token blocks go in as they are; the model learns the vocabulary."""

from __future__ import annotations

from typing import Any

from MLSystem.base import BaseAdapter


class TextToTransformer(BaseAdapter):
    def build_args(self, datamodule) -> dict[str, Any]:
        # build_args runs before Lightning calls setup(): read what is needed from the data
        # module directly (its vocabulary is built from the corpus on first use).
        return {"vocab": datamodule.vocab}
