"""Inference test of a trained speech model: checked audio in, transcript and real-time factor out.

A model takes part when its class has ``inference(waveform: np.ndarray, sample_rate: int) -> str``
(float32 mono). Loading goes through ``MLSystem.loader.load_experiment``; the last few loaded
models are kept, so a second file on the same checkpoint does not reload it.
"""

from __future__ import annotations

import ast
import io
import threading
import time
from collections import OrderedDict
from dataclasses import asdict, dataclass
from pathlib import PurePath
from typing import Any

from MLSystem.errors import BadInputError, MLSystemError
from MLSystem.loader import load_experiment
from MLSystem.paths import ProjectPaths
from MLSystem.registry import Registry

MAX_UPLOAD_BYTES = 20 * 1024 * 1024
AUDIO_SUFFIXES = (".wav", ".flac", ".ogg")
MAX_SECONDS = 600.0


class InferenceError(BadInputError):
    """A file or model the inference test cannot use; the message says why."""


@dataclass
class Transcript:
    text: str
    audio_seconds: float
    elapsed_seconds: float
    rtf: float  # inference time / audio duration (< 1 is faster than real time)
    sample_rate: int
    experiment_id: str
    checkpoint: str

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def check_upload(filename: str, size: int) -> None:
    """Reject by name and size before reading the audio."""
    suffix = PurePath(filename or "").suffix.lower()
    if suffix not in AUDIO_SUFFIXES:
        raise InferenceError(f"{filename!r}: unsupported format; upload {', '.join(AUDIO_SUFFIXES)}")
    if size > MAX_UPLOAD_BYTES:
        raise InferenceError(f"{filename!r}: {size / 1e6:.1f} MB is over the {MAX_UPLOAD_BYTES / 1e6:.0f} MB limit")
    if size == 0:
        raise InferenceError(f"{filename!r}: empty file")


def decode_audio(data: bytes, filename: str):
    """``(waveform float32 mono, sample_rate)``; a clear error for anything soundfile cannot read."""
    import numpy as np
    import soundfile as sf

    check_upload(filename, len(data))
    try:
        audio, rate = sf.read(io.BytesIO(data), dtype="float32", always_2d=True)
    except Exception as exc:  # soundfile raises several types for bad data
        raise InferenceError(f"{filename!r}: not readable audio ({str(exc).splitlines()[0]})") from None
    if audio.shape[0] == 0:
        raise InferenceError(f"{filename!r}: contains no samples")
    if audio.shape[0] / rate > MAX_SECONDS:
        raise InferenceError(f"{filename!r}: {audio.shape[0] / rate:.0f} s is longer than {MAX_SECONDS:.0f} s")
    return np.ascontiguousarray(audio.mean(axis=1), dtype=np.float32), int(rate)


# Bases that give no ``inference`` method: a class with only these bases has one iff it defines it.
FRAMEWORK_BASES = frozenset({"BaseModel", "BaseClassifier", "WrappedModel", "LightningModule", "Module", "object"})


def declares_inference(entry) -> bool | None:
    """Whether a model class has ``inference``, read from its source file (no import: importing a
    model costs torch + Lightning, seconds); None when only importing it can tell (other bases)."""
    try:
        tree = ast.parse((entry.folder / "model.py").read_text(encoding="utf-8"))
    except (OSError, SyntaxError, ValueError):
        return None
    for node in tree.body:
        if isinstance(node, ast.ClassDef) and node.name == entry.class_name:
            for item in node.body:
                if isinstance(item, (ast.FunctionDef, ast.AsyncFunctionDef)) and item.name == "inference":
                    return True
                targets = item.targets if isinstance(item, ast.Assign) else \
                    [item.target] if isinstance(item, ast.AnnAssign) else []
                if any(isinstance(t, ast.Name) and t.id == "inference" for t in targets):
                    return True
            bases = {b.attr if isinstance(b, ast.Attribute) else getattr(b, "id", None) for b in node.bases}
            return False if bases <= FRAMEWORK_BASES else None
    return None  # the class comes from another module


def find_inference_models(paths: ProjectPaths, *, import_code: bool = True) -> tuple[list[str], list[str]]:
    """``(models with an inference method, models not decided)``. Decided from the source where it
    can be; the rest are imported when ``import_code`` (blocking: call off the UI loop), else
    returned as undecided."""
    registry = Registry.load(paths)
    found, undecided = [], []
    for name, entry in sorted(registry.models.items()):
        has = declares_inference(entry)
        if has is None and import_code:
            try:
                has = callable(getattr(entry.impl_class(), "inference", None))
            except MLSystemError:
                continue  # a broken definition is reported by training, not here
        if has is None:
            undecided.append(name)
        elif has:
            found.append(name)
    return found, undecided


def inference_models(paths: ProjectPaths) -> list[str]:
    """Registered models whose class has an ``inference`` method (may import model code: call off the UI loop)."""
    return find_inference_models(paths)[0]


class ModelCache:
    """The last ``size`` models loaded by (experiment, checkpoint); one load at a time."""

    def __init__(self, paths: ProjectPaths, size: int = 2):
        self.paths = paths
        self.size = size
        self._models: OrderedDict[tuple[str, str], Any] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, experiment_id: str, checkpoint: str | None) -> Any:
        checkpoint = None if checkpoint in (None, "", "last") else checkpoint
        key = (experiment_id, checkpoint or "last")
        with self._lock:
            if key in self._models:
                self._models.move_to_end(key)
                return self._models[key]
            loaded = load_experiment(experiment_id, checkpoint=checkpoint, paths=self.paths)
            if not callable(getattr(loaded.model, "inference", None)):
                raise InferenceError(f"experiment {experiment_id}: model {type(loaded.model).__name__} "
                                     "has no inference(waveform, sample_rate) method")
            self._models[key] = loaded
            while len(self._models) > self.size:
                self._models.popitem(last=False)
            return loaded

    def transcribe(self, experiment_id: str, checkpoint: str | None, data: bytes, filename: str) -> Transcript:
        """Decode, run the model and time it (blocking: call from a worker thread)."""
        waveform, rate = decode_audio(data, filename)
        loaded = self.get(experiment_id, checkpoint)
        t0 = time.perf_counter()
        text = loaded.model.inference(waveform, rate)
        elapsed = time.perf_counter() - t0
        seconds = len(waveform) / rate
        return Transcript(str(text), round(seconds, 3), round(elapsed, 4), round(elapsed / seconds, 4), rate,
                          loaded.experiment_id, checkpoint or "last")
