"""Config of the digits -> cnn adapter."""

from dataclasses import dataclass

from MLSystem.base import ConfigBase, param


@dataclass
class DigitsToCNNConfig(ConfigBase):
    normalize: bool = param(True, "Scale pixels from [0, 1] to [-1, 1]")
