"""The `ljspeech` data module: LJSpeech-1.1 or any corpus in its layout.

Items are :class:`Utterance` records (id, texts, wav path, length); the audio is read with
``soundfile`` only when asked (:meth:`Utterance.load`), so an adapter that caches features can
skip reading it. Without an adapter transform an item is a dict with the waveform.

Every row is checked once at setup: bad metadata rows, missing or unreadable wavs, a wrong
sample rate and over-long files are skipped with one warning that counts them (or, with
``on_bad_row=error``, fail with all problems listed). Validation is ``val_metadata`` if given,
else a fixed ``val_fraction`` of ``metadata.csv`` drawn by ``seed``. ``engines`` /
``exclude_engines`` keep only the files those synthesizers made (read from the generator's
``utterances.csv``), in training and validation alike: leave-one-engine-out never sees the
left-out engine before its test.
"""

from __future__ import annotations

import logging
import math
import warnings
from collections import Counter
from dataclasses import dataclass, replace
from functools import partial
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np
import soundfile as sf
import torch
from torch.utils.data import Dataset

from definitions.datasets.ljspeech.augment import Augmenter, AugmentConfig, Plan
from definitions.datasets.ljspeech.config import split_list
from definitions.datasets.ljspeech.manifest import engine_filter
from definitions.datasets.ljspeech.metadata import Row, read_metadata
from MLSystem.base import BaseDataModule, ProjectPaths

log = logging.getLogger(__name__)


class CorpusError(ValueError):
    """The corpus folder cannot be used as configured."""


@dataclass(frozen=True)
class Utterance:
    id: str
    text: str
    normalized_text: str
    path: Path
    num_samples: int
    sample_rate: int
    augment: Plan | None = None  # drawn per (seed, epoch, index) for training items; None = the file as is

    @property
    def seconds(self) -> float:
        return self.num_samples / self.sample_rate

    def load(self) -> np.ndarray:
        """float32 mono samples in [-1, 1] (multi-channel files are averaged), augmented when
        the item carries a plan."""
        audio = read_wav(self.path, self.sample_rate)
        if self.augment is None:
            return audio
        return self.augment.apply(audio, self.sample_rate, lambda p: read_wav(p, self.sample_rate))


def read_wav(path: Path, sample_rate: int) -> np.ndarray:
    try:
        audio, rate = sf.read(path, dtype="float32", always_2d=True)
    except (sf.LibsndfileError, RuntimeError, OSError) as exc:
        raise CorpusError(f"{path}: cannot read audio ({exc})") from exc
    if rate != sample_rate:
        raise CorpusError(f"{path}: sample rate {rate} Hz, expected {sample_rate} Hz")
    return audio.mean(axis=1)


class UtteranceDataset(Dataset):
    """Utterances, optionally augmented: with an :class:`Augmenter`, item ``i`` of epoch ``e``
    carries the plan drawn from ``(seed, e, i)`` (the loader calls :meth:`set_epoch`)."""

    def __init__(self, utterances: Sequence[Utterance], transform: Callable[[Utterance], Any] | None,
                 augmenter: Augmenter | None = None):
        self.utterances = list(utterances)
        self.transform = transform
        self.augmenter = augmenter
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        """Called by MLSystem's resumable loader before each epoch's iterator (and its workers) starts."""
        self.epoch = int(epoch)

    @property
    def lengths(self) -> list[int]:
        return [u.num_samples for u in self.utterances]

    def __len__(self) -> int:
        return len(self.utterances)

    def __getitem__(self, i: int) -> Any:
        utt = self.utterances[i]
        if self.augmenter is not None:
            plan = self.augmenter.plan(self.epoch, i)
            if not plan.identity:
                utt = replace(utt, augment=plan)
        if self.transform is not None:
            return self.transform(utt)
        return {"id": utt.id, "text": utt.normalized_text, "waveform": utt.load(), "sample_rate": utt.sample_rate}


def corpus_root(path: str) -> Path:
    """``path`` as given if absolute, else relative to the project root."""
    p = Path(path).expanduser()
    return p if p.is_absolute() else ProjectPaths.discover().root / p


