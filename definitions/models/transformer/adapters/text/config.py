"""Config of the text -> transformer adapter (it has no settings of its own)."""

from dataclasses import dataclass

from MLSystem.base import ConfigBase


@dataclass
class TextToTransformerConfig(ConfigBase):
    pass
