"""ASR benchmark (issue 5): quality, speed and training overhead of a trained Conformer-CTC
experiment, with pocketsphinx on the same audio. Prints a Markdown table.

    .venv/bin/python bench/bench_asr.py EXPERIMENT_ID [--checkpoint best] [--threads 2]

1. CER / WER on the corpus' held-out sentences and held-out voice (``heldout_*.csv`` written by
   ``definitions.tools.ljspeech_synth``), references normalized like the training targets.
2. Real-time factor at batch 1 on ``--threads`` CPU threads, end to end: read the file,
   resample, features, encoder, greedy decode (three warm-up calls excluded; each file's fastest
   of ``--repeats`` runs).
3. pocketsphinx (its bundled en-us model) on the same files (the first ``--baseline-limit`` of
   each set: it is much slower): resample to 16 kHz + decode.
4. Training throughput of the framework path (Lightning Trainer with MLSystem's callbacks and
   checkpoint IO) against a plain PyTorch loop: same model init, same batches, same optimizer,
   schedule and clipping; steady state after 5 warm-up steps, best of ``--rounds`` alternating rounds.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import os
import platform
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

import numpy as np
import torch


@dataclass
class Scores:
    cer: float
    wer: float
    rtf: float
    utterances: int
    audio_s: float


def heldout(corpus: Path, name: str, limit: int) -> list[tuple[Path, str]]:
    from definitions.datasets.ljspeech.metadata import read_metadata

    meta = read_metadata(corpus / name)
    return [(corpus / "wavs" / f"{r.id}.wav", r.normalized_text) for r in meta.rows[:limit or None]]


def score(transcribe, files: list[tuple[Path, str]], repeats: int = 1) -> Scores:
    """Run ``transcribe(path) -> text`` over files; CER/WER against normalized refs and the RTF
    (each file's fastest of ``repeats`` runs: on a shared machine that filters out preemption)."""
    import soundfile as sf
    from torchmetrics.functional.text import char_error_rate, word_error_rate

    from definitions.models.conformer.vocab import CharVocab

    vocab = CharVocab()
    for path, _ in files[:3]:
        transcribe(path)  # warm-up
    hyps, refs, proc, audio = [], [], 0.0, 0.0
    for path, ref in files:
        best = float("inf")
        for _ in range(repeats):
            t0 = time.perf_counter()
            hyp = transcribe(path)
            best = min(best, time.perf_counter() - t0)
        proc += best
        audio += sf.info(path).duration
        hyps.append(vocab.normalize(hyp))
        refs.append(vocab.normalize(ref))
    return Scores(float(char_error_rate(hyps, refs)), float(word_error_rate(hyps, refs)), proc / audio,
                  len(files), audio)


def conformer_transcriber(model):
    from definitions.models.conformer.transcribe import read_audio

    def transcribe(path: Path) -> str:
        audio, rate = read_audio(path)
        return model.inference(audio, rate)

    return transcribe


def pocketsphinx_transcriber():
    import soundfile as sf
    import torchaudio
    from pocketsphinx import Decoder

    decoder = Decoder(samprate=16000, loglevel="FATAL")

    def transcribe(path: Path) -> str:
        audio, rate = sf.read(path, dtype="float32")
        x = torchaudio.functional.resample(torch.from_numpy(audio), rate, 16000).numpy()
        decoder.start_utt()
        decoder.process_raw((np.clip(x, -1, 1) * 32767).astype(np.int16).tobytes(), full_utt=True)
        decoder.end_utt()
        hyp = decoder.hyp()
        return hyp.hypstr if hyp else ""

    return transcribe


# -- training throughput ---------------------------------------------------------------------------
def fresh_model(ctx, seed: int):
    torch.manual_seed(seed)
    return ctx.entries["model"].impl_class()(ctx.all_params, **ctx.adapter.build_args(ctx.datamodule))


def plain_loop(ctx, batches: list, warmup: int) -> float:
    """Seconds for the batches after ``warmup`` with a hand-written loop."""
    from MLSystem.optim import lr_factor

    p = ctx.all_params
    model = fresh_model(ctx, int(p["seed"])).train()
    opt = torch.optim.AdamW(model.parameters(), lr=float(p["lr"]), weight_decay=float(p["weight_decay"]))
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lr_factor(p["scheduler"], int(p["warmup_steps"]),
                                                             lambda: len(batches)))
    for i, batch in enumerate(batches):
        if i == warmup:
            t0 = time.perf_counter()
        loss = model.training_loss(batch)  # what training_step computes, without Lightning
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), float(p["grad_clip"]))
        opt.step()
        sched.step()
    return time.perf_counter() - t0