def load_utterances(root: Path, metadata: str, sample_rate: int, max_seconds: float,
                    on_bad_row: str = "skip") -> list[Utterance]:
    """Rows of ``root/metadata`` whose wavs exist, read and match ``sample_rate``."""
    meta = read_metadata(root / metadata)
    problems = list(meta.problems)
    kinds: Counter[str] = Counter("bad row" for _ in meta.problems)
    out = []
    for row in meta.rows:
        utt, why = _check_wav(root, row, sample_rate, max_seconds)
        if utt is None:
            problems.append(f"{row.id}: {why}")
            kinds[why.split(" (")[0].split(":")[0]] += 1
        else:
            out.append(utt)
    if problems:
        summary = (f"{root / metadata}: {'skipped' if on_bad_row == 'skip' else 'found'} {len(problems)} bad "
                   f"row(s) of {len(meta.rows) + len(meta.problems)} ("
                   + ", ".join(f"{n} {k}" for k, n in kinds.most_common()) + "); first: " + "; ".join(problems[:3]))
        if on_bad_row == "error":
            raise CorpusError(summary + " -- fix the files or set on_bad_row=skip")
        warnings.warn(summary, stacklevel=2)
        log.warning("%s", summary)
    if not out:
        raise CorpusError(f"{root / metadata}: no usable utterances"
                          + (f" ({problems[0]})" if problems else " (the file is empty)"))
    return out


def _check_wav(root: Path, row: Row, sample_rate: int, max_seconds: float) -> tuple[Utterance | None, str]:
    path = root / "wavs" / f"{row.id}.wav"
    if not path.is_file():
        return None, f"missing wav ({path})"
    try:
        info = sf.info(path)
    except (sf.LibsndfileError, RuntimeError) as exc:
        return None, f"unreadable wav ({path}: {exc})"
    if info.samplerate != sample_rate:
        return None, f"wrong sample rate ({info.samplerate} Hz, expected {sample_rate})"
    if info.frames == 0:
        return None, "empty wav"
    if info.frames > max_seconds * sample_rate:
        return None, f"too long ({info.frames / sample_rate:.1f} s > max_seconds={max_seconds})"
    return Utterance(row.id, row.text, row.normalized_text, path, int(info.frames), sample_rate), ""


def split_train_val(utts: list[Utterance], fraction: float, seed: int) -> tuple[list[Utterance], list[Utterance]]:
    """A fixed random ``fraction`` of ``utts`` for validation (at least one), drawn by ``seed``."""
    n_val = min(len(utts) - 1, max(1, math.ceil(len(utts) * fraction)))
    if n_val < 1:
        raise CorpusError(f"{len(utts)} utterance(s): too few to hold out a validation set")
    order = torch.randperm(len(utts), generator=torch.Generator().manual_seed(seed)).tolist()
    val = set(order[:n_val])
    return [u for i, u in enumerate(utts) if i not in val], [u for i, u in enumerate(utts) if i in val]


class LJSpeechDataModule(BaseDataModule):
    def setup(self, stage: str | None = None) -> None:
        if hasattr(self, "train_set"):
            return
        p = self.params
        root = corpus_root(p["path"])
        if not root.is_dir():
            raise CorpusError(f"path: corpus folder {root} does not exist "
                              "(make one: python -m definitions.tools.ljspeech_synth --out data/ljspeech_synth)")
        load = partial(load_utterances, root, sample_rate=int(p["sample_rate"]), max_seconds=float(p["max_seconds"]),
                       on_bad_row=p["on_bad_row"])
        keep = None
        if split_list(p.get("engines", "")) or split_list(p.get("exclude_engines", "")):
            try:
                keep = engine_filter(root, split_list(p.get("engines", "")), split_list(p.get("exclude_engines", "")))
            except (FileNotFoundError, ValueError) as exc:
                raise CorpusError(str(exc)) from exc

        def load_kept(name: str) -> list[Utterance]:
            utts = load(name)
            if keep is None:
                return utts
            kept = [u for u in utts if keep.get(u.id, False)]
            if not kept:
                raise CorpusError(f"{root / name}: no utterance left after engines={p.get('engines')!r} "
                                  f"exclude_engines={p.get('exclude_engines')!r}")
            return kept

        utts = load_kept(p["metadata"])
        if p["val_metadata"]:
            train, val = utts, load_kept(p["val_metadata"])
        else:
            train, val = split_train_val(utts, float(p["val_fraction"]), int(p["seed"]))
        limited = self.limit(UtteranceDataset(train, None))
        if hasattr(limited, "indices"):  # light mode: the same subset BaseDataModule.limit picks
            train = [train[i] for i in limited.indices]
        config = AugmentConfig.from_params(p)
        augmenter = Augmenter(config, int(p["seed"]), [u.path for u in train]) if config else None
        self.train_set = UtteranceDataset(train, self.transform("train"), augmenter)
        self.val_set = UtteranceDataset(val, self.transform("val"))

    def train_dataloader(self):
        return self.train_loader(self.train_set, lengths=self.train_set.lengths)

    def val_dataloader(self):
        return self.eval_loader(self.val_set, lengths=self.val_set.lengths)
