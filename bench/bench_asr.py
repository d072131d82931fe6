"""ASR benchmark (issues 5, 15): quality on truly held-out speech, speed and training overhead
of trained Conformer-CTC experiments, with pocketsphinx on the same audio. Prints Markdown tables.

    .venv/bin/python bench/bench_asr.py EXPERIMENT_ID [--loo LOO_ID ...] [--checkpoint best] [--threads 2]

1. Decoder: character-LM or word-LM beam search and its LM weight / word score, tuned for
   CER + WER on the experiment's validation split (never on a test set); greedy is reported beside it.
2. CER / WER on the corpus' held-out real-text sentences (training engines only), the old
   held-out template sentences and the held-out espeak voice; references normalized like the
   training targets.
3. Leave-one-engine-out: each ``--loo`` experiment was trained with ``exclude_engines=E``; it is
   scored on the held-out real text spoken by ``E`` (the same sentences every engine speaks).
4. pocketsphinx (its bundled en-us model) on the first ``--baseline-limit`` files of every set
   (it is much slower), beside the conformer's scores on those same files.
5. Real-time factor at batch 1 on ``--threads`` CPU threads, end to end: read the file,
   resample, features, encoder, decode (three warm-up calls excluded; each file's fastest of
   ``--repeats`` runs).
6. Data pipeline: milliseconds per training item with augmentation vs cached features.
7. Training throughput of the framework path (Lightning Trainer with MLSystem's callbacks and
   checkpoint IO) against a plain PyTorch loop: same model init, same batches, same optimizer,
   schedule and clipping; steady state after 5 warm-up steps, best of ``--rounds`` alternating rounds.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import itertools
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


Utt = tuple[Path, str, str]  # wav, normalized reference, engine ("" when unknown)


def read_set(corpus: Path, name: str, engines: dict[str, str], only: set[str] | None = None,
             limit: int = 0) -> list[Utt]:
    """Rows of a held-out file (optionally only those of some engines), at most ``limit``."""
    from definitions.datasets.ljspeech.metadata import read_metadata

    if not (corpus / name).is_file():
        return []
    rows = [(corpus / "wavs" / f"{r.id}.wav", r.normalized_text, engines.get(r.id, ""))
            for r in read_metadata(corpus / name).rows]
    rows = [r for r in rows if only is None or r[2] in only]
    # Round-robin over engines, so any prefix (--limit, --baseline-limit) has each in equal share.
    by_engine: dict[str, list[Utt]] = {}
    for r in rows:
        by_engine.setdefault(r[2], []).append(r)
    mixed = [r for group in itertools.zip_longest(*by_engine.values()) for r in group if r is not None]
    return mixed[:limit or None]


def corpus_engines(corpus: Path, with_voice: bool = False) -> dict[str, str]:
    """``{utterance id: engine}`` (or ``engine/voice``) from the generator's ``utterances.csv``
    (empty if it has none)."""
    import csv

    path = corpus / "utterances.csv"
    if not path.is_file():
        return {}
    with open(path, encoding="utf-8", newline="") as fh:
        reader = csv.DictReader(fh, delimiter="|", quoting=csv.QUOTE_NONE, escapechar="\\")
        return {row["id"]: (row.get("engine") or "espeak") + (f"/{row.get('voice')}" if with_voice else "")
                for row in reader}


@dataclass
class Hyps:
    """Per-utterance transcripts of one system on one set (so any subset can be scored)."""

    refs: list[str]
    by_decoder: dict[str, list[str]]

    def score(self, decoder: str, n: int = 0) -> tuple[float, float]:
        from torchmetrics.functional.text import char_error_rate, word_error_rate

        hyps, refs = self.by_decoder[decoder][:n or None], self.refs[:n or None]
        return float(char_error_rate(hyps, refs)), float(word_error_rate(hyps, refs))


def normalize(text: str) -> str:
    from definitions.models.conformer.vocab import CharVocab

    return CharVocab().normalize(text)


@torch.no_grad()
def emissions(model, path: Path) -> tuple[torch.Tensor, torch.Tensor]:
    """The model's CTC log-probabilities of one file (exactly what ``inference`` decodes)."""
    import torchaudio

    from definitions.models.conformer.transcribe import read_audio

    audio, rate = read_audio(path)
    x = torch.from_numpy(audio)
    if rate != model.feature_config.sample_rate:
        x = torchaudio.functional.resample(x, rate, model.feature_config.sample_rate)
    feats = model.featurizer(x)[None]
    return model(feats, torch.tensor([feats.shape[1]]))


