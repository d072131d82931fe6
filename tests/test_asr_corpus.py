"""The multi-engine speech corpus: every synthesizer writes the LJSpeech layout, a missing one is a
clear error, text normalization reads like LJSpeech, the real-text split never leaks, the same seed
gives the same corpus, and the dataset keeps or drops engines for leave-one-engine-out."""

from __future__ import annotations

import csv
import warnings
from pathlib import Path

import pytest
import soundfile as sf
from conftest import synth_corpus

from definitions.datasets.ljspeech.datamodule import CorpusError, LJSpeechDataModule
from definitions.tools.ljspeech_synth.engines import REGISTRY, EngineMissing, engine_class, resolve_engines
from definitions.tools.ljspeech_synth.normalize import normalize
from definitions.tools.ljspeech_synth.realtext import (
    is_heldout,
    pairs_from_paragraphs,
    real_sentences,
    sentence_key,
    split_sentences,
)
from definitions.tools.ljspeech_synth.synth import main

RATE = 22050


def manifest(root: Path) -> list[dict]:
    with open(root / "utterances.csv", encoding="utf-8", newline="") as fh:
        return list(csv.DictReader(fh, delimiter="|", quoting=csv.QUOTE_NONE, escapechar="\\"))


def metadata(root: Path, name: str = "metadata.csv") -> list[list[str]]:
    return [line.split("|") for line in (root / name).read_text(encoding="utf-8").splitlines()]


# -- engines ---------------------------------------------------------------------------------------
@pytest.mark.parametrize("name", list(REGISTRY))
def test_each_engine_writes_a_valid_ljspeech_corpus(name, tmp_path):
    why = engine_class(name).missing()
    if why is not None:  # scripts/test.sh installs the Debian engines when it can
        pytest.skip(f"{name} not installed here: {why}")
    out = tmp_path / name
    synth_corpus(out, hours=0.003, seed=1, heldout=2, workers=2, engines=name)
    rows = metadata(out)
    made = {r["id"]: r for r in manifest(out)}
    assert rows and all(len(r) == 3 and r[1] and r[2] for r in rows)
    for uid, _, _ in rows + metadata(out, "heldout_text.csv"):
        info = sf.info(out / "wavs" / f"{uid}.wav")
        assert (info.samplerate, info.channels, info.subtype) == (RATE, 1, "PCM_16")
        assert 0.3 < info.duration < 20, (uid, info.duration)
        assert made[uid]["engine"] == name and made[uid]["voice"] in engine_class(name).voices
        assert int(made[uid]["samples"]) == info.frames
    assert len(metadata(out, "heldout_text.csv")) == 2  # once per engine
    again = tmp_path / "again"  # deterministic for every engine, whatever the worker count
    synth_corpus(again, hours=0.003, seed=1, heldout=2, workers=1, engines=name)
    assert (again / "utterances.csv").read_bytes() == (out / "utterances.csv").read_bytes()
    assert all((again / "wavs" / f"{uid}.wav").read_bytes() == (out / "wavs" / f"{uid}.wav").read_bytes()
               for uid, _, _ in rows)


def test_a_missing_engine_is_a_clear_error_and_auto_skips_it_with_a_warning(monkeypatch, capsys, tmp_path):
    flite = engine_class("flite")
    monkeypatch.setattr(flite, "missing", classmethod(lambda cls: "the flite program is not on PATH"))
    with pytest.raises(EngineMissing, match=r"engine 'flite' is not usable: the flite program is not on PATH "
                                            r"-- install it: sudo apt-get install flite"):
        resolve_engines("espeak,flite")
    assert "flite" not in [e.name for e in resolve_engines("auto")]
    assert "warning: --engines auto: skipping flite (the flite program is not on PATH" in capsys.readouterr().err
    assert main(["--out", str(tmp_path / "x"), "--engines", "flite", "--hours", "0.001"]) == 2
    assert "error: engine 'flite' is not usable" in capsys.readouterr().err
    with pytest.raises(ValueError, match="unknown engine 'piper'.*valid: espeak, flite, festival, auto"):
        resolve_engines("espeak,piper")


