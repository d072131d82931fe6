"""ljspeech -> conformer: utterances become normalized log-mel frames (cached on disk) and
character ids; batches are padded dicts.

The data module hands over :class:`~definitions.datasets.ljspeech.datamodule.Utterance`
records; the audio is only read when its features are not cached yet.
"""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch
from torch.nn.utils.rnn import pad_sequence

from definitions.datasets.ljspeech.datamodule import corpus_root
from definitions.models.conformer.adapters.ljspeech.feature_cache import FeatureCache
from definitions.models.conformer.features import FeatureConfig, LogMel
from definitions.models.conformer.vocab import CharVocab
from MLSystem.base import BaseAdapter, ProjectPaths


class LJSpeechToConformer(BaseAdapter):
    def __init__(self, params: dict[str, Any]):
        super().__init__(params)
        self.vocab = CharVocab(params["vocabulary"])
        self.feature_config = FeatureConfig.from_params(params)
        self._featurizer: LogMel | None = None
        self._caches: dict[Path, FeatureCache] = {}

    def build_args(self, datamodule) -> dict[str, Any]:
        # Plain values only: they are stored with the checkpoint and rebuild the model anywhere.
        args = {"vocab": self.vocab.chars, "feature_config": asdict(self.feature_config)}
        # Extra LM text of the corpus (the generator's lm_text.txt): the model reads it once and
        # keeps it in its checkpoints, so the path only matters while training.
        name = self.params.get("lm_text", "")
        lm_file = corpus_root(datamodule.params["path"]) / name if name and datamodule is not None else None
        if lm_file is not None and lm_file.is_file():
            args["lm_text_path"] = str(lm_file)
        return args

    # -- per utterance -------------------------------------------------------------------------
    def features(self, utt) -> np.ndarray:
        """``(frames, n_mels)`` log-mel of an utterance, from the cache when possible."""
        if self._featurizer is None:
            self._featurizer = LogMel(self.feature_config)

        def compute() -> np.ndarray:
            return self._featurizer(torch.from_numpy(utt.load())).numpy()

        # Augmented audio differs every epoch: only the file as is can be cached.
        cache = self.cache_for(utt.path.parent.parent) if getattr(utt, "augment", None) is None else None
        return cache.get_or_compute(utt.id, utt.path, compute) if cache else compute()

    def cache_for(self, corpus: Path) -> FeatureCache | None:
        """The feature cache of a corpus folder (its ``hits``/``misses`` count this process's reads),
        or None when ``feature_cache`` is off."""
        folder = self.params["feature_cache"]
        if not folder:
            return None
        if corpus not in self._caches:
            root = Path(folder) if Path(folder).is_absolute() else ProjectPaths.discover().root / folder
            self._caches[corpus] = FeatureCache(root, self.feature_config.key(), corpus)
        return self._caches[corpus]

    def get_transform(self, split: str) -> Callable[[Any], dict[str, Any]]:
        # The same for every split: SpecAugment is applied by the model's training_step.
        def transform(utt) -> dict[str, Any]:
            text = self.vocab.normalize(utt.normalized_text)
            return {"id": utt.id, "text": text, "features": torch.from_numpy(self.features(utt)).float(),
                    "targets": torch.tensor(self.vocab.encode(text), dtype=torch.long)}

        return transform

    # -- per batch -----------------------------------------------------------------------------
    def collate_fn(self, split: str) -> Callable[[list], dict[str, Any]]:
        return collate


def collate(items: list[dict[str, Any]]) -> dict[str, Any]:
    """Pad features (B, T, n_mels) and targets (B, S); keep lengths, texts and ids."""
    return {
        "features": pad_sequence([i["features"] for i in items], batch_first=True),
        "feature_lengths": torch.tensor([len(i["features"]) for i in items], dtype=torch.long),
        "targets": pad_sequence([i["targets"] for i in items], batch_first=True),
        "target_lengths": torch.tensor([len(i["targets"]) for i in items], dtype=torch.long),
        "texts": [i["text"] for i in items],
        "ids": [i["id"] for i in items],
    }
