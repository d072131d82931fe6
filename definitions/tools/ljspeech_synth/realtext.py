"""Real prose for the corpus: sentences from packaged quotations, normalized and filtered, split
into train / held-out by a hash of the sentence (never by seed), so no held-out sentence is ever
trained on, whatever the seed, the hours or the source.

Sources (``--text-source``):

* ``fortunes``: Debian's ``fortunes`` / ``fortunes-min`` quotation files
  (``/usr/share/games/fortunes``; BSD licence of fortune-mod, see /usr/share/doc/fortunes/copyright);
* ``bundled``: ``real_text.txt`` beside this module, sentences drawn from those same files
  (licence and provenance in its header), so the demo works without any Debian package;
* ``auto``: ``fortunes`` when installed, else ``bundled``.
"""

from __future__ import annotations

import hashlib
import re
from functools import lru_cache
from pathlib import Path

from definitions.tools.ljspeech_synth.normalize import ABBREVIATIONS, clean_characters, normalize

FORTUNE_DIR = Path("/usr/share/games/fortunes")
BUNDLED = Path(__file__).with_name("real_text.txt")
# Files without prose a reader would say (ASCII art, code, jargon, non-English, one modern author).
SKIP_FILES = {"ascii-art", "computers", "debian", "linux", "linuxcookie", "perl", "zippy", "startrek",
              "knghtbrd", "translate-me", "paradoxum", "pratchett", "disclaimer", "definitions", "goedel"}
HELDOUT_PERCENT = 10  # share of sentences (by hash) that only ever appear in the held-out file
MIN_WORDS, MAX_WORDS, MAX_CHARS = 4, 28, 180
SPEAKABLE = re.compile(r"^[A-Za-z][A-Za-z ,.;:!?'\"-]*$")
# A sentence ends at . ! ? (plus closing quotes) followed by space and an upper-case start.
_SENTENCE_END = re.compile(r"(?<=[.!?])[\"')]*\s+(?=[\"'(]*[A-Z])")
_ACRONYM = re.compile(r"\b[A-Z]{2,}\b")


def sentence_key(normalized: str) -> str:
    """What makes two sentences "the same": lower-case letters and single spaces."""
    return " ".join(re.sub(r"[^a-z' ]", " ", normalized.lower()).split())


def is_heldout(normalized: str) -> bool:
    """True for the fixed ~10 % of sentences reserved for evaluation (a hash, not a seed)."""
    digest = hashlib.sha256(sentence_key(normalized).encode()).digest()
    return int.from_bytes(digest[:8], "big") % 100 < HELDOUT_PERCENT


def fortune_entries(path: Path) -> list[str]:
    """Entries of one fortune file (separated by ``%`` lines), attribution lines (``-- Author``) dropped."""
    entries, lines = [], []
    for line in path.read_text(encoding="utf-8", errors="replace").splitlines() + ["%"]:
        if line.strip() == "%":
            if lines:
                entries.append(" ".join(lines))
            lines = []
        elif not line.strip().startswith("--"):
            lines.append(line.strip())
    return entries


def split_sentences(paragraph: str) -> list[str]:
    """Sentences of a paragraph; no split after an abbreviation ("Mr.") or an initial ("J.")."""
    text, out, start = clean_characters(paragraph), [], 0
    for m in _SENTENCE_END.finditer(text):
        last_word = text[start:m.start()].rsplit(" ", 1)[-1]
        if last_word in ABBREVIATIONS or last_word == "St." or re.fullmatch(r"[A-Z]\.", last_word):
            continue
        out.append(text[start:m.start()].strip())
        start = m.end()
    out.append(text[start:].strip())
    return [s for s in out if s]


def speakable(text: str, normalized: str) -> bool:
    """A sentence worth speaking: plain letters and punctuation once normalized, 4-28 words,
    no acronyms (read letter by letter, they would not match their label) and balanced quotes."""
    words = normalized.split()
    return (MIN_WORDS <= len(words) <= MAX_WORDS and len(normalized) <= MAX_CHARS
            and SPEAKABLE.match(normalized) is not None and not _ACRONYM.search(text)
            and normalized.count('"') % 2 == 0 and "|" not in text and normalized[-1] in ".!?\"'")


def pairs_from_paragraphs(paragraphs: list[str]) -> list[tuple[str, str]]:
    """``(text, normalized_text)`` of every speakable sentence, first occurrence of each kept."""
    seen, out = set(), []
    for paragraph in paragraphs:
        for text in split_sentences(paragraph):
            spoken = normalize(text)
            key = sentence_key(spoken)
            if key not in seen and speakable(text, spoken):
                seen.add(key)
                out.append((text, spoken))
    return out


def fortune_paragraphs(folder: Path = FORTUNE_DIR) -> list[str]:
    files = sorted(p for p in folder.iterdir() if p.is_file() and not p.suffix and p.name not in SKIP_FILES)
    return [entry for f in files for entry in fortune_entries(f)]


def bundled_paragraphs() -> list[str]:
    lines = BUNDLED.read_text(encoding="utf-8").splitlines()
    return [line for line in lines if line.strip() and not line.startswith("#")]


def resolve_source(source: str) -> str:
    """``auto`` -> ``fortunes`` if the Debian files exist, else ``bundled``; a missing one is an error."""
    if source == "auto":
        return "fortunes" if FORTUNE_DIR.is_dir() else "bundled"
    if source == "fortunes" and not FORTUNE_DIR.is_dir():
        raise ValueError(f"--text-source fortunes: {FORTUNE_DIR} not found -- install it: sudo apt-get install "
                         "fortunes (or use --text-source bundled)")
    if source not in ("fortunes", "bundled"):
        raise ValueError(f"--text-source: {source!r} is not one of auto, fortunes, bundled")
    return source


@lru_cache(maxsize=4)
def real_sentences(source: str) -> tuple[list[tuple[str, str]], list[tuple[str, str]]]:
    """``(train, heldout)`` pairs of the resolved ``source``, in file order."""
    paragraphs = fortune_paragraphs() if source == "fortunes" else bundled_paragraphs()
    pairs = pairs_from_paragraphs(paragraphs)
    return [p for p in pairs if not is_heldout(p[1])], [p for p in pairs if is_heldout(p[1])]
