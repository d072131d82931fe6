"""Reading an experiment's ``metrics.jsonl`` (written by ``callbacks.JobLoggingCallback``).

Rows come in three kinds, all carrying the global ``step``:

* step rows ``{"step", "epoch", "loss", "lr", "time"}``,
* epoch rows ``{"kind": "epoch", "step", "epoch", "epoch_time", "val_*"..., "train_*"...}``,
* event rows ``{"event": "new" | "resume" | "extend", "step", "epoch", "max_epochs", "mid_epoch"}``
  marking where each training run started (resume points in plots and live charts; ``epoch`` is
  the 0-based index of the epoch the run starts in).

No torch here: plots, the loader and the cockpit read metrics without importing it.
"""

from __future__ import annotations

import contextlib
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable

from MLSystem.records import Action
from MLSystem.utils.tail import FileTail


def parse_lines(data: bytes) -> list[dict[str, Any]]:
    """Rows of complete JSON lines; a line torn by a kill mid-write is skipped."""
    lines = [line for line in data.splitlines() if line.strip()]
    # One C-level parse of the whole file is ~3x faster than a json.loads per line; a torn or
    # foreign line makes it fail, and then the lines are parsed one by one.
    with contextlib.suppress(json.JSONDecodeError, UnicodeDecodeError):
        rows = json.loads(b"[" + b",".join(lines) + b"]")
        if all(isinstance(r, dict) for r in rows):
            return rows
    return parse_rows(lines)


def parse_rows(lines: Iterable[str | bytes]) -> list[dict[str, Any]]:
    """Rows of JSON lines one by one; torn or foreign lines (not an object) are skipped."""
    rows = []
    for line in lines:
        try:
            row = json.loads(line)
        except (json.JSONDecodeError, UnicodeDecodeError):
            continue
        if isinstance(row, dict):
            rows.append(row)
    return rows


def read_rows(path: str | os.PathLike) -> list[dict[str, Any]]:
    """Every row of a metrics file ([] if it does not exist)."""
    try:
        return parse_lines(Path(path).read_bytes())
    except FileNotFoundError:
        return []


def row_kind(row: dict[str, Any]) -> str:
    """``"event"``, ``"epoch"`` or ``"step"``."""
    if "event" in row:
        return "event"
    return "epoch" if row.get("kind") == "epoch" else "step"


def is_resume(event: dict[str, Any]) -> bool:
    """An event row of a run that continued an existing experiment (resume / extend)."""
    return event.get("event") != Action.NEW


def run_label(event: dict[str, Any]) -> str:
    """Where a run started, in the CLI's words: ``resume mid-epoch 5``, ``extend after epoch 4``."""
    kind, index = event.get("event", "run"), int(event.get("epoch") or 0)
    if event.get("mid_epoch"):
        return f"{kind} mid-epoch {index + 1}"
    if "mid_epoch" in event:
        return f"{kind} after epoch {index}"
    return f"{kind} in epoch {index + 1}"  # rows written before the flag existed


class MetricsTail:
    """Incremental reader: each :meth:`poll` returns only rows appended since the last call.

    Built on :class:`~MLSystem.utils.tail.FileTail` (byte offsets; an incomplete last line waits
    for its newline). If the file shrank or was replaced (a resume drops rows past the restored
    step), it starts over and :attr:`reset` is set for that poll.
    """

    def __init__(self, path: str | os.PathLike):
        self._tail = FileTail(Path(path))
        self.reset = False

    def poll(self) -> list[dict[str, Any]]:
        chunk = self._tail.read()
        self.reset = chunk.reset
        return parse_rows(chunk.lines)


@dataclass
class MetricSeries:
    """A metrics log split by row kind."""

    steps: list[dict[str, Any]] = field(default_factory=list)
    epochs: list[dict[str, Any]] = field(default_factory=list)
    events: list[dict[str, Any]] = field(default_factory=list)

    @classmethod
    def from_rows(cls, rows: list[dict[str, Any]]) -> "MetricSeries":
        out = cls()
        lists = {"event": out.events, "epoch": out.epochs, "step": out.steps}
        for row in rows:
            lists[row_kind(row)].append(row)
        return out

    def resumes(self) -> list[dict[str, Any]]:
        """Event rows of runs that continued an existing experiment (resume / extend)."""
        return [e for e in self.events if is_resume(e)]

    def epoch_times(self) -> list[float]:
        """Measured durations of the epochs (seconds)."""
        return [float(r["epoch_time"]) for r in self.epochs
                if isinstance(r.get("epoch_time"), (int, float)) and not isinstance(r.get("epoch_time"), bool)]

    def epoch_metric_names(self, prefix: str = "val_") -> list[str]:
        names: dict[str, None] = {}
        for row in self.epochs:
            for key, value in row.items():
                if key.startswith(prefix) and isinstance(value, (int, float)):
                    names[key] = None
        return list(names)


def mean_epoch_seconds(path: str | os.PathLike) -> float | None:
    """Mean measured epoch duration of a metrics log, or None before the first epoch ended
    (``execute_train`` records it in ``experiment.json``; queue ETAs read it from there)."""
    times = MetricSeries.from_rows(read_rows(path)).epoch_times()
    return round(sum(times) / len(times), 3) if times else None


def downsample(xs: list[float], ys: list[float], max_points: int) -> tuple[list[float], list[float]]:
    """At most ``max_points`` points that keep each bucket's min and max (peaks stay visible)."""
    import numpy as np

    n = len(xs)
    if n <= max_points or max_points < 4:
        return list(xs), list(ys)
    buckets = max_points // 2
    edges = np.arange(buckets + 1) * n // buckets
    y = np.asarray(ys, dtype=float)
    starts = edges[:-1]
    i_min = starts + np.array([np.argmin(y[a:b]) for a, b in zip(starts, edges[1:])])
    i_max = starts + np.array([np.argmax(y[a:b]) for a, b in zip(starts, edges[1:])])
    keep = np.unique(np.concatenate([i_min, i_max]))  # sorted, so the line stays in x order
    x = np.asarray(xs)
    return x[keep].tolist(), y[keep].tolist()