def conformer_hyps(model, files: list[Utt], settings: dict[str, dict]) -> Hyps:
    """Transcripts of ``files`` with each decoder setting (one forward pass per file)."""
    out: dict[str, list[str]] = {name: [] for name in settings}
    for path, _, _ in files:
        log_probs, lengths = emissions(model, path)
        for name, decoding in settings.items():
            model.configure_decoding(**decoding)
            out[name].append(normalize(model.decode(log_probs, lengths)[0]))
    return Hyps([normalize(ref) for _, ref, _ in files], out)


def tune_lm(model, files: list[Utt]) -> tuple[dict, list[tuple[dict, float, float]]]:
    """The decoder, LM weight and word score with the lowest CER + WER on ``files`` (the validation split)."""
    grid = {f"c-w{w}-s{s}": {"decoder": "beam_lm", "lm_weight": w, "word_score": s}
            for w in (0.5, 1.0, 1.5, 2.0, 3.0) for s in (0.0, 1.0)}
    grid.update({f"w-w{w}-s{s}": {"decoder": "beam_word", "lm_weight": w, "word_score": s}
                 for w in (0.5, 1.0, 2.0) for s in (-1.0, 0.0, 1.0)})
    hyps = conformer_hyps(model, files, {"greedy": {"decoder": "greedy"}, **grid})
    table = [({"decoder": "greedy"}, *hyps.score("greedy"))] + [(grid[k], *hyps.score(k)) for k in grid]
    best = min(table, key=lambda row: row[1] + row[2])  # CER and WER are both targets
    return best[0], table


def rtf(transcribe, files: list[Utt], repeats: int) -> float:
    """Total processing / total audio seconds, each file's fastest of ``repeats`` runs (on a
    shared machine that filters out preemption); three warm-up calls first."""
    import soundfile as sf

    for path, _, _ in files[:3]:
        transcribe(path)
    proc = audio = 0.0
    for path, _, _ in files:
        best = float("inf")
        for _ in range(repeats):
            t0 = time.perf_counter()
            transcribe(path)
            best = min(best, time.perf_counter() - t0)
        proc += best
        audio += sf.info(path).duration
    return proc / audio


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


def sphinx_hyps(files: list[Utt]) -> tuple[Hyps, float]:
    """pocketsphinx's transcripts and its RTF (one pass: it is much slower)."""
    import soundfile as sf

    transcribe = pocketsphinx_transcriber()
    hyps, proc, audio = [], 0.0, 0.0
    for path, _, _ in files:
        t0 = time.perf_counter()
        hyps.append(normalize(transcribe(path)))
        proc += time.perf_counter() - t0
        audio += sf.info(path).duration
    return Hyps([normalize(ref) for _, ref, _ in files], {"pocketsphinx": hyps}), proc / max(audio, 1e-9)


# -- training throughput ---------------------------------------------------------------------------
def fresh_model(ctx, seed: int):
    torch.manual_seed(seed)
    return ctx.entries["model"].impl_class()(ctx.all_params, **ctx.adapter.build_args(ctx.datamodule))


def plain_loop(ctx, batches: list, warmup: int, clock=time.perf_counter) -> float:
    """Seconds for the batches after ``warmup`` with a hand-written loop."""
    from MLSystem.optim import lr_factor

    p = ctx.all_params
    model = fresh_model(ctx, int(p["seed"])).train()
    opt = torch.optim.AdamW(model.parameters(), lr=float(p["lr"]), weight_decay=float(p["weight_decay"]))
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lr_factor(p["scheduler"], int(p["warmup_steps"]),
                                                             lambda: len(batches)))
    for i, batch in enumerate(batches):
        if i == warmup:
            t0 = clock()
        loss = model.training_loss(batch)  # what training_step computes, without Lightning
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), float(p["grad_clip"]))
        opt.step()
        sched.step()
    return clock() - t0


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


