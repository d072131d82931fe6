"""ASR data: the offline corpus generator, exact metadata.csv reading, bad files, splits,
duration buckets (resumable) and the feature cache."""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from conftest import synth_corpus

from definitions.datasets.ljspeech.datamodule import (
    CorpusError,
    LJSpeechDataModule,
    load_utterances,
    split_train_val,
)
from definitions.datasets.ljspeech.metadata import read_metadata
from definitions.tools.ljspeech_synth import HELDOUT_VOICE, TRAIN_VOICES
from MLSystem.resumable import BucketBatchSampler

RATE = 22050


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("corpus")
    synth_corpus(out, hours=0.02, seed=3, heldout=6, workers=2)
    return out


def write_wav(path: Path, seconds: float = 0.5, rate: int = RATE) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    t = np.arange(int(seconds * rate)) / rate
    sf.write(path, 0.3 * np.sin(2 * np.pi * 220 * t), rate, subtype="PCM_16")


# -- generator -------------------------------------------------------------------------------------
def test_generator_writes_ljspeech_layout_that_the_dataset_reads_back(corpus):
    rows = [line.split("|") for line in (corpus / "metadata.csv").read_text(encoding="utf-8").splitlines()]
    assert rows and all(len(r) == 3 for r in rows)
    assert any(ch.isdigit() for r in rows for ch in r[1]), "text should contain digits"
    assert not any(ch.isdigit() for r in rows for ch in r[2]), "normalized_text spells numbers out"
    total = 0.0
    for uid, _, _ in rows:
        info = sf.info(corpus / "wavs" / f"{uid}.wav")
        assert (info.samplerate, info.channels, info.subtype) == (RATE, 1, "PCM_16")
        total += info.duration
    assert total >= 0.02 * 3600

    utts = load_utterances(corpus, "metadata.csv", RATE, max_seconds=30)
    assert [(u.id, u.text, u.normalized_text) for u in utts] == [tuple(r) for r in rows]
    assert [u.num_samples for u in utts] == [sf.info(u.path).frames for u in utts]
    assert utts[0].load().dtype == np.float32 and len(utts[0].load()) == utts[0].num_samples

    held = {r.split("|")[2] for r in (corpus / "heldout_sentences.csv").read_text().splitlines()}
    voice = {r.split("|")[2] for r in (corpus / "heldout_voice.csv").read_text().splitlines()}
    assert len(held) == len(voice) == 6
    assert not held & {r[2] for r in rows} and not voice & {r[2] for r in rows}
    made_by = {line.split("|")[0]: line.split("|")[3] for line in (corpus / "utterances.csv").read_text().splitlines()[1:]}
    assert {made_by[r[0]] for r in rows} <= set(TRAIN_VOICES) and HELDOUT_VOICE not in TRAIN_VOICES
    assert {made_by[r.split("|")[0]] for r in (corpus / "heldout_voice.csv").read_text().splitlines()} == {HELDOUT_VOICE}


def test_generator_is_deterministic_for_a_seed(tmp_path):
    a, b, c = tmp_path / "a", tmp_path / "b", tmp_path / "c"
    synth_corpus(a, hours=0.004, seed=5, heldout=2, workers=2)
    synth_corpus(b, hours=0.004, seed=5, heldout=2, workers=1)
    synth_corpus(c, hours=0.004, seed=6, heldout=2, workers=2)
    assert (a / "metadata.csv").read_bytes() == (b / "metadata.csv").read_bytes()
    wavs = sorted(p.name for p in (a / "wavs").iterdir())
    assert wavs == sorted(p.name for p in (b / "wavs").iterdir())
    assert all((a / "wavs" / w).read_bytes() == (b / "wavs" / w).read_bytes() for w in wavs)
    assert (a / "metadata.csv").read_bytes() != (c / "metadata.csv").read_bytes()


