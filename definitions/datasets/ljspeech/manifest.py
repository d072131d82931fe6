"""The generator's side file ``utterances.csv``: which engine and voice made each wav.

``id|split|engine|voice|source|...`` with a header. Only the synthetic corpus has it; the dataset
reads it only when asked to select or exclude engines (leave-one-engine-out training).
"""

from __future__ import annotations

import csv
from pathlib import Path

MANIFEST = "utterances.csv"


def read_engines(root: Path) -> dict[str, str]:
    """``{utterance id: engine}`` from ``root/utterances.csv``."""
    path = root / MANIFEST
    if not path.is_file():
        raise FileNotFoundError(f"{path}: not found -- engines/exclude_engines need the generator's manifest "
                                "(python -m definitions.tools.ljspeech_synth writes it)")
    with open(path, encoding="utf-8", newline="") as fh:
        reader = csv.DictReader(fh, delimiter="|", quoting=csv.QUOTE_NONE, escapechar="\\")
        if "engine" not in (reader.fieldnames or []):
            raise ValueError(f"{path}: no 'engine' column (written by an older generator: regenerate the corpus)")
        return {row["id"]: row["engine"] for row in reader}


def engine_filter(root: Path, select: list[str], exclude: list[str]) -> dict[str, bool]:
    """``{id: keep}``: kept when its engine is in ``select`` (empty = all) and not in ``exclude``.
    Naming an engine the corpus does not contain is an error (a typo must not train on everything)."""
    engines = read_engines(root)
    known = sorted(set(engines.values()))
    unknown = [e for e in select + exclude if e not in known]
    if unknown:
        raise ValueError(f"engines/exclude_engines: {', '.join(unknown)} not in {root / MANIFEST} "
                         f"(it has: {', '.join(known)})")
    return {uid: (not select or e in select) and e not in exclude for uid, e in engines.items()}