def recipe_cost(corpus: Path, n_batches: int, rounds: int) -> list[tuple[str, float, int, int, float]]:
    """CPU seconds per training batch of each recipe (plain loop on one thread, same batches, best
    of ``rounds`` alternating rounds: CPU time, not wall time, so other processes on a shared
    machine do not count) and the training time it projects: batches per epoch x epochs."""
    from MLSystem.builder import ExperimentBuilder

    ctxs = {name: ExperimentBuilder(["dataset=ljspeech", f"model={name}", f"path={corpus}"]).build()
            for name in ("conformer", "conformer_full")}
    batches, per_epoch = [], 0
    for name, ctx in ctxs.items():
        dm = ctx.datamodule
        dm.setup("fit")
        loader = dm.train_dataloader()
        per_epoch = len(loader)
        if not batches:
            for batch in loader:
                batches.append(batch)
                if len(batches) == n_batches:
                    break
    best = {name: float("inf") for name in ctxs}
    for _ in range(rounds):
        for name, ctx in ctxs.items():
            best[name] = min(best[name], plain_loop(ctx, batches, 2, time.process_time) / (len(batches) - 2))
    return [(name, best[name], per_epoch, int(ctx.all_params["max_epochs"]),
             best[name] * per_epoch * int(ctx.all_params["max_epochs"])) for name, ctx in ctxs.items()]


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


Row = tuple[str, ...]  # set, utterances, greedy, +LM, pocketsphinx, target, verdict
BEST = "best"


def cer_wer(scores: tuple[float, float]) -> str:
    return f"{pct(scores[0])} / {pct(scores[1])}"


def set_row(name: str, model, files: list[Utt], best: dict, args, target: tuple[float, float] | None) -> Row:
    """One table row: greedy and best-decoder scores of the conformer, pocketsphinx on the first
    ``--baseline-limit`` files beside the conformer's scores on those same files."""
    if not files:
        return (name, "0", "-", "-", "-", "-", "no such files in the corpus")
    hyps = conformer_hyps(model, files, {"greedy": {"decoder": "greedy"}, BEST: best})
    greedy, ours = hyps.score("greedy"), hyps.score(BEST)
    baseline, beat = "-", True
    if not args.no_pocketsphinx:
        n = args.baseline_limit or len(files)
        theirs, _ = sphinx_hyps(files[:n])
        ps, same = theirs.score("pocketsphinx"), hyps.score(BEST, n)
        baseline = f"{cer_wer(ps)} (conformer {cer_wer(same)} on the same {min(n, len(files))})"
        beat = same[0] < ps[0]
    ok = beat and (target is None or (ours[0] <= target[0] and ours[1] <= target[1]))
    shown = "-" if target is None else f"CER <= {pct(target[0])}" + (f", WER <= {pct(target[1])}" if target[1] < 1 else "")
    return (name, str(len(files)), cer_wer(greedy), cer_wer(ours), baseline, shown + ", beat pocketsphinx CER",
            "ok" if ok else "MISSED")


def per_voice_table(models: list, corpus: Path, limit: int) -> list[str]:
    """Markdown rows: greedy CER of each model on the held-out real text, per engine/voice, so an
    unheard engine's error can be told apart from the error on new sentences of voices trained on."""
    from torchmetrics.functional.text import char_error_rate

    voices = corpus_engines(corpus, with_voice=True)
    files = read_set(corpus, "heldout_text.csv", {i: v.split("/")[0] for i, v in voices.items()}, limit=limit)
    groups: dict[str, list[int]] = {}
    for i, (path, _, _) in enumerate(files):
        groups.setdefault(voices.get(path.stem, "?"), []).append(i)
    columns = []
    for loaded in models:
        hyps = conformer_hyps(loaded.model, files, {"greedy": {"decoder": "greedy"}})
        columns.append({v: float(char_error_rate([hyps.by_decoder["greedy"][i] for i in idx],
                                                 [hyps.refs[i] for i in idx])) for v, idx in groups.items()})
    head = " | ".join(f"{m.experiment_id[:8]} (without {','.join(sorted(excluded_engines(m.params))) or '-'})"
                      for m in models)
    rows = [f"| voice | utt | {head} |", "|---|---|" + "---|" * len(models)]
    rows += [f"| {v} | {len(idx)} | " + " | ".join(pct(c[v]) for c in columns) + " |" for v, idx in sorted(groups.items())]
    return rows


