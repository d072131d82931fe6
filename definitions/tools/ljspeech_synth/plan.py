"""What the corpus will contain, before any audio: each utterance's sentence, engine, voice and
delivery, drawn from ``(seed, split, index)`` only, so the plan (and the audio) depends on the
arguments and never on the worker that renders it.

Splits (``SPLITS``): ``train`` (metadata.csv: real prose + a minority of templates, training
voices of every engine), ``heldout_sentences`` (template sentences never trained on),
``heldout_text`` (real sentences never trained on, the same ones spoken once by every engine, for
leave-one-engine-out evaluation) and ``heldout_voice`` (espeak's held-out voice variant).
"""

from __future__ import annotations

import random
from dataclasses import dataclass

from definitions.tools.ljspeech_synth.engines import REGISTRY, Engine
from definitions.tools.ljspeech_synth.sentences import unique_sentences

# split -> (file, id prefix)
SPLITS = {"train": ("metadata.csv", "SY"), "heldout_sentences": ("heldout_sentences.csv", "HS"),
          "heldout_text": ("heldout_text.csv", "HT"), "heldout_voice": ("heldout_voice.csv", "HV")}
Pair = tuple[str, str]  # (text, normalized_text)


@dataclass(frozen=True)
class Utterance:
    id: str
    split: str
    text: str
    normalized_text: str
    source: str  # "template" or "real"
    engine: str
    voice: str
    rate: float  # speaking-rate factor
    pitch: float  # 0..1
    pitch_range: float  # 0..1
    gain: float  # peak level
    snr_db: float  # 0 = no added noise


def utt_id(split: str, i: int, group: int = 0) -> str:
    """LJSpeech-like ids: ``SY001-0001``; ``group`` (e.g. the engine) replaces the thousands."""
    prefix = SPLITS[split][1]
    return f"{prefix}{group or i // 1000 + 1:03d}-{i % 1000 + 1:04d}"


def delivery(rng: random.Random, noise_prob: float) -> dict:
    """Random speaking rate, pitch, level and background noise of one utterance."""
    noisy = rng.random() < noise_prob
    return {"rate": round(rng.uniform(0.85, 1.12), 3), "pitch": round(rng.random(), 3),
            "pitch_range": round(rng.random(), 3), "gain": round(rng.uniform(0.25, 0.95), 3),
            "snr_db": round(rng.uniform(15.0, 35.0), 1) if noisy else 0.0}


def plan_split(split: str, sentences: list[tuple[Pair, str]], engines: list[type[Engine]], seed: int,
               noise_prob: float, heldout_voice: bool = False) -> list[Utterance]:
    """One utterance per ``((text, normalized), source)``: engine uniform over ``engines``, then a
    voice uniform over its training voices (or its held-out voices)."""
    out = []
    for i, ((text, normalized), source) in enumerate(sentences):
        rng = random.Random(f"{seed}/{split}/{i}")
        engine = rng.choice(engines)
        voice = rng.choice(engine.heldout_voices if heldout_voice else engine.voices)
        out.append(Utterance(utt_id(split, i), split, text, normalized, source, engine.name, voice,
                             **delivery(rng, noise_prob)))
    return out


def plan_per_engine(split: str, sentences: list[Pair], engines: list[type[Engine]], seed: int,
                    noise_prob: float) -> list[Utterance]:
    """Every sentence once per engine (a random training voice of it): comparable test sets."""
    out = []
    for engine in engines:
        group = list(REGISTRY).index(engine.name) + 1  # stable ids whichever engines are selected
        for i, (text, normalized) in enumerate(sentences):
            rng = random.Random(f"{seed}/{split}/{engine.name}/{i}")
            out.append(Utterance(utt_id(split, i, group), split, text, normalized, "real", engine.name,
                                 rng.choice(engine.voices), **delivery(rng, noise_prob)))
    return out


def training_sentences(n: int, real: list[Pair], template_share: float, seed: int,
                       exclude_templates: set[str]) -> list[tuple[Pair, str]]:
    """``n`` sentences, each a template with probability ``template_share``, else the next real
    sentence of a seeded shuffle (cycling when the real text runs out, with new voices)."""
    rng = random.Random(f"{seed}/mix")
    is_template = [rng.random() < template_share or not real for _ in range(n)]
    templates = iter(unique_sentences(sum(is_template), seed, exclude=exclude_templates))
    order = list(real)
    random.Random(f"{seed}/real").shuffle(order)
    out, k = [], 0
    for t in is_template:
        if t:
            out.append((next(templates), "template"))
        else:
            out.append((order[k % len(order)], "real"))
            k += 1
    return out
