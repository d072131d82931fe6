"""Config of the `ljspeech` dataset: LJSpeech-1.1 or any folder in its layout (e.g. the synthetic one).

    python -m definitions.tools.ljspeech_synth --out data/ljspeech_synth --hours 2
    python -m MLSystem.execute_train dataset=ljspeech model=conformer path=data/ljspeech_synth
    python -m MLSystem.execute_train dataset=ljspeech model=conformer exclude_engines=festival  # leave one out
"""

from dataclasses import dataclass

from MLSystem.base import ConfigBase, param


def split_list(value: str) -> list[str]:
    """``"espeak, flite"`` -> ``["espeak", "flite"]``."""
    return [v.strip() for v in str(value).split(",") if v.strip()]


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

    def __post_init__(self) -> None:
        problems = []
        if not 0.0 < self.val_fraction < 1.0:
            problems.append(f"val_fraction: must be in (0, 1), got {self.val_fraction}")
        if self.sample_rate < 1:
            problems.append(f"sample_rate: must be >= 1 Hz, got {self.sample_rate}")
        if set(split_list(self.engines)) & set(split_list(self.exclude_engines)):
            problems.append(f"engines / exclude_engines: {self.engines!r} and {self.exclude_engines!r} overlap")
        if problems:
            raise ValueError("; ".join(problems))