# -- text normalization ----------------------------------------------------------------------------
@pytest.mark.parametrize("text, spoken", [
    ("He had 3 cats.", "He had three cats."),
    ("It took 1,234 men.", "It took one thousand two hundred and thirty-four men."),
    ("Pi is 3.14 or so.", "Pi is three point one four or so."),
    ("It cost $7.50 today.", "It cost seven dollars and fifty cents today."),
    ("It cost $1 and £3.05.", "It cost one dollar and three pounds and five pence."),
    ("They paid $5 million.", "They paid five million dollars."),
    ("Prices rose 12% and then 2.5 per cent.", "Prices rose twelve percent and then two point five percent."),
    ("the 1st, 2nd, 3rd, 21st and 102nd", "the first, second, third, twenty-first and one hundred and second"),
    ("On May 3, 1984 it rained.", "On May third, nineteen eighty-four it rained."),
    ("In 1905, 1800 and 2005.", "In nineteen oh five, eighteen hundred and two thousand and five."),
    ("Back in the 1980s.", "Back in the nineteen eighties."),
    ("Jan. 1 at 7:05 p.m. or 10:00.", "January first at seven oh five p m or ten o'clock."),
    ("Mr. and Mrs. Smith met Dr. Jones.", "Mister and Missus Smith met Doctor Jones."),
    ("St. Paul lives on Baker St. now.", "Saint Paul lives on Baker Street now."),
    ("No. I live at No. 10, i.e. here.", "No. I live at number ten, that is here."),
    ("Salt & pepper, about 1/2 cup.", "Salt and pepper, about one half cup."),
    ("\u201cCaf\u00e9\u201d\u2014fine\u2026", '"Cafe" - fine...'),
    ("She said, 'I don't know what o'clock it is.'", "She said, I don't know what o'clock it is."),
])
def test_normalization_reads_numbers_money_dates_and_abbreviations_aloud(text, spoken):
    assert normalize(text) == spoken


def test_sentences_split_after_real_ends_not_after_abbreviations_or_initials():
    assert split_sentences('Mr. Smith met J. Jones at St. Ives. "Hi!" he said. Then he left.') == [
        "Mr. Smith met J. Jones at St. Ives.", '"Hi!" he said.', "Then he left."]
    pairs = pairs_from_paragraphs(["The IBM man left.", "Too short.", "A <b>bold</b> claim was made here.",
                                   "He paid $3 for 2 apples today.", "He paid $3 for 2 apples today!"])
    assert pairs == [("He paid $3 for 2 apples today.", "He paid three dollars for two apples today.")]


# -- the real-text split ---------------------------------------------------------------------------
def test_the_heldout_real_text_is_fixed_by_hash_and_never_in_training():
    train, held = real_sentences("bundled")
    assert len(train) > 2000 and 0.05 < len(held) / (len(train) + len(held)) < 0.15
    assert not {sentence_key(n) for _, n in train} & {sentence_key(n) for _, n in held}
    # The same sentence goes to the same side whatever its case or punctuation, and whatever the seed.
    assert all(is_heldout(n.upper().replace(",", "")) for _, n in held[:50])


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("mixed")
    synth_corpus(out, hours=0.02, seed=4, heldout=8, workers=2)
    return out


def test_no_heldout_sentence_is_in_the_training_metadata_and_templates_are_a_minority(corpus):
    trained = {sentence_key(r[2]) for r in metadata(corpus)}
    for name in ("heldout_text.csv", "heldout_sentences.csv", "heldout_voice.csv"):
        held = {sentence_key(r[2]) for r in metadata(corpus, name)}
        assert held and not held & trained, name
    made = {r["id"]: r for r in manifest(corpus)}
    sources = [made[r[0]]["source"] for r in metadata(corpus)]
    assert 0 < sources.count("template") < sources.count("real")
    assert {made[r[0]]["source"] for r in metadata(corpus, "heldout_text.csv")} == {"real"}


