"""Config of the `ljspeech` dataset: LJSpeech-1.1 or any folder in its layout (e.g. the synthetic one).

    python -m definitions.tools.ljspeech_synth --out data/ljspeech_synth --hours 4
    python -m MLSystem.execute_train dataset=ljspeech model=conformer path=data/ljspeech_synth
    python -m MLSystem.execute_train dataset=ljspeech model=conformer exclude_engines=festival  # leave one out
"""

from dataclasses import dataclass

from MLSystem.base import ConfigBase, param


def split_list(value: str) -> list[str]:
    """``"espeak, flite"`` -> ``["espeak", "flite"]``."""
    return [v.strip() for v in str(value).split(",") if v.strip()]


def parse_speeds(text: str) -> tuple[float, ...]:
    """``"0.9,1.0,1.1"`` -> ``(0.9, 1.0, 1.1)``; ValueError naming the field otherwise."""
    try:
        speeds = tuple(float(s) for s in str(text).split(",") if s.strip())
    except ValueError:
        raise ValueError(f"augment_speeds: expected comma-separated factors like '0.9,1.0,1.1', got {text!r}") from None
    if not speeds or any(not 0.5 <= s <= 2.0 for s in speeds):
        raise ValueError(f"augment_speeds: factors must be in [0.5, 2.0], got {text!r}")
    return speeds


@dataclass
class LJSpeechConfig(ConfigBase):
    path: str = param("data/ljspeech_synth", "Corpus folder with metadata.csv and wavs/ (relative: to the project root)")
    metadata: str = param("metadata.csv", "Metadata file inside `path` (id|text|normalized_text, no header)")
    val_metadata: str = param("", "Validation metadata file inside `path`; empty = split metadata.csv by seed")
    val_fraction: float = param(0.05, "Share of metadata.csv held out for validation when there is no val_metadata")
    sample_rate: int = param(22050, "Expected sample rate of every wav (Hz)")
    max_seconds: float = param(20.0, "Skip utterances longer than this (seconds)")
    engines: str = param("", "Comma list of synthesizers to keep (e.g. espeak,flite; needs utterances.csv); empty = all")
    exclude_engines: str = param("", "Comma list of synthesizers to drop, e.g. festival for leave-one-engine-out")
    on_bad_row: str = param(
        "skip", "Bad metadata rows / missing, unreadable or wrong-rate wavs: skip with a warning, or fail",
        choices=("skip", "error"),
    )
    # Waveform augmentation of the training split (augment.py); validation audio stays as is.
    augment: bool = param(True, "Augment training audio: speed, room reverb, noise, telephone band (off = files as is)")
    augment_speeds: str = param("0.9,1.0,1.1", "Speed-perturbation factors, one drawn per utterance (Kaldi recipe)")
    augment_reverb_prob: float = param(0.3, "Share of training utterances in a simulated room (pyroomacoustics)")
    augment_noise_prob: float = param(0.4, "Share with added white / pink / brown / babble noise")
    augment_snr_db_min: float = param(5.0, "Lowest signal-to-noise ratio of added noise (dB)")
    augment_snr_db_max: float = param(30.0, "Highest signal-to-noise ratio of added noise (dB)")
    augment_telephone_prob: float = param(0.1, "Share through a telephone channel (8 kHz, 300-3400 Hz, mu-law)")

    def __post_init__(self) -> None:
        problems = []
        if not 0.0 < self.val_fraction < 1.0:
            problems.append(f"val_fraction: must be in (0, 1), got {self.val_fraction}")
        if self.sample_rate < 1:
            problems.append(f"sample_rate: must be >= 1 Hz, got {self.sample_rate}")
        if set(split_list(self.engines)) & set(split_list(self.exclude_engines)):
            problems.append(f"engines / exclude_engines: {self.engines!r} and {self.exclude_engines!r} overlap")
        for name in ("augment_reverb_prob", "augment_noise_prob", "augment_telephone_prob"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                problems.append(f"{name}: must be in [0, 1], got {getattr(self, name)}")
        if self.augment_snr_db_min > self.augment_snr_db_max:
            problems.append(f"augment_snr_db_min: must be <= augment_snr_db_max={self.augment_snr_db_max}, "
                            f"got {self.augment_snr_db_min}")
        try:
            parse_speeds(self.augment_speeds)
        except ValueError as exc:
            problems.append(str(exc))
        if problems:
            raise ValueError("; ".join(problems))
