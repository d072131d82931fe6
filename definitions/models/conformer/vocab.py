"""Character vocabulary for CTC: id 0 is the blank, then one id per character."""

from __future__ import annotations

import re
import unicodedata
from typing import Iterable

DEFAULT_CHARS = " abcdefghijklmnopqrstuvwxyz'"
_SPACES = re.compile(r"\s+")


class CharVocab:
    """``encode("hi there") -> [ids]``; ``decode_ctc(frame_ids)`` collapses repeats and blanks."""

    blank = 0

    def __init__(self, chars: str = DEFAULT_CHARS):
        if len(set(chars)) != len(chars) or " " not in chars:
            raise ValueError(f"vocabulary: characters must be unique and include a space, got {chars!r}")
        self.chars = chars
        self._index = {c: i + 1 for i, c in enumerate(chars)}

    def __len__(self) -> int:
        """Output classes including the blank."""
        return len(self.chars) + 1

    def normalize(self, text: str) -> str:
        """What the model is asked to write: lower case, accents stripped, hyphens as spaces,
        other characters outside the vocabulary dropped, single spaces."""
        text = unicodedata.normalize("NFKD", text.lower())
        text = text.replace("-", " ").replace("\u2019", "'")
        text = "".join(c if c in self._index else (" " if c.isspace() else "") for c in text)
        return _SPACES.sub(" ", text).strip()

    def encode(self, text: str) -> list[int]:
        return [self._index[c] for c in self.normalize(text)]

    def decode(self, ids: Iterable[int]) -> str:
        return "".join(self.chars[i - 1] for i in ids if i != self.blank)

    def decode_ctc(self, frame_ids: Iterable[int]) -> str:
        """Greedy CTC: merge repeated frame labels, drop blanks."""
        out, prev = [], None
        for i in frame_ids:
            i = int(i)
            if i != prev and i != self.blank:
                out.append(self.chars[i - 1])
            prev = i
        return _SPACES.sub(" ", "".join(out)).strip()
