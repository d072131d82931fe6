"""Config of the ljspeech -> conformer adapter: the log-mel features the model sees, text targets
and the feature cache. The mel settings live here (not in the dataset): only this adapter turns
audio into features; the dataset only promises wavs at its ``sample_rate``."""

from dataclasses import dataclass
from typing import Any

from definitions.models.conformer.vocab import DEFAULT_CHARS
from MLSystem.base import ConfigBase, param


@dataclass
class LJSpeechToConformerConfig(ConfigBase):
    n_fft: int = param(1024, "FFT size of the spectrogram")
    hop_length: int = param(256, "Hop between spectrogram frames (samples)")
    n_mels: int = param(80, "Mel bands")
    f_min: float = param(0.0, "Lowest mel frequency (Hz)")
    f_max: float = param(8000.0, "Highest mel frequency (Hz)")
    vocabulary: str = param(DEFAULT_CHARS, "Characters the model writes (CTC blank is added); others are dropped")
    lm_text: str = param(
        "lm_text.txt", "Sentences (one a line, inside the corpus folder) added to the training text the decoder's "
        "LM is estimated from; a missing file is skipped ('' = training sentences only)", identity=False,
    )
    feature_cache: str = param(
        "output/cache/features", "Folder of cached log-mel features, keyed by the feature config ('' = off)",
        identity=False,
    )

    def __post_init__(self) -> None:
        problems = []
        if self.hop_length < 1 or self.n_fft < self.hop_length:
            problems.append(f"hop_length: must be in [1, n_fft={self.n_fft}], got {self.hop_length}")
        if self.n_mels < 1:
            problems.append(f"n_mels: must be >= 1, got {self.n_mels}")
        if problems:
            raise ValueError("; ".join(problems))

    def check_merged(self, params: dict[str, Any]) -> None:
        # The mel range must fit the dataset's audio (Nyquist: half its sample rate).
        nyquist = params["sample_rate"] / 2
        if self.f_max <= self.f_min or self.f_max > nyquist:
            raise ValueError(f"f_max: must be in ({self.f_min}, sample_rate/2={nyquist}], got {self.f_max}")