def framework_loop(ctx, batches: list, warmup: int) -> float:
    """The same with Lightning and the callbacks / checkpoint IO ``execute_train`` uses."""
    import pytorch_lightning as pl
    from torch.utils.data import DataLoader

    from MLSystem import checkpoint_manager as cm
    from MLSystem.callbacks import JobLoggingCallback, StopCallback
    from MLSystem.paths import ExperimentPaths
    from MLSystem.resumable import ExactResumeCallback

    p = ctx.all_params
    times: dict[str, float] = {}

    class Clock(pl.Callback):
        def on_train_batch_start(self, trainer, module, batch, batch_idx):
            if batch_idx == warmup:
                times["start"] = time.perf_counter()

        def on_train_batch_end(self, trainer, module, outputs, batch, batch_idx):
            times["end"] = time.perf_counter()

    model = fresh_model(ctx, int(p["seed"]))
    with tempfile.TemporaryDirectory() as tmp:
        exp = ExperimentPaths(Path(tmp) / "exp")
        exp.dir.mkdir()
        callbacks = [ExactResumeCallback(),
                     JobLoggingCallback([exp.metrics], exp.progress, log_every_n_steps=int(p["log_every_n_steps"])),
                     StopCallback([exp.stop_flag], threading.Event(), exp.last_ckpt),
                     *cm.checkpoint_callbacks(exp, {**p, "checkpoint_every_minutes": 0}), Clock()]
        trainer = pl.Trainer(max_epochs=1, accelerator="cpu", devices=1, precision=p["precision"],
                             gradient_clip_val=float(p["grad_clip"]) or None, callbacks=callbacks,
                             plugins=[cm.atomic_checkpoint_io()], logger=False, enable_progress_bar=False,
                             enable_model_summary=False, num_sanity_val_steps=0, limit_val_batches=0,
                             default_root_dir=str(exp.dir))
        with contextlib.redirect_stdout(io.StringIO()):  # the progress lines JobLoggingCallback prints
            trainer.fit(model, train_dataloaders=DataLoader(batches, batch_size=None))
    return times["end"] - times["start"]


def throughput(ctx, n_batches: int, warmup: int, rounds: int) -> tuple[float, float, int]:
    dm = ctx.datamodule
    dm.setup("fit")
    batches = []
    for batch in dm.train_dataloader():
        batches.append(batch)
        if len(batches) == n_batches:
            break
    utts = sum(len(b["texts"]) for b in batches[warmup:])
    plain, framework = [], []
    for _ in range(rounds):  # alternate, keep the best of each: the machine may be shared
        plain.append(plain_loop(ctx, batches, warmup))
        framework.append(framework_loop(ctx, batches, warmup))
    return utts / min(plain), utts / min(framework), utts


