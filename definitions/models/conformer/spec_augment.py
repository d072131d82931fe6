"""Feature-space augmentation of a padded training batch: SpecAugment (frequency and time
masking) and VTLP (vocal tract length perturbation, a random warp of the frequency axis).

Both run in the model's ``training_step``, not in the data pipeline: there they draw from the
RNG stream that MLSystem saves with every checkpoint and restores on resume, so a run resumed
mid-epoch augments exactly what the uninterrupted run would have (and they run on the GPU when
there is one).
"""

from __future__ import annotations

import math

import torch


def spec_augment(features: torch.Tensor, lengths: torch.Tensor, freq_masks: int, freq_width: int,
                 time_masks: int, time_width: int) -> torch.Tensor:
    """``(B, T, F)`` features with random bands and spans set to 0 (= the utterance mean).

    Time masks stay inside each utterance and cover at most a fifth of it per mask, so short
    utterances keep their words.
    """
    out = features.clone()
    batch, _, bands = features.shape
    for b in range(batch):
        frames = int(lengths[b])
        for _ in range(freq_masks):
            width = int(torch.randint(0, freq_width + 1, ()))
            start = int(torch.randint(0, max(1, bands - width + 1), ()))
            out[b, :frames, start:start + width] = 0.0
        for _ in range(time_masks):
            width = int(torch.randint(0, min(time_width, frames // 5) + 1, ()))
            start = int(torch.randint(0, max(1, frames - width + 1), ()))
            out[b, start:start + width] = 0.0
    return out


def mel_centers(n_mels: int, f_min: float, f_max: float) -> torch.Tensor:
    """Centre frequencies (Hz) of the HTK mel filterbank that ``torchaudio``'s MelSpectrogram uses."""
    def mel(f: float) -> float:
        return 2595.0 * math.log10(1.0 + f / 700.0)

    points = torch.linspace(mel(f_min), mel(f_max), n_mels + 2, dtype=torch.float64)[1:-1]
    return 700.0 * (10.0 ** (points / 2595.0) - 1.0)


def vtlp_warp(features: torch.Tensor, centers: torch.Tensor, alphas: torch.Tensor,
              f_max: float, boundary: float = 0.8) -> torch.Tensor:
    """``(B, T, F)`` mel features, each utterance's frequency axis warped by its ``alphas[b]``.

    Jaitly & Hinton's piecewise-linear warp: frequency ``f`` moves to ``alpha * f`` up to a knee
    (``boundary * f_max``, scaled so the warp never leaves the band), then linearly back to
    ``f_max``. ``alpha > 1`` moves formants up, like a shorter vocal tract. Each output band
    interpolates the input at the frequency that warps onto its centre; padding stays as it is
    because every frame is warped alike.
    """
    c = centers.to(features.device, torch.float64)
    a = alphas.to(features.device, torch.float64)[:, None]  # (B, 1)
    knee = boundary * f_max * torch.minimum(a, torch.ones_like(a)) / a  # input frequency of the knee
    # Inverse warp: the input frequency that lands on each output centre.
    below = c / a
    above = knee + (c - a * knee) * (f_max - knee) / (f_max - a * knee)
    source = torch.where(c <= a * knee, below, above).clamp(float(c[0]), float(c[-1]))  # (B, F)
    # Fractional band index of each source frequency (centres are increasing).
    hi = torch.searchsorted(c.expand_as(source).contiguous(), source).clamp(1, c.numel() - 1)
    lo = hi - 1
    w = ((source - c[lo]) / (c[hi] - c[lo])).to(features.dtype)  # (B, F)
    frames = features.shape[1]
    lo_x = torch.gather(features, 2, lo[:, None, :].expand(-1, frames, -1))
    hi_x = torch.gather(features, 2, hi[:, None, :].expand(-1, frames, -1))
    return lo_x * (1 - w[:, None, :]) + hi_x * w[:, None, :]


def random_vtlp(features: torch.Tensor, centers: torch.Tensor, f_max: float, spread: float) -> torch.Tensor:
    """:func:`vtlp_warp` with one factor per utterance drawn uniformly from ``1 ± spread``
    (the resumable global RNG); ``spread`` 0 returns ``features`` unchanged."""
    if spread <= 0:
        return features
    alphas = 1.0 + (torch.rand(features.shape[0]) * 2.0 - 1.0) * spread
    return vtlp_warp(features, centers, alphas, f_max)