def validation_files(loaded, limit: int) -> list[Utt]:
    """Up to ``limit`` validation files whose sentence is not in the model's LM text. A warm start
    (``init_from``) keeps the parent's text, which can hold this corpus' validation sentences;
    tuning on those would favour a decoder that only recalls known text."""
    known = loaded.model.lm_sentences
    val = [u for u in loaded.datamodule.val_set.utterances if normalize(u.normalized_text) not in known]
    return [(u.path, u.normalized_text, "") for u in val[:limit or None]]


def excluded_engines(params: dict) -> set[str]:
    return {e.strip() for e in str(params.get("exclude_engines", "")).split(",") if e.strip()}


def quality_rows(loaded, corpus: Path, args: argparse.Namespace) -> list[Row]:
    """Every evaluation set of the main experiment, then one row per leave-one-engine-out one."""
    from MLSystem.loader import load_experiment

    model, engines = loaded.model, corpus_engines(corpus)
    best, table = tune_lm(model, validation_files(loaded, args.tune_limit))
    print("decoder tuning on the validation split (CER / WER): "
          + ", ".join(f"{d['decoder']} {d.get('lm_weight', '')}/{d.get('word_score', '')}: {pct(c)} / {pct(w)}"
                      for d, c, w in table))
    print(f"best decoder: {best}")
    trained_on = set(engines.values()) - excluded_engines(loaded.params)
    sets = [
        ("held-out real text, training engines", read_set(corpus, "heldout_text.csv", engines, trained_on or None,
                                                          args.limit), (0.05, 0.15)),
        ("held-out template sentences (the old set)", read_set(corpus, "heldout_sentences.csv", engines,
                                                               limit=args.limit), None),
        ("held-out voice (espeak variant)", read_set(corpus, "heldout_voice.csv", engines, limit=args.limit), None),
    ]
    rows = [set_row(name, model, files, best, args, target) for name, files, target in sets]
    for ref in args.loo:
        other = load_experiment(ref, checkpoint=args.checkpoint)
        left_out = excluded_engines(other.params)
        if not left_out:
            rows.append((f"leave-one-engine-out {ref}", "0", "-", "-", "-", "-", "its exclude_engines is empty"))
            continue
        other_best, _ = tune_lm(other.model, validation_files(other, args.tune_limit))
        files = read_set(corpus, "heldout_text.csv", engines, left_out, args.limit)
        rows.append(set_row(f"never-heard engine {'+'.join(sorted(left_out))}: held-out real text "
                            f"({other.experiment_id[:8]} trained without it)", other.model, files, other_best, args,
                            (0.15, 1.0)))
    model.configure_decoding(**best)
    rtf_files = sets[0][1][: args.rtf_limit] or sets[1][1][: args.rtf_limit]
    ours = rtf(conformer_transcriber(model), rtf_files, args.repeats)
    model.configure_decoding(decoder="greedy")
    greedy = rtf(conformer_transcriber(model), rtf_files, args.repeats)
    model.configure_decoding(**best)
    theirs = None if args.no_pocketsphinx else sphinx_hyps(rtf_files[: args.baseline_limit or None])[1]
    ok = ours <= 0.05 and (theirs is None or ours < theirs)
    rows.append((f"RTF, batch 1, {args.threads} threads, end to end ({best['decoder']})", str(len(rtf_files)),
                 f"{greedy:.4f}", f"{ours:.4f}", "-" if theirs is None else f"{theirs:.4f}",
                 "<= 0.05, beat pocketsphinx", "ok" if ok else "MISSED"))
    return rows


