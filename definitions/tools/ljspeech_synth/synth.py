"""Offline speech corpus in the exact LJSpeech layout, spoken by espeak-ng (no download).

    python -m definitions.tools.ljspeech_synth --out data/ljspeech_synth --hours 2 --seed 0

Writes::

    metadata.csv             id|text|normalized_text   training pool (train voices, train sentences)
    heldout_sentences.csv    same format: sentences never in metadata.csv, train voices
    heldout_voice.csv        same format: unseen sentences spoken by the held-out voice variant
    utterances.csv           id|voice|rate_wpm|pitch|range|gain|snr_db   how each file was made
    synth_info.json          settings and per-split counts / hours
    wavs/{id}.wav            22050 Hz mono 16-bit PCM

``text`` has digits, money, times and punctuation; ``normalized_text`` is what is spoken
(numbers spelled out), as in LJSpeech. The output depends only on the arguments: each chunk
of utterances is synthesized in a fresh process, because espeak-ng carries hidden state
(pitch flutter) from one utterance to the next, so results must not depend on which worker
ran what.
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import json
import multiprocessing as mp
import os
import random
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from definitions.tools.ljspeech_synth.sentences import unique_sentences

SAMPLE_RATE = 22050
# Training voices: espeak-ng languages x variants. The held-out variant is never trained on.
TRAIN_VOICES = ("en-us", "en", "en-us+m1", "en-us+m2", "en-us+m3", "en-us+m4", "en-us+f1", "en-us+f2",
                "en+m3", "en+m6", "en+f1", "en+f3")
HELDOUT_VOICE = "en-us+m5"
CHUNK = 48  # utterances per fresh worker process
SPLITS = {"train": ("metadata.csv", "SY"), "heldout_sentences": ("heldout_sentences.csv", "HS"),
          "heldout_voice": ("heldout_voice.csv", "HV")}


@dataclass(frozen=True)
class Utterance:
    id: str
    text: str
    normalized_text: str
    voice: str
    rate_wpm: int
    pitch: int
    range: int
    gain: float
    snr_db: float  # 0 = no added noise


def plan_utterances(split: str, sentences: list[tuple[str, str]], voices: tuple[str, ...], seed: int,
                    noise_prob: float) -> list[Utterance]:
    """Voice and prosody of each sentence, drawn from ``(seed, split, index)``."""
    prefix = SPLITS[split][1]
    out = []
    for i, (text, normalized) in enumerate(sentences):
        rng = random.Random(f"{seed}/{split}/{i}")
        noisy = rng.random() < noise_prob
        out.append(Utterance(
            id=f"{prefix}{i // 1000 + 1:03d}-{i % 1000 + 1:04d}", text=text, normalized_text=normalized,
            voice=rng.choice(voices), rate_wpm=rng.randint(145, 195), pitch=rng.randint(30, 70),
            range=rng.randint(30, 80), gain=round(rng.uniform(0.25, 0.95), 3),
            snr_db=round(rng.uniform(15.0, 35.0), 1) if noisy else 0.0,
        ))
    return out


def render(engine, utt: Utterance, seed: int) -> np.ndarray:
    """int16 samples of one utterance: speech, gain, optional background noise."""
    engine.set_voice(utt.voice)
    engine.set_prosody(utt.rate_wpm, utt.pitch, utt.range)
    speech = engine.synth(utt.normalized_text, seed=_stable_seed(seed, utt.id)).astype(np.float32) / 32768.0
    peak = float(np.abs(speech).max()) if speech.size else 0.0
    if peak > 0:
        speech *= utt.gain / peak
    if utt.snr_db > 0 and speech.size:
        rng = np.random.default_rng(_stable_seed(seed, utt.id))
        noise = rng.standard_normal(speech.size).astype(np.float32)
        if rng.random() < 0.5:  # brown-ish noise: a leaky integral of white noise
            noise = np.cumsum(noise) * 0.05
            noise -= np.convolve(noise, np.ones(256) / 256, mode="same")
        power = float(np.mean(speech**2)) / (10 ** (utt.snr_db / 10))
        speech += noise * np.sqrt(power / max(float(np.mean(noise**2)), 1e-12))
    return (np.clip(speech, -1.0, 1.0) * 32767).astype(np.int16)


def _stable_seed(seed: int, key: str) -> int:
    # Not hash(): Python salts string hashes per process.
    return int(hashlib.sha256(f"{seed}/{key}".encode()).hexdigest()[:16], 16)


def _synth_chunk(job: tuple[list[Utterance], str, int]) -> list[tuple[str, int]]:
    """Worker: synthesize and write a chunk; returns ``(id, samples)`` per utterance."""
    import soundfile as sf

    from definitions.tools.ljspeech_synth.espeak import Espeak

    utts, wav_dir, seed = job
    engine = Espeak()
    out = []
    for utt in utts:
        samples = render(engine, utt, seed)
        sf.write(os.path.join(wav_dir, f"{utt.id}.wav"), samples, SAMPLE_RATE, subtype="PCM_16")
        out.append((utt.id, int(samples.size)))
    return out


def synthesize(utts: list[Utterance], wav_dir: Path, seed: int, workers: int, seconds: float | None,
               desc: str) -> list[tuple[Utterance, int]]:
    """Write wavs in order until ``seconds`` of audio (None = all); returns ``(utterance, samples)``."""
    from tqdm import tqdm

    chunks = [(utts[i:i + CHUNK], str(wav_dir), seed) for i in range(0, len(utts), CHUNK)]
    by_id = {u.id: u for u in utts}
    kept: list[tuple[Utterance, int]] = []
    total = 0.0
    # The training split is cut by audio length, the held-out ones by count.
    bar = (tqdm(total=seconds, unit="s", desc=desc, file=sys.stderr) if seconds is not None
           else tqdm(total=len(utts), unit="utt", desc=desc, file=sys.stderr))
    # maxtasksperchild=1: every chunk starts from espeak-ng's initial state (see module doc).
    with mp.get_context("fork").Pool(workers, maxtasksperchild=1) as pool:
        for done in pool.imap(_synth_chunk, chunks):
            for uid, n in done:
                if seconds is not None and total >= seconds:
                    break
                kept.append((by_id[uid], n))
                total += n / SAMPLE_RATE
                bar.update(min(n / SAMPLE_RATE, max(0.0, seconds - bar.n)) if seconds is not None else 1)
            if seconds is not None and total >= seconds:
                pool.terminate()
                break
    bar.close()
    keep_ids = {u.id for u, _ in kept}
    for u in utts:  # files written past the target by chunks still in flight
        if u.id not in keep_ids:
            (wav_dir / f"{u.id}.wav").unlink(missing_ok=True)
    if seconds is not None and total < seconds:
        print(f"warning: {desc}: only {total / 3600:.2f} h from {len(utts)} sentences", file=sys.stderr)
    return kept


def write_metadata(path: Path, rows: list[tuple[Utterance, int]]) -> None:
    """LJSpeech format: ``id|text|normalized_text``, no header, no quoting."""
    with open(path, "w", encoding="utf-8", newline="") as fh:
        for utt, _ in rows:
            fh.write(f"{utt.id}|{utt.text}|{utt.normalized_text}\n")


def write_utterances(path: Path, rows: list[tuple[Utterance, int]]) -> None:
    with open(path, "w", encoding="utf-8", newline="") as fh:
        writer = csv.writer(fh, delimiter="|", quoting=csv.QUOTE_NONE, escapechar="\\")
        writer.writerow(["id", "voice", "rate_wpm", "pitch", "range", "gain", "snr_db", "samples"])
        for utt, n in rows:
            writer.writerow([utt.id, utt.voice, utt.rate_wpm, utt.pitch, utt.range, utt.gain, utt.snr_db, n])


def generate(out: Path, hours: float, seed: int = 0, heldout: int = 200, noise_prob: float = 0.3,
             workers: int | None = None) -> dict:
    """Build the corpus in ``out``; returns the summary also written to ``synth_info.json``."""
    if hours <= 0:
        raise ValueError(f"--hours: must be > 0, got {hours}")
    workers = workers or os.cpu_count() or 1
    wav_dir = out / "wavs"
    wav_dir.mkdir(parents=True, exist_ok=True)
    # Held-out sentences are drawn first and excluded from the training pool.
    held = unique_sentences(2 * heldout, seed + 1_000_003)
    pool_size = int(hours * 3600 / 1.5) + 2 * CHUNK  # > enough: utterances average ~4 s
    train_sentences = unique_sentences(pool_size, seed, exclude={n for _, n in held})
    plans = {
        "train": plan_utterances("train", train_sentences, TRAIN_VOICES, seed, noise_prob),
        "heldout_sentences": plan_utterances("heldout_sentences", held[:heldout], TRAIN_VOICES, seed, noise_prob),
        "heldout_voice": plan_utterances("heldout_voice", held[heldout:], (HELDOUT_VOICE,), seed, noise_prob),
    }
    summary: dict = {"seed": seed, "hours": hours, "sample_rate": SAMPLE_RATE, "noise_prob": noise_prob,
                     "train_voices": list(TRAIN_VOICES), "heldout_voice": HELDOUT_VOICE, "splits": {}}
    all_rows = []
    for split, plan in plans.items():
        seconds = hours * 3600 if split == "train" else None
        rows = synthesize(plan, wav_dir, seed, workers, seconds, desc=split)
        write_metadata(out / SPLITS[split][0], rows)
        all_rows += rows
        summary["splits"][split] = {"file": SPLITS[split][0], "utterances": len(rows),
                                    "hours": round(sum(n for _, n in rows) / SAMPLE_RATE / 3600, 4)}
    write_utterances(out / "utterances.csv", all_rows)
    (out / "synth_info.json").write_text(json.dumps(summary, indent=2) + "\n", encoding="utf-8")
    return summary


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", type=Path, required=True, help="output folder (LJSpeech layout)")
    ap.add_argument("--hours", type=float, default=2.0, help="hours of training audio (metadata.csv)")
    ap.add_argument("--seed", type=int, default=0, help="seed of sentences, voices and prosody")
    ap.add_argument("--heldout", type=int, default=200, help="utterances in each held-out file")
    ap.add_argument("--noise-prob", type=float, default=0.3, help="fraction of utterances with background noise")
    ap.add_argument("--workers", type=int, default=None, help="processes (default: all CPUs)")
    args = ap.parse_args(argv)
    try:
        summary = generate(args.out, args.hours, args.seed, args.heldout, args.noise_prob, args.workers)
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    for split, info in summary["splits"].items():
        print(f"{split}: {info['utterances']} utterances, {info['hours']:.2f} h -> {args.out / info['file']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
