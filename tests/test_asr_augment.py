"""ASR augmentation and decoding: augmented audio is a pure function of (seed, epoch, index), also
through worker processes and a mid-epoch restore; each transform does what it claims; the
n-gram-LM beam search fixes what greedy decoding gets wrong on a toy case; a warm start keeps both LM texts."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import synth_corpus

from definitions.datasets.ljspeech.augment import (
    Augmenter, AugmentConfig, add_noise, reverberate, rir_bank, speed_perturb, telephone,
)
from definitions.datasets.ljspeech.datamodule import UtteranceDataset, load_utterances
from MLSystem.resumable import ResumableDataLoader

RATE = 22050


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("augcorpus") / "c"
    synth_corpus(out, hours=0.01, seed=3, heldout=2, workers=1)
    return out


@pytest.fixture(scope="module")
def utts(corpus):
    return load_utterances(corpus, "metadata.csv", RATE, 20.0)


def audio_dataset(utts, seed: int = 7) -> UtteranceDataset:
    """Items are (index, augmented waveform)."""
    every = AugmentConfig(reverb_prob=0.5, noise_prob=0.7, telephone_prob=0.3)
    aug = Augmenter(every, seed, [u.path for u in utts])
    return UtteranceDataset(utts, lambda u: torch.from_numpy(u.load()), aug)


def waves(ds: UtteranceDataset, epoch: int) -> list[np.ndarray]:
    ds.set_epoch(epoch)
    return [ds[i].numpy() for i in range(len(ds))]


def test_augmentation_is_a_function_of_seed_epoch_and_index(utts):
    a, b = audio_dataset(utts), audio_dataset(utts)
    first = waves(a, 0)
    waves(b, 5)  # another epoch in between: no hidden state carries over
    assert all(np.array_equal(x, y) for x, y in zip(first, waves(b, 0)))
    np.random.seed(123), torch.manual_seed(123)  # global RNG state plays no part
    assert all(np.array_equal(x, y) for x, y in zip(first, waves(audio_dataset(utts), 0)))
    # Another epoch or another seed augments differently; the file itself is never changed.
    assert sum(not np.array_equal(x, y) for x, y in zip(first, waves(a, 1))) >= len(utts) // 2
    assert sum(not np.array_equal(x, y) for x, y in zip(first, waves(audio_dataset(utts, seed=8), 0))) >= len(utts) // 2
    plans = [audio_dataset(utts).augmenter.plan(0, i) for i in range(len(utts))]
    assert {p.speed for p in plans} == {0.9, 1.0, 1.1}
    assert any(p.rir >= 0 for p in plans) and any(p.noise for p in plans) and any(p.telephone for p in plans)
    assert np.array_equal(utts[0].load(), replace(utts[0], augment=None).load())


def collect(loader) -> list[list[bytes]]:
    return [[x.numpy().tobytes() for x in batch] for batch in loader]


def test_loader_with_workers_and_mid_epoch_restore_sees_the_same_audio(utts):
    """The loader tells the dataset its epoch before workers copy it; a restored loader continues
    the epoch with exactly the audio the uninterrupted one produced."""
    def loader(workers: int) -> ResumableDataLoader:
        return ResumableDataLoader(audio_dataset(utts), batch_size=2, seed=1, lengths=[u.num_samples for u in utts],
                                   num_workers=workers, collate_fn=list)

    ref = loader(0)
    ref.batch_sampler.set_epoch(1)
    expected = collect(ref)
    direct = audio_dataset(utts)
    direct.set_epoch(1)
    assert expected == [[direct[i].numpy().tobytes() for i in b] for b in ref.batch_sampler.batches(1)]
    parallel = loader(2)
    parallel.batch_sampler.set_epoch(1)
    assert collect(parallel) == expected
    resumed = loader(0)
    resumed.load_state_dict({"epoch": 1, "consumed_batches": 2})
    resumed.batch_sampler.set_epoch(1)
    assert collect(resumed) == expected[2:]


def test_transforms_change_what_they_claim():
    rng = np.random.default_rng(0)
    t = np.arange(RATE * 2) / RATE
    tone = (0.3 * np.sin(2 * np.pi * 1000 * t) + 0.3 * np.sin(2 * np.pi * 6000 * t)).astype(np.float32)
    assert len(speed_perturb(tone, 1.1)) == pytest.approx(len(tone) / 1.1, abs=2)
    assert len(speed_perturb(tone, 0.9)) == pytest.approx(len(tone) / 0.9, abs=2)

    def band_power(x: np.ndarray, lo: float, hi: float) -> float:
        spec = np.abs(np.fft.rfft(x)) ** 2
        freqs = np.fft.rfftfreq(len(x), 1 / RATE)
        return float(spec[(freqs >= lo) & (freqs < hi)].sum())

    phone = telephone(tone, RATE)
    assert len(phone) == len(tone)
    # 1 kHz passes the telephone band, 6 kHz (above 4 kHz Nyquist of 8 kHz sampling) does not.
    assert band_power(phone, 5500, 6500) < 1e-3 * band_power(phone, 900, 1100)

    noise = rng.standard_normal(len(tone)).astype(np.float32)
    noisy = add_noise(tone, noise, 10.0)
    snr = 10 * np.log10(np.mean(tone**2) / np.mean((noisy - tone) ** 2))
    assert snr == pytest.approx(10.0, abs=0.01)

    bank = rir_bank(0, RATE)
    assert bank is rir_bank(0, RATE) and len(bank) >= 16
    assert not np.array_equal(bank[0], rir_bank(1, RATE)[0])
    wet = reverberate(tone, bank[0])
    assert len(wet) == len(tone) and np.sqrt(np.mean(wet**2)) == pytest.approx(np.sqrt(np.mean(tone**2)), rel=1e-3)
    assert not np.allclose(wet, tone)


def test_lm_beam_search_fixes_a_spelling_greedy_gets_wrong(tmp_path, monkeypatch):
    from definitions.models.conformer.decoding import BeamConfig, BeamSearchDecoder
    from definitions.models.conformer.vocab import CharVocab

    monkeypatch.setenv("MLSYSTEM_LM_CACHE", str(tmp_path))
    vocab = CharVocab()
    text = ["the cat sat on the mat", "the dog sat on the log", "a cat and a dog", "the hat is on the cat"]
    ids = {c: i + 1 for i, c in enumerate(vocab.chars)}

    def emissions(target: str, confusions: dict[int, tuple[str, str]]) -> torch.Tensor:
        frames = []
        for pos, ch in enumerate(target):
            row = torch.full((len(vocab),), -9.0)
            if pos in confusions:  # acoustically, the wrong letter is a little more likely
                wrong, right = confusions[pos]
                row[ids[wrong]], row[ids[right]] = -0.4, -1.0
            else:
                row[ids[ch]] = -0.1
            blank = torch.full((len(vocab),), -9.0)
            blank[0] = -0.1
            frames += [row, blank]
        return torch.stack(frames).log_softmax(-1)[None]

    lp = emissions("the cat sat", {4: ("k", "c"), 9: ("e", "a")})
    lengths = torch.tensor([lp.shape[1]])
    greedy = vocab.decode_ctc(lp[0].argmax(-1).tolist())
    assert greedy == "the kat set"
    beam = BeamSearchDecoder(vocab.chars, text, BeamConfig(lm_order=5, lm_weight=1.0))
    assert beam.decode(lp, lengths) == ["the cat sat"]
    # Without LM weight the beam search agrees with greedy; clear audio is never overruled.
    assert BeamSearchDecoder(vocab.chars, text, BeamConfig(lm_order=5, lm_weight=0.0)).decode(lp, lengths) == [greedy]
    clear = emissions("the kat", {})
    assert beam.decode(clear, torch.tensor([clear.shape[1]])) == ["the kat"]
    assert list(tmp_path.glob("*.arpa")), "the ARPA file is cached"
    # The word LM with a lexicon fixes both words too; clear audio of a word outside the lexicon
    # comes out as a lexicon word (the price of the closed vocabulary).
    words = BeamSearchDecoder(vocab.chars, text, BeamConfig(lm_order=3, lm_weight=1.0, unit="word"))
    assert words.decode(lp, lengths) == ["the cat sat"]
    assert words.decode(clear, torch.tensor([clear.shape[1]])) == ["the cat"]
    assert list(tmp_path.glob("words-3-*.lexicon")), "the lexicon is cached beside the word ARPA file"


def test_a_warm_start_onto_another_corpus_keeps_both_lm_texts(tmp_path):
    """init_from loads the parent's state dict into a model built for the new corpus: the decoder's
    LM text is the parent's plus the new corpus' lm_text.txt, not the parent's alone."""
    from dataclasses import asdict

    from definitions.models.conformer.config import ConformerConfig
    from definitions.models.conformer.features import FeatureConfig
    from definitions.models.conformer.model import ConformerCTC
    from definitions.models.conformer.vocab import CharVocab

    params = {**asdict(ConformerConfig(d_model=16, num_layers=1, ffn_dim=16)), "optimizer": "adamw"}
    build = {"vocab": CharVocab().chars, "feature_config": vars(FeatureConfig())}
    (tmp_path / "a.txt").write_text("the parent corpus spoke this\n", encoding="utf-8")
    (tmp_path / "b.txt").write_text("the new corpus adds that\n", encoding="utf-8")
    parent = ConformerCTC(params, **build, lm_text_path=str(tmp_path / "a.txt"))
    checkpoint = {"state_dict": parent.state_dict()}
    parent.on_save_checkpoint(checkpoint)
    child = ConformerCTC(params, **build, lm_text_path=str(tmp_path / "b.txt"))
    child.load_state_dict(checkpoint["state_dict"], strict=False)
    assert child.lm_sentences == {"the parent corpus spoke this", "the new corpus adds that"}
    resumed = ConformerCTC(params, **build)  # a checkpoint alone (no corpus) decodes with its own text
    resumed.load_state_dict(checkpoint["state_dict"])
    assert resumed.lm_sentences == {"the parent corpus spoke this"}
