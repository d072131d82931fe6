"""Speech-corpus generator: synthesis speed per engine, and the composition of a generated corpus.

    python bench/bench_corpus.py                               # speed of every installed engine
    python bench/bench_corpus.py --corpus data/ljspeech_synth  # + what that corpus is made of

Speed: one process, ``--sentences`` real sentences per engine spoken round-robin by its voices,
through the generator's own ``render`` (synthesis, resampling to 22050 Hz, level, noise);
seconds of audio per second of wall time, after one warm-up utterance per voice.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from definitions.tools.ljspeech_synth.engines import resolve_engines  # noqa: E402
from definitions.tools.ljspeech_synth.plan import plan_split  # noqa: E402
from definitions.tools.ljspeech_synth.realtext import real_sentences  # noqa: E402
from definitions.tools.ljspeech_synth.synth import SAMPLE_RATE, render  # noqa: E402


def engine_speed(n: int) -> list[tuple[str, int, float, float]]:
    """``(engine, voices, audio seconds, wall seconds)`` per installed engine."""
    train, _ = real_sentences("bundled")
    rows = []
    for cls in resolve_engines("auto"):
        engine = cls()
        plan = plan_split("train", [(p, "real") for p in train[:n]], [cls], seed=0, noise_prob=0.3)
        plan = [u.__class__(**{**u.__dict__, "voice": cls.voices[i % len(cls.voices)]}) for i, u in enumerate(plan)]
        for u in plan[:len(cls.voices)]:  # warm-up: voice loading is a one-off per process
            render(engine, u, 0)
        start, audio = time.perf_counter(), 0
        for u in plan:
            audio += render(engine, u, 0).size
        rows.append((cls.name, len(cls.voices), audio / SAMPLE_RATE, time.perf_counter() - start))
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--sentences", type=int, default=60, help="sentences per engine")
    ap.add_argument("--corpus", type=Path, help="a generated corpus folder (reads its synth_info.json)")
    args = ap.parse_args()
    print("| engine | voices | audio | wall | audio s per s (1 process) |\n|---|---|---|---|---|")
    for name, voices, audio, wall in engine_speed(args.sentences):
        print(f"| {name} | {voices} | {audio:.0f} s | {wall:.1f} s | {audio / wall:.0f} |")
    if args.corpus:
        info = json.loads((args.corpus / "synth_info.json").read_text())
        print(f"\ncorpus {args.corpus}: text source {info['text_source']}, template share {info['template_share']}")
        print("| split | utterances | hours | by engine (h) | by text source (h) | wall |\n|---|---|---|---|---|---|")
        for split, s in info["splits"].items():
            fmt = lambda d: ", ".join(f"{k} {v:.2f}" for k, v in d.items())  # noqa: E731
            print(f"| {split} | {s['utterances']} | {s['hours']:.2f} | {fmt(s['hours_by_engine'])} | "
                  f"{fmt(s['hours_by_source'])} | {s.get('wall_s', '-')} s, {s.get('workers', '-')} workers |")
        voices = info["splits"]["train"]["hours_by_voice"]
        print(f"\ntraining voices ({len(voices)}): " + ", ".join(f"{k} {v * 60:.1f} min" for k, v in voices.items()))


if __name__ == "__main__":
    main()
