"""Reading ``metadata.csv`` exactly as LJSpeech writes it.

One utterance per line: ``id|text|normalized_text``, UTF-8, no header and no quoting (a ``"``
is part of the text, so Python's ``csv`` module must not be used). Rules for other files in
that layout:

* blank lines are ignored;
* a missing or empty third column falls back to ``text`` (counted in ``normalized_from_text``);
* a line that is not UTF-8, has more than three columns, an empty id or text, or a repeated id
  is a problem: reported with its line number, never read as a wrong label.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path


@dataclass(frozen=True)
class Row:
    id: str
    text: str
    normalized_text: str


@dataclass
class MetadataFile:
    path: Path
    rows: list[Row] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)  # "metadata.csv:12: why"
    normalized_from_text: int = 0


def read_metadata(path: Path) -> MetadataFile:
    """Parse ``path``; bad lines go to ``problems`` (the caller decides to skip or fail)."""
    if not path.is_file():
        raise FileNotFoundError(f"{path}: metadata file not found (expected LJSpeech layout: metadata.csv + wavs/)")
    out = MetadataFile(path)
    seen: set[str] = set()
    for number, raw in enumerate(path.read_bytes().split(b"\n"), start=1):
        raw = raw.rstrip(b"\r")
        if not raw.strip():
            continue
        where = f"{path.name}:{number}"
        try:
            line = raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            out.problems.append(f"{where}: not valid UTF-8 (byte {raw[exc.start]:#04x} at column {exc.start + 1})")
            continue
        parts = line.split("|")
        if len(parts) < 2 or len(parts) > 3:
            out.problems.append(f"{where}: expected id|text|normalized_text, found {len(parts)} column(s)")
            continue
        uid, text = parts[0].strip(), parts[1].strip()
        normalized = parts[2].strip() if len(parts) == 3 else ""
        if not uid or not text:
            out.problems.append(f"{where}: empty {'id' if not uid else 'text'}")
            continue
        if uid in seen:
            out.problems.append(f"{where}: duplicate id {uid!r}")
            continue
        seen.add(uid)
        if not normalized:
            normalized = text
            out.normalized_from_text += 1
        out.rows.append(Row(uid, text, normalized))
    return out
