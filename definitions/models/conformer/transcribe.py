"""Transcribe audio files with a trained experiment and print the real-time factor.

    python -m definitions.models.conformer.transcribe 3f9c1a some.wav other.flac [--checkpoint best]
    python -m definitions.models.conformer.transcribe path/to/best.ckpt some.wav   # a checkpoint file alone

RTF = processing seconds / audio seconds, measured from reading the file to the decoded text
(model loading excluded). Runs on the CPU, whatever device trained the model.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np


class InputFileError(ValueError):
    """A missing or unreadable input file (audio or checkpoint)."""


def read_audio(path: Path) -> tuple[np.ndarray, int]:
    """float32 mono samples and the sample rate; a clear error for missing or corrupt files."""
    import soundfile as sf

    if not path.is_file():
        raise InputFileError(f"{path}: no such file")
    try:
        audio, rate = sf.read(path, dtype="float32", always_2d=True)
    except (sf.LibsndfileError, RuntimeError) as exc:
        raise InputFileError(f"{path}: not a readable audio file ({exc})") from None
    return audio.mean(axis=1), int(rate)


def transcribe_file(model, path: Path) -> tuple[str, float, float]:
    """``(text, audio seconds, processing seconds)`` for one file."""
    t0 = time.perf_counter()
    audio, rate = read_audio(path)
    text = model.inference(audio, rate)
    return text, len(audio) / rate, time.perf_counter() - t0


def load_model(ref: str, checkpoint: str | None):
    """The model of an experiment (ID or prefix) and checkpoint name, or of a ``.ckpt`` file (CPU, eval)."""
    path = Path(ref)
    if path.suffix == ".ckpt":
        if not path.is_file():
            raise InputFileError(f"{path}: no such checkpoint file")
        from definitions.models.conformer.model import ConformerCTC

        # The checkpoint carries the params and build args (vocabulary, feature settings).
        return ConformerCTC.load_from_checkpoint(path, map_location="cpu").eval()
    from MLSystem.base import load_experiment

    return load_experiment(ref, checkpoint=checkpoint).model


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("experiment", help="experiment ID or unique prefix, or a .ckpt file")
    ap.add_argument("files", nargs="+", type=Path, help="audio files (wav, flac, ogg; any sample rate)")
    ap.add_argument("--checkpoint", default=None, help="checkpoint name (default: last; e.g. best, epoch-0010)")
    ap.add_argument("--threads", type=int, default=0, help="CPU threads for torch (0 = torch's default)")
    args = ap.parse_args(argv)

    import torch

    from MLSystem.base import MLSystemError

    if args.threads:
        torch.set_num_threads(args.threads)
    try:
        model = load_model(args.experiment, args.checkpoint)
    except (MLSystemError, InputFileError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if not hasattr(model, "inference"):
        print(f"error: experiment {args.experiment}: its model has no inference(waveform, sample_rate)", file=sys.stderr)
        return 2
    failed = 0
    for path in args.files:
        try:
            text, audio_s, proc_s = transcribe_file(model, path)
        except InputFileError as exc:
            print(f"error: {exc}", file=sys.stderr)
            failed += 1
            continue
        rtf = proc_s / audio_s if audio_s > 0 else float("nan")
        print(f"{path}: {text}")
        print(f"  {audio_s:.2f} s audio in {proc_s:.3f} s, RTF {rtf:.4f}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
