"""SpecAugment (frequency and time masking) on a padded batch of features.

It runs in the model's ``training_step``, not in the data pipeline: there it draws from the
RNG stream that MLSystem saves with every checkpoint and restores on resume, so a run resumed
mid-epoch masks exactly what the uninterrupted run would have (and it runs on the GPU when
there is one).
"""

from __future__ import annotations

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
