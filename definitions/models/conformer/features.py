"""Log-mel features, shared by the adapter (training data) and the model (inference), so both
always compute exactly the same thing."""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass

import torch
import torchaudio
from torch import nn

FEATURES_VERSION = 1  # bump when the computation below changes: it invalidates feature caches


@dataclass(frozen=True)
class FeatureConfig:
    sample_rate: int = 22050
    n_fft: int = 1024
    hop_length: int = 256
    n_mels: int = 80
    f_min: float = 0.0
    f_max: float = 8000.0

    @classmethod
    def from_params(cls, params: dict) -> FeatureConfig:
        return cls(int(params["sample_rate"]), int(params["n_fft"]), int(params["hop_length"]),
                   int(params["n_mels"]), float(params["f_min"]), float(params["f_max"]))

    def key(self) -> str:
        """Short stable hash of everything that changes the features (names a cache)."""
        blob = json.dumps({**asdict(self), "version": FEATURES_VERSION}, sort_keys=True)
        return hashlib.sha256(blob.encode()).hexdigest()[:12]


class LogMel(nn.Module):
    """``(samples,)`` float waveform at ``sample_rate`` -> ``(frames, n_mels)`` normalized log-mel.

    Each mel band is normalized to zero mean and unit variance over the utterance, which makes
    the features independent of recording level.
    """

    def __init__(self, cfg: FeatureConfig):
        super().__init__()
        self.cfg = cfg
        self.mel = torchaudio.transforms.MelSpectrogram(
            sample_rate=cfg.sample_rate, n_fft=cfg.n_fft, hop_length=cfg.hop_length, n_mels=cfg.n_mels,
            f_min=cfg.f_min, f_max=cfg.f_max, power=2.0, center=True,
        )

    @torch.no_grad()
    def forward(self, waveform: torch.Tensor) -> torch.Tensor:
        waveform = waveform.float()
        if waveform.shape[-1] < self.cfg.n_fft:  # the centered STFT's reflect padding needs n_fft/2 samples
            waveform = torch.nn.functional.pad(waveform, (0, self.cfg.n_fft - waveform.shape[-1]))
        spec = self.mel(waveform).clamp_min(1e-10).log().transpose(-1, -2)  # (frames, n_mels)
        mean = spec.mean(dim=-2, keepdim=True)
        std = spec.std(dim=-2, keepdim=True) if spec.shape[-2] > 1 else torch.ones_like(mean)
        return (spec - mean) / (std + 1e-5)