# -- metadata.csv ---------------------------------------------------------------------------------
def test_metadata_quotes_missing_column_blank_lines_and_bad_rows(tmp_path):
    meta = tmp_path / "metadata.csv"
    meta.write_bytes(
        b'LJ001-0001|He said "no, thanks" and left.|He said "no, thanks" and left.\n'
        b"\n   \n"
        b"LJ001-0002|Only two columns here|\n"
        b"LJ001-0003|Two columns, no pipe at the end\r\n"
        b"LJ001-0004|caf\xe9 in latin-1|cafe\n"
        b"LJ001-0005|a|b|c\n"
        b"LJ001-0001|duplicate|duplicate\n"
        b"|no id|no id\n"
        b"LJ001-0006|\"unbalanced quote|\"unbalanced quote\n"
    )
    parsed = read_metadata(meta)
    assert [r.id for r in parsed.rows] == ["LJ001-0001", "LJ001-0002", "LJ001-0003", "LJ001-0006"]
    assert parsed.rows[0].text == 'He said "no, thanks" and left.'  # quotes are text, not CSV quoting
    assert parsed.rows[1].normalized_text == "Only two columns here"
    assert parsed.rows[2].normalized_text == "Two columns, no pipe at the end"  # \r stripped
    assert parsed.rows[3].text == '"unbalanced quote'
    assert parsed.normalized_from_text == 2
    problems = "\n".join(parsed.problems)
    assert len(parsed.problems) == 4
    assert "metadata.csv:6: not valid UTF-8" in problems
    assert "metadata.csv:7: expected id|text|normalized_text, found 4 column(s)" in problems
    assert "duplicate id 'LJ001-0001'" in problems and "empty id" in problems


def test_bad_wavs_are_counted_and_skipped_with_a_warning_or_fail(tmp_path):
    rows = ["A-1|ok|ok", "A-2|missing wav|x", "A-3|corrupt|x", "A-4|wrong rate|x", "A-5|bad row|x|y"]
    (tmp_path / "metadata.csv").write_text("\n".join(rows) + "\n", encoding="utf-8")
    write_wav(tmp_path / "wavs" / "A-1.wav")
    (tmp_path / "wavs" / "A-3.wav").write_bytes(b"RIFF\x00\x00not really a wav")
    write_wav(tmp_path / "wavs" / "A-4.wav", rate=16000)
    with pytest.warns(UserWarning) as caught:
        utts = load_utterances(tmp_path, "metadata.csv", RATE, max_seconds=30)
    assert [u.id for u in utts] == ["A-1"]
    message = str(caught[0].message)
    assert "skipped 4 bad row(s) of 5" in message
    for kind in ("1 missing wav", "1 unreadable wav", "1 wrong sample rate", "1 bad row"):
        assert kind in message
    with pytest.raises(CorpusError, match="found 4 bad row.*on_bad_row=skip"):
        load_utterances(tmp_path, "metadata.csv", RATE, max_seconds=30, on_bad_row="error")
    (tmp_path / "metadata.csv").write_text("A-2|x|x\n")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with pytest.raises(CorpusError, match="no usable utterances"):
            load_utterances(tmp_path, "metadata.csv", RATE, max_seconds=30)
    with pytest.raises(FileNotFoundError, match="metadata file not found"):
        load_utterances(tmp_path, "nope.csv", RATE, max_seconds=30)