def pipeline_cost(ctx, items: int) -> tuple[float, float, int]:
    """Milliseconds per training item (read, augment, features) with the configured augmentation
    and without it (features from the cache), and the training split's size."""
    from definitions.datasets.ljspeech.augment import rir_bank

    dm = ctx.datamodule
    dm.setup("fit")
    ds = dm.train_set
    n = min(items, len(ds))
    augmenter = ds.augmenter
    ds.augmenter = None
    for i in range(n):  # fill the feature cache first: epoch 1 of a real run does that
        ds[i]
    t0 = time.perf_counter()
    for i in range(n):
        ds[i]
    plain = (time.perf_counter() - t0) / n
    ds.augmenter = augmenter
    ds.set_epoch(1)
    rir_bank(int(ctx.all_params["seed"]), int(ctx.all_params["sample_rate"]))  # once per process (~1-2 s)
    t0 = time.perf_counter()
    for i in range(n):
        ds[i]
    augmented = (time.perf_counter() - t0) / n
    return 1000 * augmented, 1000 * plain, len(ds)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("experiment", help="the experiment trained on every engine (with --recipes: a corpus folder)")
    ap.add_argument("--loo", nargs="*", default=[], help="experiments trained with exclude_engines=E (leave one out)")
    ap.add_argument("--checkpoint", default="best")
    ap.add_argument("--corpus", type=Path, default=None, help="default: the experiment's `path`")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--limit", type=int, default=0, help="utterances per evaluation set (0 = all)")
    ap.add_argument("--tune-limit", type=int, default=80, help="validation utterances to tune the LM weight on")
    ap.add_argument("--rtf-limit", type=int, default=100, help="files timed for the RTF")
    ap.add_argument("--no-pocketsphinx", action="store_true")
    ap.add_argument("--baseline-limit", type=int, default=100,
                    help="utterances per set for pocketsphinx (it is ~50x slower; 0 = all)")
    ap.add_argument("--repeats", type=int, default=2, help="timed runs per file for the RTF (fastest counts)")
    ap.add_argument("--batches", type=int, default=30, help="training batches for the throughput ratio")
    ap.add_argument("--rounds", type=int, default=3, help="alternating plain/framework rounds (best of each)")
    ap.add_argument("--pipeline-items", type=int, default=100, help="training items timed for the augmentation cost")
    ap.add_argument("--throughput-only", action="store_true", help="skip the quality / RTF / baseline part")
    ap.add_argument("--quality-only", action="store_true", help="skip the data-pipeline and throughput part")
    ap.add_argument("--per-voice", action="store_true",
                    help="also: greedy CER per engine/voice on the held-out real text, each model")
    ap.add_argument("--recipes", action="store_true", help="only: seconds per batch of the quick and full recipes")
    args = ap.parse_args()

    from definitions.datasets.ljspeech.datamodule import corpus_root
    from MLSystem.loader import load_experiment

    torch.set_num_threads(args.threads)
    print(f"machine: {machine()}; torch threads {args.threads}")
    if args.recipes:
        corpus = args.corpus or Path(args.experiment)
        torch.set_num_threads(1)
        print("| recipe | CPU s / batch (plain loop, 1 thread) | batches / epoch | epochs | projected training time |")
        print("|---|---|---|---|---|")
        for name, spb, per_epoch, epochs, total in recipe_cost(corpus, args.batches, args.rounds):
            print(f"| {name} | {spb:.3f} | {per_epoch} | {epochs} | {total / 60:.0f} min |")
        return 0
    loaded = load_experiment(args.experiment, checkpoint=args.checkpoint)
    corpus = args.corpus or corpus_root(loaded.params["path"])
    params = sum(p.numel() for p in loaded.model.parameters())
    print(f"experiment {loaded.experiment_id} ({args.checkpoint}), {params / 1e6:.2f} M parameters, corpus {corpus}")

    if not args.throughput_only:
        rows = quality_rows(loaded, corpus, args)
        print()
        print("| set | utt | conformer greedy CER / WER | conformer + LM CER / WER | pocketsphinx CER / WER | target | |")
        print("|---|---|---|---|---|---|---|")
        for row in rows:
            print("| " + " | ".join(row) + " |")
    if args.per_voice:
        models = [loaded] + [load_experiment(ref, checkpoint=args.checkpoint) for ref in args.loo]
        print("\ngreedy CER per voice, held-out real text:")
        print("\n".join(per_voice_table(models, corpus, args.limit)))
    if args.quality_only:
        return 0
    augmented, plain, size = pipeline_cost(loaded.context, args.pipeline_items)
    print(f"\ndata pipeline per training item: augmented {augmented:.1f} ms, cached features {plain:.1f} ms "
          f"(x {size} items = {augmented * size / 1000:.0f} s vs {plain * size / 1000:.0f} s per epoch, one process)")
    plain_ups, framework_ups, utts = throughput(loaded.context, args.batches, warmup=5, rounds=args.rounds)
    ratio = plain_ups / framework_ups
    print(f"training throughput ({utts} utt): framework {framework_ups:.1f} utt/s, plain loop {plain_ups:.1f} utt/s, "
          f"framework/plain time {ratio:.3f}x (target <= 1.05x: {'ok' if ratio <= 1.05 else 'MISSED'})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
