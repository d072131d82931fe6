"""Live metric series for charts: followed from ``metrics.jsonl`` by byte offset and kept
bounded on the server (row kinds and parsing come from :mod:`MLSystem.metrics_reader`).

Unlike the whole-file reads of plots, a live chart must never grow with the run's length, so
series are decimated as they stream in.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable

from MLSystem.metrics_reader import MetricsTail, is_resume, row_kind
from MLSystem.utils.metric_mode import better, metric_mode

MAX_POINTS = 1000  # per series sent to a browser (2x this before decimating again)


@dataclass
class Decimated:
    """A growing series kept at <= 2 * ``limit`` points by doubling its stride: the bounded
    cost of a live chart does not depend on the run's length."""

    limit: int = MAX_POINTS
    points: list[list[float]] = field(default_factory=list)
    stride: int = 1
    seen: int = 0
    last: list[float] | None = None

    def add(self, x: float, y: float) -> None:
        self.last = [x, y]
        if self.seen % self.stride == 0:
            self.points.append([x, y])
            if len(self.points) > 2 * self.limit:
                self.points = self.points[::2]
                self.stride *= 2
        self.seen += 1

    def data(self) -> list[list[float]]:
        if self.last is not None and (not self.points or self.points[-1] != self.last):
            return self.points + [self.last]
        return list(self.points)


@dataclass
class LiveSeries:
    """Loss and learning rate by step, validation metrics by epoch, run starts (resume markers)."""

    limit: int = MAX_POINTS
    loss: Decimated = field(default=None)  # type: ignore[assignment]
    lr: Decimated = field(default=None)  # type: ignore[assignment]
    epochs: list[dict[str, Any]] = field(default_factory=list)
    events: list[dict[str, Any]] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.clear()

    def clear(self) -> None:
        self.loss, self.lr = Decimated(self.limit), Decimated(self.limit)
        self.epochs, self.events = [], []

    def add_rows(self, rows: Iterable[dict[str, Any]]) -> int:
        """Add parsed metrics rows; returns how many were used (rows without a step are skipped)."""
        used = 0
        for row in rows:
            if not isinstance(row.get("step"), (int, float)):
                continue
            used += 1
            step, kind = row["step"], row_kind(row)
            if kind == "event":
                self.events.append(row)
            elif kind == "epoch":
                self.epochs.append(row)
            else:
                if isinstance(row.get("loss"), (int, float)):
                    self.loss.add(step, row["loss"])
                if isinstance(row.get("lr"), (int, float)):
                    self.lr.add(step, row["lr"])
        return used

    @property
    def resumes(self) -> list[dict[str, Any]]:
        """Runs after the first: where training resumed or was extended."""
        return [e for e in self.events if is_resume(e)]

    def val_points(self, key: str) -> list[list[float]]:
        return [[r["step"], r[key]] for r in self.epochs if isinstance(r.get(key), (int, float))]

    def epoch_keys(self) -> list[str]:
        """Metric names of the epoch rows (val_* first), without bookkeeping fields."""
        skip = {"step", "epoch", "kind", "time", "epoch_time"}
        keys = sorted({k for r in self.epochs for k in r if k not in skip})
        return sorted(keys, key=lambda k: (not k.startswith("val"), k))


class SeriesFollower:
    """A :class:`LiveSeries` kept current from its file by byte offset."""

    def __init__(self, path: Path, limit: int = MAX_POINTS):
        self.tail = MetricsTail(path)
        self.series = LiveSeries(limit)

    def poll(self) -> bool:
        """Read what was appended; True if the series changed."""
        rows = self.tail.poll()
        if self.tail.reset:
            self.series.clear()
        return bool(self.series.add_rows(rows)) or self.tail.reset


def best_metrics(epochs: list[dict[str, Any]], declared: dict[str, str] | None = None) -> dict[str, float]:
    """Best value of each validation metric, in the direction of ``utils.metric_mode``."""
    out: dict[str, float] = {}
    for row in epochs:
        for key, value in row.items():
            if not key.startswith("val") or not isinstance(value, (int, float)) or value != value:
                continue
            if key not in out or better(value, out[key], metric_mode(key, declared)):
                out[key] = value
    return out
