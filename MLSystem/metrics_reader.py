"""Reading an experiment's ``metrics.jsonl`` (written by ``callbacks.JobLoggingCallback``).

Rows come in three kinds, all carrying the global ``step``:

* step rows ``{"step", "epoch", "loss", "lr", "time"}``,
* epoch rows ``{"kind": "epoch", "step", "epoch", "epoch_time", "val_*"..., "train_*"...}``,
* event rows ``{"event": "new" | "resume" | "extend", "step", "epoch", "max_epochs"}`` marking
  where each training run started (resume points in plots and live charts).

No torch here: plots, the loader and the cockpit read metrics without importing it.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


def parse_lines(data: bytes) -> list[dict[str, Any]]:
    """Rows of complete JSON lines; a line torn by a kill mid-write is skipped."""
    lines = [line for line in data.splitlines() if line.strip()]
    try:  # one C-level parse of the whole file is ~3x faster than a json.loads per line
        rows = json.loads(b"[" + b",".join(lines) + b"]")
        if all(isinstance(r, dict) for r in rows):
            return rows
    except (json.JSONDecodeError, UnicodeDecodeError):
        pass
    rows = []
    for line in lines:
        if not line.strip():
            continue
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


class MetricsTail:
    """Incremental reader: each :meth:`poll` returns only rows appended since the last call.

    Reads from a byte offset and keeps an incomplete last line for the next poll, so a live view
    costs O(new bytes), not O(file). If the file shrank (a resume dropped rows past the restored
    step), it starts over and :attr:`reset` is set for that poll.
    """

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)
        self.offset = 0
        self.reset = False

    def poll(self) -> list[dict[str, Any]]:
        self.reset = False
        try:
            size = self.path.stat().st_size
        except FileNotFoundError:
            return []
        if size < self.offset:
            self.offset, self.reset = 0, True
        if size == self.offset:
            return []
        with open(self.path, "rb") as fh:
            fh.seek(self.offset)
            data = fh.read(size - self.offset)
        complete = data.rfind(b"\n") + 1
        self.offset += complete
        return parse_lines(data[:complete])


@dataclass
class MetricSeries:
    """A metrics log split by row kind."""

    steps: list[dict[str, Any]] = field(default_factory=list)
    epochs: list[dict[str, Any]] = field(default_factory=list)
    events: list[dict[str, Any]] = field(default_factory=list)

    @classmethod
    def from_rows(cls, rows: list[dict[str, Any]]) -> "MetricSeries":
        out = cls()
        for row in rows:
            if "event" in row:
                out.events.append(row)
            elif row.get("kind") == "epoch":
                out.epochs.append(row)
            else:
                out.steps.append(row)
        return out

    def resumes(self) -> list[dict[str, Any]]:
        """Event rows of runs that continued an existing experiment (resume / extend)."""
        return [e for e in self.events if e.get("event") != "new"]

    def epoch_metric_names(self, prefix: str = "val_") -> list[str]:
        names: dict[str, None] = {}
        for row in self.epochs:
            for key, value in row.items():
                if key.startswith(prefix) and isinstance(value, (int, float)):
                    names[key] = None
        return list(names)


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
