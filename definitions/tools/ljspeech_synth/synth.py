"""Offline speech corpus in the exact LJSpeech layout, spoken by several synthesizers (no download).

    python -m definitions.tools.ljspeech_synth --out data/ljspeech_synth --hours 4 --seed 0
    python -m definitions.tools.ljspeech_synth --out data/asr --engines espeak,flite,festival

Writes::

    metadata.csv             id|text|normalized_text   training pool (training voices and sentences)
    heldout_sentences.csv    same format: template sentences never in metadata.csv
    heldout_text.csv         same format: real sentences never in metadata.csv, once per engine
    heldout_voice.csv        same format: unseen sentences, espeak's held-out voice variant
    utterances.csv           id|split|engine|voice|source|rate|pitch|pitch_range|gain|snr_db|samples
    lm_text.txt              normalized training-pool real sentences *not* spoken in metadata.csv, one a
                             line: text for the decoder's language model (never a held-out sentence,
                             never a validation sentence, which all come from metadata.csv)
    synth_info.json          settings, per-split and per-engine hours, synthesis speed
    wavs/{id}.wav            22050 Hz mono 16-bit PCM

``text`` is the sentence as written (digits, money, abbreviations); ``normalized_text`` is what
is spoken, as in LJSpeech. ``--engines auto`` (default) uses every installed engine (espeak-ng
always; Debian's flite and festival when installed). The output depends only on the arguments
and the set of engines: each chunk of utterances is synthesized in a fresh process, because
espeak-ng carries hidden state (pitch flutter) from one utterance to the next.
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import json
import multiprocessing as mp
import os
import sys
import time
from collections import defaultdict
from pathlib import Path

import numpy as np

from definitions.tools.ljspeech_synth.engines import EngineMissing, Prosody, engine_class, resolve_engines
from definitions.tools.ljspeech_synth.plan import (
    SPLITS,
    Utterance,
    plan_per_engine,
    plan_split,
    training_sentences,
)
from definitions.tools.ljspeech_synth.realtext import real_sentences, resolve_source, sentence_key
from definitions.tools.ljspeech_synth.sentences import unique_sentences

SAMPLE_RATE = 22050
LM_TEXT = "lm_text.txt"
CHUNK = 48  # utterances per fresh worker process (fewer for small corpora: see chunk_size)
Row = tuple[Utterance, int, float]  # utterance, samples written, seconds spent synthesizing


def render(engine, utt: Utterance, seed: int) -> np.ndarray:
    """int16 samples at SAMPLE_RATE of one utterance: speech, gain, optional background noise."""
    import soxr

    speech, rate = engine.synth(utt.normalized_text, utt.voice, Prosody(utt.rate, utt.pitch, utt.pitch_range),
                                seed=_stable_seed(seed, utt.id))
    speech = np.asarray(speech, dtype=np.float32)
    if rate != SAMPLE_RATE and speech.size:
        speech = soxr.resample(speech, rate, SAMPLE_RATE).astype(np.float32)
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
    return int(hashlib.sha256(f"{seed}/{key}".encode()).hexdigest()[:16], 16) % 2**31


def _synth_chunk(job: tuple[list[Utterance], str, int]) -> list[tuple[str, int, float]]:
    """Worker: synthesize and write a chunk; returns ``(id, samples, seconds spent)`` per utterance."""
    import soundfile as sf

    utts, wav_dir, seed = job
    engines: dict = {}
    out = []
    for utt in utts:
        start = time.perf_counter()
        if utt.engine not in engines:
            engines[utt.engine] = engine_class(utt.engine)()
        samples = render(engines[utt.engine], utt, seed)
        sf.write(os.path.join(wav_dir, f"{utt.id}.wav"), samples, SAMPLE_RATE, subtype="PCM_16")
        out.append((utt.id, int(samples.size), time.perf_counter() - start))
    return out


def chunk_size(expected_utterances: float) -> int:
    """Utterances per worker task: ``CHUNK``, or fewer for small corpora so that the chunks still in
    flight when the target is reached waste little. A function of the arguments only (never of the
    worker count), since chunk boundaries reset espeak's state and so shape the audio."""
    return int(max(8, min(CHUNK, expected_utterances // 8)))


def synthesize(utts: list[Utterance], wav_dir: Path, seed: int, workers: int, seconds: float | None,
               desc: str) -> list[Row]:
    """Write wavs in order until ``seconds`` of audio (None = all); returns one Row per kept file."""
    from tqdm import tqdm

    size = chunk_size(len(utts) if seconds is None else seconds / 4.0)  # ~4 s per utterance
    chunks = [(utts[i:i + size], str(wav_dir), seed) for i in range(0, len(utts), size)]
    by_id = {u.id: u for u in utts}
    kept: list[Row] = []
    total = 0.0
    # The training split is cut by audio length, the held-out ones by count.
    bar = (tqdm(total=seconds, unit="s", desc=desc, file=sys.stderr) if seconds is not None
           else tqdm(total=len(utts), unit="utt", desc=desc, file=sys.stderr))
    # maxtasksperchild=1: every chunk starts from espeak-ng's initial state (see module doc).
    with mp.get_context("fork").Pool(workers, maxtasksperchild=1) as pool:
        for done in pool.imap(_synth_chunk, chunks):
            for uid, n, spent in done:
                if seconds is not None and total >= seconds:
                    break
                kept.append((by_id[uid], n, spent))
                total += n / SAMPLE_RATE
                bar.update(min(n / SAMPLE_RATE, max(0.0, seconds - bar.n)) if seconds is not None else 1)
            if seconds is not None and total >= seconds:
                pool.terminate()
                break
    bar.close()
    keep_ids = {u.id for u, _, _ in kept}
    for u in utts:  # files written past the target by chunks still in flight
        if u.id not in keep_ids:
            (wav_dir / f"{u.id}.wav").unlink(missing_ok=True)
    if seconds is not None and total < seconds:
        print(f"warning: {desc}: only {total / 3600:.2f} h from {len(utts)} sentences", file=sys.stderr)
    return kept


def write_metadata(path: Path, rows: list[Row]) -> None:
    # LJSpeech's format: no header, no quoting (quotes are text); '|' never occurs in a sentence.
    with open(path, "w", encoding="utf-8", newline="\n") as fh:
        for utt, _, _ in rows:
            fh.write(f"{utt.id}|{utt.text}|{utt.normalized_text}\n")


MANIFEST_COLUMNS = ["id", "split", "engine", "voice", "source", "rate", "pitch", "pitch_range", "gain", "snr_db",
                    "samples"]


def write_lm_text(path: Path, real_train: list[tuple[str, str]], metadata: Path) -> int:
    """Write the training pool's real sentences that ``metadata`` does not speak (its own come
    from the training batches; leaving them out keeps validation sentences, drawn from
    ``metadata``, out of the LM); returns the count. Held-out sentences are never in the pool."""
    spoken = {sentence_key(line.split("|", 2)[2]) for line in metadata.read_text(encoding="utf-8").splitlines() if line}
    lines = [normalized for _, normalized in real_train if sentence_key(normalized) not in spoken]
    path.write_text("".join(f"{line}\n" for line in lines), encoding="utf-8")
    return len(lines)


def write_manifest(path: Path, rows: list[Row]) -> None:
    """``utterances.csv``: how each file was made (the dataset filters engines with it)."""
    with open(path, "w", encoding="utf-8", newline="") as fh:
        writer = csv.writer(fh, delimiter="|", quoting=csv.QUOTE_NONE, escapechar="\\", lineterminator="\n")
        writer.writerow(MANIFEST_COLUMNS)
        for u, n, _ in rows:
            writer.writerow([u.id, u.split, u.engine, u.voice, u.source, u.rate, u.pitch, u.pitch_range, u.gain,
                             u.snr_db, n])


def composition(rows: list[Row]) -> dict:
    """Hours per engine / voice / text source, and synthesis speed (audio s per CPU s) per engine."""
    hours: dict = {"engine": defaultdict(float), "voice": defaultdict(float), "source": defaultdict(float)}
    spent: dict = defaultdict(float)
    for u, n, s in rows:
        for key, value in (("engine", u.engine), ("voice", f"{u.engine}:{u.voice}"), ("source", u.source)):
            hours[key][value] += n / SAMPLE_RATE / 3600
        spent[u.engine] += s
    speed = {e: round(hours["engine"][e] * 3600 / spent[e], 1) for e in spent if spent[e] > 0}
    return {**{f"hours_by_{k}": {name: round(h, 4) for name, h in sorted(v.items())} for k, v in hours.items()},
            "audio_s_per_cpu_s": speed}


def generate(out: Path, hours: float, seed: int = 0, heldout: int = 200, noise_prob: float = 0.3,
             workers: int | None = None, engines: str = "auto", text_source: str = "auto",
             template_share: float = 0.3) -> dict:
    """Build the corpus in ``out``; returns the summary also written to ``synth_info.json``."""
    if hours <= 0:
        raise ValueError(f"--hours: must be > 0, got {hours}")
    if not 0 <= heldout < 1000:
        raise ValueError(f"--heldout: must be in [0, 1000), got {heldout}")
    if not 0.0 <= template_share <= 1.0:
        raise ValueError(f"--template-share: must be in [0, 1], got {template_share}")
    chosen = resolve_engines(engines)
    source = resolve_source(text_source)
    real_train, real_held = real_sentences(source)
    workers = workers or os.cpu_count() or 1
    wav_dir = out / "wavs"
    wav_dir.mkdir(parents=True, exist_ok=True)
    # Held-out template sentences are drawn first and excluded from the training pool.
    held_templates = unique_sentences(2 * heldout, seed + 1_000_003)
    pool_size = int(hours * 3600 / 1.5) + 2 * CHUNK  # > enough: utterances average ~3-4 s
    train = training_sentences(pool_size, real_train, template_share, seed, {n for _, n in held_templates})
    plans = {
        "train": plan_split("train", train, chosen, seed, noise_prob),
        "heldout_sentences": plan_split("heldout_sentences", [(p, "template") for p in held_templates[:heldout]],
                                        chosen, seed, noise_prob),
        "heldout_text": plan_per_engine("heldout_text", real_held[:heldout], chosen, seed, noise_prob),
    }
    with_heldout_voice = [e for e in chosen if e.heldout_voices]
    if with_heldout_voice:
        plans["heldout_voice"] = plan_split("heldout_voice", [(p, "template") for p in held_templates[heldout:]],
                                            with_heldout_voice, seed, noise_prob, heldout_voice=True)
    summary: dict = {"seed": seed, "hours": hours, "sample_rate": SAMPLE_RATE, "noise_prob": noise_prob,
                     "engines": {e.name: {"voices": list(e.voices), "heldout_voices": list(e.heldout_voices)}
                                 for e in chosen},
                     "text_source": source, "template_share": template_share,
                     "real_sentences": {"train": len(real_train), "heldout": len(real_held)}, "splits": {}}
    all_rows: list[Row] = []
    for split, plan in plans.items():
        start = time.perf_counter()
        rows = synthesize(plan, wav_dir, seed, workers, hours * 3600 if split == "train" else None, desc=split)
        write_metadata(out / SPLITS[split][0], rows)
        all_rows += rows
        summary["splits"][split] = {"file": SPLITS[split][0], "utterances": len(rows),
                                    "hours": round(sum(n for _, n, _ in rows) / SAMPLE_RATE / 3600, 4),
                                    "wall_s": round(time.perf_counter() - start, 1), "workers": workers,
                                    **composition(rows)}
    write_manifest(out / "utterances.csv", all_rows)
    summary["lm_text_sentences"] = write_lm_text(out / LM_TEXT, real_train, out / SPLITS["train"][0])
    (out / "synth_info.json").write_text(json.dumps(summary, indent=2) + "\n", encoding="utf-8")
    return summary


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", type=Path, required=True, help="output folder (LJSpeech layout)")
    ap.add_argument("--hours", type=float, default=4.0, help="hours of training audio (metadata.csv)")
    ap.add_argument("--seed", type=int, default=0, help="seed of sentences, voices and prosody")
    ap.add_argument("--engines", default="auto",
                    help="comma list of espeak, flite, festival; auto = every installed one (default)")
    ap.add_argument("--text-source", default="auto", help="real prose: fortunes (Debian), bundled, or auto")
    ap.add_argument("--template-share", type=float, default=0.3, help="share of template sentences in training")
    ap.add_argument("--heldout", type=int, default=200, help="utterances in each held-out file (per engine in "
                                                             "heldout_text.csv)")
    ap.add_argument("--noise-prob", type=float, default=0.3, help="fraction of utterances with background noise")
    ap.add_argument("--workers", type=int, default=None, help="processes (default: all CPUs)")
    args = ap.parse_args(argv)
    try:
        summary = generate(args.out, args.hours, args.seed, args.heldout, args.noise_prob, args.workers,
                           args.engines, args.text_source, args.template_share)
    except (ValueError, EngineMissing) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    for split, info in summary["splits"].items():
        engines = ", ".join(f"{e} {h:.2f} h" for e, h in info["hours_by_engine"].items())
        print(f"{split}: {info['utterances']} utterances, {info['hours']:.2f} h ({engines}) -> {args.out / info['file']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
