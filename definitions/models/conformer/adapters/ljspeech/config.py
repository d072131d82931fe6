"""Config of the ljspeech -> conformer adapter: text targets, SpecAugment, feature cache."""

from dataclasses import dataclass

from definitions.models.conformer.vocab import DEFAULT_CHARS
from MLSystem.utils.config_base import ConfigBase, param


@dataclass
class LJSpeechToConformerConfig(ConfigBase):
    vocabulary: str = param(DEFAULT_CHARS, "Characters the model writes (CTC blank is added); others are dropped")
    freq_masks: int = param(2, "SpecAugment: frequency masks per training utterance")
    freq_mask_width: int = param(12, "SpecAugment: widest frequency mask (mel bands)")
    time_masks: int = param(2, "SpecAugment: time masks per training utterance")
    time_mask_width: int = param(20, "SpecAugment: widest time mask (frames)")
    feature_cache: str = param(
        "output/cache/features", "Folder of cached log-mel features, keyed by the feature config ('' = off)",
        identity=False,
    )

    def __post_init__(self) -> None:
        if min(self.freq_masks, self.freq_mask_width, self.time_masks, self.time_mask_width) < 0:
            raise ValueError("freq_masks/freq_mask_width/time_masks/time_mask_width: must be >= 0")
