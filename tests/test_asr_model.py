"""ASR model: a tiny Conformer-CTC really learns from generated speech through the real CLI,
keeps a best-CER checkpoint and sample transcripts, and transcribes audio at any rate."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from conftest import make_project, run_cli, synth_corpus

from MLSystem.paths import ProjectPaths

pytestmark = pytest.mark.slow

# The tiny test recipe: ~0.35 h of speech, a 2-block model, ~1 minute on 2 CPU cores.
TINY = ["dataset=ljspeech", "model=conformer", "path=data/ljspeech_synth", "val_metadata=heldout_sentences.csv",
        "d_model=96", "num_layers=2", "ffn_dim=192", "num_heads=4", "batch_size=8", "lr=3e-3",
        "warmup_steps=60", "max_epochs=12", "log_every_n_steps=5"]  # see conformer/config.py


@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> tuple[Path, str]:

    root = make_project(tmp_path_factory.mktemp("asr") / "proj")
    synth_corpus(root / "data" / "ljspeech_synth", hours=0.36, seed=0, heldout=40, workers=2)
    env_threads = {"OMP_NUM_THREADS": "1"}  # fastest on a small shared machine
    from conftest import cli_env

    proc = run_cli(root, "MLSystem.execute_train", *TINY, env=cli_env(root, **env_threads), check=True, timeout=600)
    eid = proc.stdout.split()[2]
    return root, eid


def rows(root: Path, eid: str, name: str) -> list[dict]:
    path = ProjectPaths(root).experiment(eid).dir / name
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_tiny_model_learns_loss_halves_and_heldout_cer_below_half(trained):
    root, eid = trained
    log = rows(root, eid, "metrics.jsonl")
    first_loss = next(r["train_loss_step"] for r in log if "train_loss_step" in r)
    epochs = [r for r in log if r.get("kind") == "epoch"]
    assert len(epochs) == 12
    assert epochs[-1]["train_loss_epoch"] <= 0.5 * first_loss, (first_loss, epochs[-1])
    # val = heldout_sentences.csv: sentences never seen in training.
    assert epochs[0]["val_cer"] > epochs[-1]["val_cer"]
    assert epochs[-1]["val_cer"] < 0.5, epochs[-1]
    assert 0 < epochs[-1]["val_wer"] <= 1.5


def test_best_checkpoint_and_sample_transcripts(trained):
    root, eid = trained
    exp = ProjectPaths(root).experiment(eid)
    names = {p.name for p in exp.checkpoints.iterdir()}
    assert {"best.ckpt", "last.ckpt", "epoch-0012.ckpt"} <= names
    import torch

    best = torch.load(exp.checkpoints / "best.ckpt", map_location="cpu", weights_only=False)
    epochs = [r for r in rows(root, eid, "metrics.jsonl") if r.get("kind") == "epoch"]
    best_epoch = min(range(len(epochs)), key=lambda i: epochs[i]["val_cer"])
    assert best["epoch"] == best_epoch
    # The decoder's LM text: the training sentences plus the corpus' lm_text.txt, kept in the checkpoint.
    from definitions.models.conformer.vocab import CharVocab

    kept = set(bytes(best["state_dict"]["lm_text"].numpy()).decode("utf-8").split("\n"))
    extra = (root / "data" / "ljspeech_synth" / "lm_text.txt").read_text(encoding="utf-8").splitlines()
    assert extra and {CharVocab().normalize(line) for line in extra} <= kept
    samples = rows(root, eid, "samples.jsonl")
    assert [s["epoch"] for s in samples] == list(range(12))
    assert all(len(s["samples"]) == 4 and {"id", "ref", "hyp"} <= set(s["samples"][0]) for s in samples)


@pytest.fixture(scope="module")
def model(trained):
    from MLSystem.loader import load_experiment

    root, eid = trained
    loaded = load_experiment(eid[:6], checkpoint="best", paths=ProjectPaths(root))
    assert not loaded.model.training
    return loaded.model


def heldout_audio(root: Path) -> tuple[np.ndarray, str]:
    corpus = root / "data" / "ljspeech_synth"
    uid, _, normalized = (corpus / "heldout_sentences.csv").read_text().splitlines()[0].split("|")
    audio, rate = sf.read(corpus / "wavs" / f"{uid}.wav", dtype="float32")
    assert rate == 22050
    return audio, normalized


def test_inference_at_other_sample_rates_empty_and_silent(trained, model):
    import torch
    import torchaudio
    from torchmetrics.functional.text import char_error_rate

    from definitions.models.conformer.vocab import CharVocab

    root, _ = trained
    audio, normalized = heldout_audio(root)
    ref = CharVocab().normalize(normalized)
    native = model.inference(audio, 22050)
    assert isinstance(native, str) and native
    for rate in (16000, 44100):
        resampled = torchaudio.functional.resample(torch.from_numpy(audio), 22050, rate).numpy()
        text = model.inference(resampled, rate)
        assert isinstance(text, str)
        assert float(char_error_rate([text], [ref])) < 0.6, (rate, text, ref)
    stereo = np.stack([audio, audio], axis=1)
    assert model.inference(stereo, 22050) == native
    assert model.inference(np.zeros(0, dtype=np.float32), 16000) == ""
    assert model.inference(np.zeros(22050, dtype=np.float32), 22050) == ""
    assert model.inference(torch.zeros(44100), 44100) == ""
    assert isinstance(model.inference(audio[2000:2100], 16000), str)  # shorter than one FFT window


def test_transcribe_cli_prints_text_and_rtf_and_rejects_corrupt_files(trained, tmp_path):
    root, eid = trained
    audio, _ = heldout_audio(root)
    wav16 = tmp_path / "speech16k.wav"
    import torch
    import torchaudio

    sf.write(wav16, torchaudio.functional.resample(torch.from_numpy(audio), 22050, 16000).numpy(), 16000)
    silent = tmp_path / "silent.wav"
    sf.write(silent, np.zeros(8000, dtype=np.float32), 16000)
    ok = run_cli(root, "definitions.models.conformer.transcribe", eid[:8], str(wav16), str(silent),
                 "--checkpoint", "best", check=True)
    lines = ok.stdout.splitlines()
    assert lines[0].startswith(f"{wav16}: ") and len(lines[0]) > len(f"{wav16}: ") + 5
    assert "RTF" in lines[1] and float(lines[1].split("RTF")[1]) > 0
    assert lines[2] == f"{silent}: "

    corrupt = tmp_path / "corrupt.wav"
    corrupt.write_bytes(b"RIFF\x24\x00\x00\x00WAVEfmt garbage that is not audio")
    bad = run_cli(root, "definitions.models.conformer.transcribe", eid, str(corrupt))
    assert bad.returncode == 1
    assert f"error: {corrupt}: not a readable audio file" in bad.stderr
    assert "Traceback" not in bad.stderr
    missing = run_cli(root, "definitions.models.conformer.transcribe", "ffffffff", str(wav16))
    assert missing.returncode == 2 and "error:" in missing.stderr

    # A checkpoint file on its own (e.g. copied to another machine) is enough.
    ckpt = ProjectPaths(root).experiment(eid).checkpoints / "best.ckpt"
    alone = run_cli(root, "definitions.models.conformer.transcribe", str(ckpt), str(wav16), check=True)
    assert alone.stdout.splitlines()[0] == lines[0]


def test_stopped_and_resumed_asr_run_ends_with_the_weights_of_an_uninterrupted_one(tmp_path):
    """Duration buckets, waveform augmentation (drawn from (seed, epoch, index), computed in a
    loader worker process), SpecAugment, dropout and the feature cache all survive mid-epoch stops."""
    import torch
    from conftest import cli_env


    corpus = tmp_path / "corpus"
    synth_corpus(corpus, hours=0.02, seed=1, heldout=2, workers=2)
    args = ["dataset=ljspeech", "model=conformer", f"path={corpus}", "d_model=32", "num_layers=1", "ffn_dim=64",
            "batch_size=4", "limit_samples=12", "max_epochs=2", "warmup_steps=2",  # 3 steps per epoch
            "augment=true", "augment_noise_prob=0.5", "augment_reverb_prob=0.5", "num_workers=1"]

    def last_weights(root: Path, stdout: str) -> dict[str, torch.Tensor]:
        eid = stdout.split()[2] if stdout.startswith("new") else stdout.split()[1]
        ckpt = ProjectPaths(root).experiment(eid).last_ckpt
        return torch.load(ckpt, map_location="cpu", weights_only=False)["state_dict"]

    ref_root = make_project(tmp_path / "ref")
    ref = run_cli(ref_root, "MLSystem.execute_train", *args, env=cli_env(ref_root, OMP_NUM_THREADS="1"), check=True)

    root = make_project(tmp_path / "interrupted")
    stop_file = tmp_path / "STOP"
    stop_file.touch()  # the runner's per-job stop flag: every run stops after its first step
    stopped_env = cli_env(root, OMP_NUM_THREADS="1", MLSYSTEM_STOP_FILE=str(stop_file))
    first = run_cli(root, "MLSystem.execute_train", *args, env=stopped_env)
    assert first.returncode == 3, first.stderr
    for expected in ("mid-epoch 1 of 2 epochs (global step 1)", "mid-epoch 1 of 2 epochs (global step 2)",
                     "after epoch 1 of 2 epochs", "mid-epoch 2 of 2 epochs (global step 4)"):
        again = run_cli(root, "MLSystem.execute_train", *args, env=stopped_env)
        assert again.returncode == 3 and expected in again.stdout, (expected, again.stdout, again.stderr)
    stop_file.unlink()
    done = run_cli(root, "MLSystem.execute_train", *args, env=cli_env(root, OMP_NUM_THREADS="1"), check=True)
    assert "resuming" in done.stdout and "trained to epoch 2/2" in done.stdout

    expected, got = last_weights(ref_root, ref.stdout), last_weights(root, first.stdout)
    assert expected.keys() == got.keys()
    assert all(torch.equal(expected[k], got[k]) for k in expected), ("resumed weights differ", [k for k in expected if not torch.equal(expected[k], got[k])])
