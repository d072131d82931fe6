"""On-disk cache of per-utterance features, so later epochs (and later runs) skip the audio.

Layout: ``{folder}/{feature key}/{utterance id}-{wav size}-{wav mtime}.npy`` (float16). The
feature key hashes the feature config and the corpus folder, and the wav's size and mtime are
in the file name, so changed settings or a regenerated corpus never read stale features.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
from pathlib import Path
from typing import Callable

import numpy as np


class FeatureCache:
    def __init__(self, folder: Path, feature_key: str, corpus: Path):
        corpus_key = hashlib.sha256(str(corpus.resolve()).encode()).hexdigest()[:8]
        self.dir = folder / f"{feature_key}-{corpus_key}"
        self.dir.mkdir(parents=True, exist_ok=True)
        self.hits = self.misses = 0

    def _file(self, uid: str, wav: Path) -> Path:
        st = wav.stat()
        return self.dir / f"{uid}-{st.st_size}-{st.st_mtime_ns}.npy"

    def get_or_compute(self, uid: str, wav: Path, compute: Callable[[], np.ndarray]) -> np.ndarray:
        path = self._file(uid, wav)
        # Not cached yet, or a file cut short by a kill: compute it again.
        with contextlib.suppress(FileNotFoundError, ValueError, OSError):
            out = np.load(path)
            self.hits += 1
            return out
        self.misses += 1
        feats = compute().astype(np.float16)
        tmp = path.with_suffix(f".{os.getpid()}.tmp")
        with open(tmp, "wb") as fh:
            np.save(fh, feats)
        os.replace(tmp, path)  # atomic: concurrent workers never see half a file
        return feats