# -- splits, limits, buckets ---------------------------------------------------------------------
def test_validation_split_is_five_percent_fixed_by_seed(corpus):
    utts = load_utterances(corpus, "metadata.csv", RATE, max_seconds=30)
    train, val = split_train_val(utts, 0.05, seed=1)
    assert len(val) == max(1, -(-len(utts) * 5 // 100)) and len(train) + len(val) == len(utts)
    assert not {u.id for u in train} & {u.id for u in val}
    assert [u.id for u in split_train_val(utts, 0.05, seed=1)[1]] == [u.id for u in val]
    assert [u.id for u in split_train_val(utts, 0.05, seed=2)[1]] != [u.id for u in val]


def test_datamodule_uses_val_metadata_limit_and_buckets(corpus, monkeypatch):
    monkeypatch.setenv("MLSYSTEM_ROOT", str(corpus.parent))
    params = {"path": str(corpus), "metadata": "metadata.csv", "val_metadata": "heldout_sentences.csv",
              "val_fraction": 0.05, "sample_rate": RATE, "max_seconds": 30.0, "on_bad_row": "skip",
              "seed": 0, "limit_samples": 5, "batch_size": 2, "num_workers": 0}

    class NoAdapter:
        def get_transform(self, split):
            return None

        def collate_fn(self, split):
            return list

    dm = LJSpeechDataModule(params, NoAdapter())
    dm.setup("fit")
    assert len(dm.train_set) == 5 and len(dm.val_set) == 6
    batch = next(iter(dm.train_dataloader()))
    assert {"id", "text", "waveform", "sample_rate"} <= set(batch[0])
    val_lengths = [len(item["waveform"]) for b in dm.val_dataloader() for item in b]
    assert val_lengths == sorted(val_lengths)  # evaluation batches go in length order


def test_bucket_batches_cover_every_item_once_and_resume_exactly():
    rng = np.random.default_rng(0)
    lengths = rng.integers(20_000, 300_000, size=103).tolist()
    sampler = BucketBatchSampler(lengths, 8, seed=4)
    for epoch in (0, 1):
        sampler.set_epoch(epoch)
        batches = list(sampler)
        assert len(batches) == len(sampler) == 13
        assert sorted(i for b in batches for i in b) == list(range(103))
    assert sampler.batches(0) != sampler.batches(1)
    assert BucketBatchSampler(lengths, 8, seed=4).batches(1) == sampler.batches(1)

    def padding(batches):  # padded samples / real samples
        return sum(len(b) * max(lengths[i] for i in b) for b in batches) / sum(lengths)

    random_batches = [list(range(i, min(i + 8, 103))) for i in range(0, 103, 8)]
    assert padding(sampler.batches(0)) < 1.1 < padding(random_batches)

    resumed = BucketBatchSampler(lengths, 8, seed=4)
    resumed.set_epoch(1)
    resumed.skip_in_epoch(1, 5)
    assert list(resumed) == sampler.batches(1)[5:]
    assert list(resumed) == sampler.batches(1)  # the skip applies once


def test_feature_cache_is_reused_and_keyed_by_the_feature_config(corpus, tmp_path):
    from definitions.models.conformer.adapters.ljspeech.adapter import (
        LJSpeechToConformer,
    )

    utts = load_utterances(corpus, "metadata.csv", RATE, max_seconds=30)[:3]
    base = {"vocabulary": " abcdefghijklmnopqrstuvwxyz'", "sample_rate": RATE, "n_fft": 1024, "hop_length": 256,
            "n_mels": 80, "f_min": 0.0, "f_max": 8000.0, "feature_cache": str(tmp_path / "cache")}
    adapter = LJSpeechToConformer(base)
    first = [adapter.get_transform("val")(u) for u in utts]
    cache = adapter.cache_for(utts[0].path.parent.parent)
    assert (cache.misses, cache.hits) == (3, 0)
    again = [adapter.get_transform("val")(u) for u in utts]
    assert (cache.misses, cache.hits) == (3, 3)
    assert all(np.array_equal(a["features"], b["features"]) for a, b in zip(first, again))
    assert first[0]["features"].shape[1] == 80 and first[0]["text"] == first[0]["text"].lower()

    other = LJSpeechToConformer({**base, "n_mels": 40})
    assert other.get_transform("val")(utts[0])["features"].shape[1] == 40
    assert len(list((tmp_path / "cache").iterdir())) == 2  # one folder per feature config


def test_spec_augment_masks_inside_each_utterance_only():
    import torch

    from definitions.models.conformer.spec_augment import spec_augment

    feats = torch.randn(3, 200, 40) + 5.0  # no zeros before masking
    lengths = torch.tensor([200, 120, 30])
    torch.manual_seed(0)
    out = spec_augment(feats, lengths, freq_masks=2, freq_width=8, time_masks=2, time_width=40)
    assert out.shape == feats.shape and not torch.equal(out, feats)
    for b, n in enumerate(lengths.tolist()):
        masked_frames = (out[b] == 0).all(dim=1).nonzero().flatten()
        assert masked_frames.numel() <= 2 * min(40, n // 5) and (masked_frames < n).all()
    assert (out[2, 30:] == feats[2, 30:]).all()  # padding is left alone
    torch.manual_seed(0)
    assert torch.equal(spec_augment(feats, lengths, 2, 8, 2, 40), out)  # drawn from the (resumable) global RNG



def test_vtlp_moves_formants_by_the_drawn_factor_and_leaves_padding_alone():
    import pytest
    import torch

    from definitions.models.conformer.config import ConformerConfig
    from definitions.models.conformer.spec_augment import mel_centers, random_vtlp, vtlp_warp

    centers = mel_centers(80, 0.0, 8000.0)
    feats = torch.zeros(3, 10, 80)
    feats[:, :6, 30] = 1.0  # one "formant" at band 30 (~1.5 kHz); frames 6.. are padding
    out = vtlp_warp(feats, centers, torch.tensor([1.0, 1.1, 0.9]), 8000.0)
    assert torch.allclose(out[0], feats[0], atol=1e-6)  # factor 1 is the identity

    def peak_hz(x):  # energy-weighted centre frequency of a frame
        return float((x * centers).sum() / x.sum())

    assert peak_hz(out[1, 0]) == pytest.approx(1.1 * float(centers[30]), rel=0.03)  # a shorter vocal tract
    assert peak_hz(out[2, 0]) == pytest.approx(0.9 * float(centers[30]), rel=0.03)
    assert (out[:, 6:] == 0).all()  # padded frames stay zero

    torch.manual_seed(3)
    a = random_vtlp(feats, centers, 8000.0, 0.1)
    torch.manual_seed(3)
    assert torch.equal(random_vtlp(feats, centers, 8000.0, 0.1), a)  # the resumable global RNG
    assert random_vtlp(feats, centers, 8000.0, 0.0) is feats  # off: untouched, and no RNG draw
    with pytest.raises(ValueError, match=r"vtlp: must be in \[0, 0.5\), got 0.7"):
        ConformerConfig(vtlp=0.7)

def test_bucketed_loader_state_restores_the_rest_of_the_epoch():
    from MLSystem.resumable import ResumableDataLoader

    lengths = [((i * 37) % 50 + 1) * 1000 for i in range(40)]
    loader = ResumableDataLoader(list(range(40)), batch_size=4, seed=9, lengths=lengths, collate_fn=list)
    loader.batch_sampler.set_epoch(2)
    full = list(loader)
    loader.consumed_batches = 3  # what ExactResumeCallback records after three steps
    state = loader.state_dict()
    assert state == {"epoch": 2, "consumed_batches": 3}

    restored = ResumableDataLoader(list(range(40)), batch_size=4, seed=9, lengths=lengths, collate_fn=list)
    restored.load_state_dict(state)
    restored.batch_sampler.set_epoch(2)  # Lightning sets the epoch before iterating
    assert list(restored) == full[3:]
    assert len(restored) == len(full) == 10


@pytest.mark.parametrize("bucketed", [True, False], ids=["buckets", "samples"])
def test_a_restored_loader_with_worker_processes_continues_mid_epoch(bucketed):
    """A multi-worker DataLoader iterator asks the sampler for an iterator twice; the pending skip
    must survive the first (unused) one, or the resumed epoch replays its first batches."""
    from MLSystem.resumable import ResumableDataLoader

    def loader() -> ResumableDataLoader:
        return ResumableDataLoader(list(range(24)), batch_size=4, seed=9, num_workers=2, collate_fn=list,
                                   lengths=[(i % 5 + 1) * 100 for i in range(24)] if bucketed else None)

    full = loader()
    full._sharded.set_epoch(1)
    expected = list(full)
    restored = loader()
    restored.load_state_dict({"epoch": 1, "consumed_batches": 2, "consumed_samples": 8})
    restored._sharded.set_epoch(1)
    assert list(restored) == expected[2:]
    assert list(restored) == expected  # the skip is spent: iterating the epoch again starts at its beginning


def test_samples_log_appends_and_a_resumed_epoch_replaces_its_row(tmp_path):
    import json

    from definitions.models.conformer.model import write_samples

    path = tmp_path / "samples.jsonl"
    write_samples(path, 0, 10, [{"id": "a", "ref": "x y", "hyp": "x"}])
    write_samples(path, 1, 20, [{"id": "a", "ref": "x y", "hyp": "x z"}])
    with open(path, "a") as fh:
        fh.write('{"epoch": 2, "st')  # killed mid-write
    write_samples(path, 1, 20, [{"id": "a", "ref": "x y", "hyp": "x y"}])  # epoch 1 again after a resume
    rows = [json.loads(line) for line in path.read_text().splitlines()]
    assert [(r["epoch"], r["samples"][0]["hyp"]) for r in rows] == [(0, "x"), (1, "x y")]
