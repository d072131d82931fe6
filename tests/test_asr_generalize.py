"""Leave-one-engine-out in miniature: a tiny Conformer trained (through the real CLI, with
augmentation) on a few minutes of espeak + festival speech transcribes flite's voices, which it
never heard, better than the same model untrained."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from conftest import cli_env, make_project, run_cli, synth_corpus

from MLSystem.paths import ProjectPaths

pytestmark = pytest.mark.slow

HELD_OUT = "flite"
# ~200 steps: past CTC's all-blank plateau (loss ~2.8), where characters start to come out.
TINY = ["dataset=ljspeech", "model=conformer", "path=data/multi", f"exclude_engines={HELD_OUT}", "d_model=64",
        "num_layers=2", "ffn_dim=128", "num_heads=4", "batch_size=4", "lr=5e-3", "warmup_steps=30",
        "max_epochs=20", "augment=true", "log_every_n_steps=10"]


def held_out_engine_scores(model, corpus: Path) -> tuple[float, float]:
    """Mean CTC loss and greedy CER of ``model`` on the held-out real text spoken by HELD_OUT."""
    from torch.nn import functional as F
    from torchmetrics.functional.text import char_error_rate

    from definitions.datasets.ljspeech.manifest import read_engines
    from definitions.datasets.ljspeech.metadata import read_metadata
    from definitions.models.conformer.transcribe import read_audio

    engines = read_engines(corpus)
    rows = [r for r in read_metadata(corpus / "heldout_text.csv").rows if engines[r.id] == HELD_OUT]
    assert len(rows) >= 8, "the corpus has held-out sentences for the engine left out"
    model.configure_decoding(decoder="greedy")
    losses, hyps, refs = [], [], []
    with torch.no_grad():
        for row in rows:
            audio, _ = read_audio(corpus / "wavs" / f"{row.id}.wav")
            feats = model.featurizer(torch.from_numpy(audio))[None]
            log_probs, lengths = model(feats, torch.tensor([feats.shape[1]]))
            ref = model.vocab.normalize(row.normalized_text)
            target = torch.tensor([model.vocab.encode(ref)])
            losses.append(float(F.ctc_loss(log_probs.transpose(0, 1), target, lengths, torch.tensor([target.shape[1]]),
                                           blank=model.vocab.blank, zero_infinity=True)))
            hyps.append(model.decode(log_probs, lengths)[0])
            refs.append(ref)
    return sum(losses) / len(losses), float(char_error_rate(hyps, refs))


def test_tiny_model_beats_an_untrained_one_on_an_engine_it_never_heard(tmp_path):
    from definitions.tools.ljspeech_synth.engines import EngineMissing, resolve_engines
    from MLSystem.loader import load_experiment

    try:
        resolve_engines("espeak,flite,festival")
    except EngineMissing as exc:  # scripts/test.sh installs them (as root with apt)
        pytest.skip(f"needs Debian's flite and festival: {exc}")
    root = make_project(tmp_path / "proj")
    corpus = root / "data" / "multi"
    synth_corpus(corpus, hours=0.06, seed=2, heldout=12, engines="espeak,flite,festival", workers=2)
    proc = run_cli(root, "MLSystem.execute_train", *TINY, env=cli_env(root, OMP_NUM_THREADS="1"), check=True,
                   timeout=600)
    eid = proc.stdout.split()[2]

    paths = ProjectPaths(root)
    trained = load_experiment(eid, checkpoint="last", paths=paths).model
    torch.manual_seed(0)
    untrained = load_experiment(eid, weights=False, paths=paths).model
    trained_loss, trained_cer = held_out_engine_scores(trained, corpus)
    untrained_loss, untrained_cer = held_out_engine_scores(untrained, corpus)
    assert trained_loss < 0.7 * untrained_loss, (trained_loss, untrained_loss)
    assert trained_cer < min(untrained_cer, 0.9), (trained_cer, untrained_cer)
