"""Config of the ljspeech -> conformer adapter: text targets and the feature cache."""

from dataclasses import dataclass

from definitions.models.conformer.vocab import DEFAULT_CHARS
from MLSystem.base import ConfigBase, param


@dataclass
class LJSpeechToConformerConfig(ConfigBase):
    vocabulary: str = param(DEFAULT_CHARS, "Characters the model writes (CTC blank is added); others are dropped")
    feature_cache: str = param(
        "output/cache/features", "Folder of cached log-mel features, keyed by the feature config ('' = off)",
        identity=False,
    )
