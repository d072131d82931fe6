"""Config of the digits -> mlp adapter."""

from dataclasses import dataclass

from MLSystem.base import ConfigBase, param


@dataclass
class DigitsToMLPConfig(ConfigBase):
    center: bool = param(True, "Subtract 0.5 from every pixel")
