"""What the experiment index stores about one folder: its stamp and its row (``experiment_index``).

A folder is read through the experiment store's readers; the row's values come in :data:`COLS`
order (the columns of ``index_sqlite``'s table).
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from MLSystem import experiment_store as store
from MLSystem.errors import CorruptFileError
from MLSystem.paths import ExperimentPaths
from MLSystem.records import ExperimentRecord, ExperimentStatus

COLS = ("id", "dataset", "model", "adapter", "status", "epochs_done", "max_epochs", "created", "updated", "parent",
        "init_from", "identity_values", "epoch_seconds", "error", "metric_modes", "stamp")
_VALUES, _SECONDS = COLS.index("identity_values"), COLS.index("epoch_seconds")


def norm_value(v: Any) -> str:
    """One spelling per identity value (``lr=0.10`` on a command line matches a recorded ``0.1``;
    ``True`` and ``true`` alike), as the index's ``identity_kv`` table stores them."""
    if isinstance(v, bool):
        return str(v).lower()
    try:
        return repr(float(v))
    except (TypeError, ValueError):
        return str(v).lower()


def identity_pairs(row: tuple) -> list[tuple]:
    """The ``identity_kv`` rows of an index row: ``(key, normalized value, dataset, model,
    adapter, id, epoch_seconds)`` for each identity value."""
    values = json.loads(row[_VALUES])
    rest = (row[1], row[2], row[3], row[0], row[_SECONDS])
    return [(k, norm_value(v), *rest) for k, v in values.items()]


def scan_folders(root: str, *, stat: bool) -> dict[str, str]:
    """Folder names under ``root`` (with their stamp when ``stat``; else "")."""
    out: dict[str, str] = {}
    if not os.path.isdir(root):
        return out
    with os.scandir(root) as it:
        for d in it:
            if d.name.startswith(".") or not d.is_dir():
                continue
            out[d.name] = folder_stamp(d.path) if stat else ""
    return out


def folder_stamp(d: str) -> str:
    """The folder's mtime plus ``experiment.json``'s and ``state.json``'s (a file rewritten in
    place, not through the store, changes only its own mtime)."""
    out = []
    for path in (d, os.path.join(d, "experiment.json"), os.path.join(d, "state.json")):
        try:
            st = os.stat(path)
            out.append(f"{st.st_mtime_ns}.{st.st_size}")
        except OSError:
            out.append("-")
    return ":".join(out)


def row_from_files(d: str, name: str, stamp: str) -> tuple | None:
    """The index row of one folder (through the experiment store's readers), or None if it has
    no ``experiment.json``; a garbled one gives a "damaged" row carrying the reason."""
    exp = ExperimentPaths(Path(d))
    try:
        record = store.read_record(exp)
    except CorruptFileError as exc:
        record = ExperimentRecord.damaged(name, str(exc))
    except OSError as exc:
        record = ExperimentRecord.damaged(name, f"{exp.metadata}: cannot be read ({exc.strerror})")
    if record is None:
        return None
    try:
        state = store.read_state(exp) if record.status != ExperimentStatus.DAMAGED else None
    except (CorruptFileError, OSError):
        state = None
    done = state.epochs_completed if state is not None else int(record.epochs_done or 0)
    target = record.max_epochs or (state.max_epochs if state is not None else None)
    ident = record.identity or {}
    values = {**(ident.get("params") or {}), **(record.identity_values or {})}
    secs = None if "epoch_seconds" in record.missing else record.epoch_seconds
    sel = {k: getattr(record, k, None) or ident.get(k) or "" for k in ("dataset", "model", "adapter")}
    return (name, sel["dataset"], sel["model"], sel["adapter"], str(record.status or ""), done,
            target, record.created or "", record.updated or "", record.parent, ident.get("init_from"),
            json.dumps(values, separators=(",", ":"), default=str),
            float(secs) if isinstance(secs, (int, float)) else None, record.error,
            json.dumps(record.metric_modes or {}, separators=(",", ":")), stamp)