def test_lm_text_is_the_unspoken_training_pool_never_a_heldout_or_spoken_sentence(corpus):
    lm = [sentence_key(line) for line in (corpus / "lm_text.txt").read_text(encoding="utf-8").splitlines()]
    spoken = {sentence_key(r[2]) for r in metadata(corpus)}  # validation sentences come from these
    held = {sentence_key(r[2]) for r in metadata(corpus, "heldout_text.csv")}
    train_pool, held_pool = real_sentences("bundled")  # what synth_corpus uses
    assert len(lm) == len(train_pool) - len(spoken & {sentence_key(n) for _, n in train_pool})
    assert not set(lm) & spoken and not set(lm) & held
    assert not set(lm) & {sentence_key(n) for _, n in held_pool}


def test_same_seed_same_corpus_any_worker_count(corpus, tmp_path):
    again, other = tmp_path / "again", tmp_path / "other"
    synth_corpus(again, hours=0.02, seed=4, heldout=8, workers=1)
    synth_corpus(other, hours=0.02, seed=5, heldout=8, workers=2)
    for name in ("metadata.csv", "heldout_text.csv", "utterances.csv"):
        assert (again / name).read_bytes() == (corpus / name).read_bytes(), name
    wavs = sorted(p.name for p in (corpus / "wavs").iterdir())
    assert wavs == sorted(p.name for p in (again / "wavs").iterdir())
    assert all((again / "wavs" / w).read_bytes() == (corpus / "wavs" / w).read_bytes() for w in wavs)
    assert (other / "metadata.csv").read_bytes() != (corpus / "metadata.csv").read_bytes()


# -- the dataset keeps or drops engines ------------------------------------------------------------
def test_dataset_selects_and_excludes_engines_from_the_manifest(corpus, tmp_path, monkeypatch):
    # A corpus of two "engines": relabel half of the espeak files in a copy of the manifest.
    rows = manifest(corpus)
    lines = ["|".join(rows[0].keys())] + ["|".join({**r, "engine": "flite" if i % 2 else r["engine"]}.values())
                                          for i, r in enumerate(rows)]
    (corpus / "utterances.csv").rename(tmp_path / "utterances.csv")
    (corpus / "utterances.csv").write_text("\n".join(lines) + "\n", encoding="utf-8")
    engine_of = {r["id"]: r["engine"] for r in manifest(corpus)}
    base = {"path": str(corpus), "metadata": "metadata.csv", "val_metadata": "heldout_text.csv", "val_fraction": 0.05,
            "sample_rate": RATE, "max_seconds": 30.0, "on_bad_row": "skip", "seed": 0, "limit_samples": 0,
            "batch_size": 2, "num_workers": 0, "engines": "", "exclude_engines": ""}

    class NoAdapter:
        def get_transform(self, split):
            return None

        def collate_fn(self, split):
            return list

    def sets(**over):
        dm = LJSpeechDataModule({**base, **over}, NoAdapter())
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            dm.setup("fit")
        return ({engine_of[u.id] for u in dm.train_set.utterances}, {engine_of[u.id] for u in dm.val_set.utterances},
                len(dm.train_set))

    try:
        all_train, all_val, n_all = sets()
        assert all_train == all_val == {"espeak", "flite"}
        left_out = sets(exclude_engines="flite")
        assert left_out[:2] == ({"espeak"}, {"espeak"}) and 0 < left_out[2] < n_all
        assert sets(engines="flite")[:2] == ({"flite"}, {"flite"})
        with pytest.raises(CorpusError, match=r"engines/exclude_engines: festvial not in .*utterances.csv "
                                              r"\(it has: espeak, flite\)"):
            sets(exclude_engines="festvial")
    finally:
        (tmp_path / "utterances.csv").replace(corpus / "utterances.csv")