def machine() -> str:
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as fh:
            cpu = next(line.split(":", 1)[1].strip() for line in fh if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    return f"{cpu}, {os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f} at start"


def pct(x: float) -> str:
    return f"{100 * x:.1f} %"


Row = tuple[str, str, str, str, "bool | None"]  # measurement, conformer, baseline, target, met


def quality_rows(model, corpus: Path, args: argparse.Namespace) -> list[Row]:
    """CER / WER on both held-out files and the RTF, with pocketsphinx beside them."""
    sets = {"held-out sentences": heldout(corpus, "heldout_sentences.csv", args.limit),
            "held-out voice": heldout(corpus, "heldout_voice.csv", args.limit)}
    ours = {k: score(conformer_transcriber(model), v, args.repeats) for k, v in sets.items()}
    theirs, ours_same = {}, {}
    if not args.no_pocketsphinx:
        subsets = {k: v[:args.baseline_limit or None] for k, v in sets.items()}
        sphinx = pocketsphinx_transcriber()
        theirs = {k: score(sphinx, v) for k, v in subsets.items()}
        ours_same = {k: score(conformer_transcriber(model), v) for k, v in subsets.items()}
    rows: list[Row] = []
    for name, target in (("held-out sentences", 0.05), ("held-out voice", 0.15)):
        o, t = ours[name], theirs.get(name)
        baseline = f"{pct(t.cer)} (conformer {pct(ours_same[name].cer)} on the same {t.utterances})" if t else "-"
        rows.append((f"CER, {name} ({o.utterances} utt, {o.audio_s / 60:.1f} min)", pct(o.cer), baseline,
                     f"<= {pct(target)}", o.cer <= target and (not t or ours_same[name].cer < t.cer)))
        rows.append((f"WER, {name}", pct(o.wer),
                     f"{pct(t.wer)} (conformer {pct(ours_same[name].wer)})" if t else "-", "-", None))
    rtf = sum(s.rtf * s.audio_s for s in ours.values()) / sum(s.audio_s for s in ours.values())
    rtf_ps = (sum(s.rtf * s.audio_s for s in theirs.values()) / sum(s.audio_s for s in theirs.values())
              if theirs else None)
    rows.append((f"RTF, batch 1, {args.threads} threads, end to end", f"{rtf:.4f}",
                 f"{rtf_ps:.4f}" if rtf_ps else "-", "<= 0.05", rtf <= 0.05 and (not rtf_ps or rtf < rtf_ps)))
    return rows


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("experiment")
    ap.add_argument("--checkpoint", default="best")
    ap.add_argument("--corpus", type=Path, default=None, help="default: the experiment's `path`")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--limit", type=int, default=0, help="utterances per held-out file (0 = all)")
    ap.add_argument("--no-pocketsphinx", action="store_true")
    ap.add_argument("--baseline-limit", type=int, default=100,
                    help="utterances per held-out file for pocketsphinx (it is ~50x slower; 0 = all)")
    ap.add_argument("--repeats", type=int, default=2, help="timed runs per file for the RTF (fastest counts)")
    ap.add_argument("--batches", type=int, default=30, help="training batches for the throughput ratio")
    ap.add_argument("--rounds", type=int, default=3, help="alternating plain/framework rounds (best of each)")
    ap.add_argument("--throughput-only", action="store_true", help="skip the quality / RTF / baseline part")
    args = ap.parse_args()

    from definitions.datasets.ljspeech.datamodule import corpus_root
    from MLSystem.loader import load_experiment

    torch.set_num_threads(args.threads)
    print(f"machine: {machine()}; torch threads {args.threads}")
    loaded = load_experiment(args.experiment, checkpoint=args.checkpoint)
    corpus = args.corpus or corpus_root(loaded.params["path"])
    params = sum(p.numel() for p in loaded.model.parameters())
    print(f"experiment {loaded.experiment_id} ({args.checkpoint}), {params / 1e6:.2f} M parameters, corpus {corpus}")

    rows = [] if args.throughput_only else quality_rows(loaded.model, corpus, args)
    plain_ups, framework_ups, utts = throughput(loaded.context, args.batches, warmup=5, rounds=args.rounds)
    ratio = plain_ups / framework_ups
    rows.append((f"training: framework / plain loop time ({utts} utt)", f"{framework_ups:.1f} utt/s",
                 f"plain {plain_ups:.1f} utt/s", "<= 1.05x", ratio <= 1.05))
    print()
    print("| measurement | conformer | pocketsphinx / baseline | target | |")
    print("|---|---|---|---|---|")
    for name, a, b, target, ok in rows:
        print(f"| {name} | {a} | {b} | {target} | {'' if ok is None else ('ok' if ok else 'MISSED')} |")
    print(f"\nframework/plain time ratio: {ratio:.3f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
