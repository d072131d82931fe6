"""Experiment and checkpoint listings for the cockpit: cached, filtered, sorted, paged.

The listing itself is ``experiment_store.list_experiments``; this module only keeps the last
result for a few seconds (several tabs refreshing do not each rescan 10,000 folders) and adds
best validation metrics for the rows actually shown.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from typing import Any

from MLSystem.checkpoint_manager import CheckpointInfo, list_checkpoints
from MLSystem.experiment_store import ExperimentSummary, list_experiments
from MLSystem.gui.series import LiveSeries, SeriesFollower, best_metrics
from MLSystem.paths import ProjectPaths
from MLSystem.records import ExperimentStatus
from MLSystem.utils.metric_mode import describe

SORT_KEYS = ("updated", "created", "id", "dataset", "model", "adapter", "status", "epochs")


@dataclass
class Page:
    rows: list[dict[str, Any]]
    total: int  # rows matching the filter
    pages: int


def summary_row(s: ExperimentSummary) -> dict[str, Any]:
    record, done = s.record, s.epochs_done
    target = record.max_epochs or (s.state.max_epochs if s.state else None)
    row = {"id": s.id, "dataset": record.dataset, "model": record.model, "adapter": record.adapter,
           "status": record.status, "epochs_done": done, "max_epochs": target,
           "epochs": f"{done}/{target if target is not None else '?'}", "created": record.created,
           "updated": record.updated, "parent": record.parent,
           # the definition's declared metric directions, recorded by training (utils.metric_mode)
           "metric_modes": record.metric_modes or {}}
    if record.status == ExperimentStatus.DAMAGED:
        row["error"] = record.error
    return row


class ExperimentIndex:
    """``list_experiments`` as rows, refreshed at most every ``ttl`` seconds (thread-safe)."""

    def __init__(self, paths: ProjectPaths, ttl: float = 3.0):
        self.paths = paths
        self.ttl = ttl
        self._rows: list[dict[str, Any]] = []
        self._at = 0.0
        self._lock = threading.Lock()
        self._best: dict[str, SeriesFollower] = {}

    def rows(self, *, fresh: bool = False) -> list[dict[str, Any]]:
        with self._lock:
            if fresh or time.monotonic() - self._at > self.ttl:
                self._rows = [summary_row(s) for s in list_experiments(self.paths)]
                self._at = time.monotonic()
            return self._rows

    def invalidate(self) -> None:
        self._at = 0.0

    def page(self, *, query: str = "", dataset: str | None = None, model: str | None = None,
             status: str | None = None, sort: str = "updated", descending: bool = True, page: int = 1,
             per_page: int = 50) -> Page:
        """One page of the filtered, sorted table; ``query`` matches id/dataset/model/adapter/status."""
        q = query.strip().lower()
        rows = [r for r in self.rows()
                if (not dataset or r["dataset"] == dataset) and (not model or r["model"] == model)
                and (not status or r["status"] == status)
                and (not q or any(q in str(r[k]).lower() for k in ("id", "dataset", "model", "adapter", "status")))]
        key = sort if sort in SORT_KEYS else "updated"
        field_ = "epochs_done" if key == "epochs" else key
        rows.sort(key=lambda r: (r[field_] is None, r[field_] if r[field_] is not None else ""), reverse=descending)
        per_page = max(1, min(int(per_page), 500))
        pages = max(1, -(-len(rows) // per_page))
        page = max(1, min(int(page), pages))
        shown = [dict(r) for r in rows[(page - 1) * per_page: page * per_page]]
        for r in shown:
            r["best"] = self.best_text(r["id"], r["metric_modes"])
        return Page(shown, len(rows), pages)

    def children(self, experiment_id: str) -> list[str]:
        return [r["id"] for r in self.rows() if r["parent"] == experiment_id]

    def best(self, experiment_id: str, declared: dict[str, str] | None = None) -> dict[str, float]:
        """Best validation metrics, read incrementally from the metrics log (only new bytes), each in
        its direction: ``declared`` (default: the experiment's recorded ``metric_modes``), then its name."""
        if declared is None:
            declared = self.metric_modes(experiment_id)
        with self._lock:
            follower = self._best.get(experiment_id)
            if follower is None:
                follower = self._best[experiment_id] = SeriesFollower(self.paths.experiment(experiment_id).metrics)
        follower.poll()
        return best_metrics(follower.series.epochs, declared)

    def metric_modes(self, experiment_id: str) -> dict[str, str]:
        """The declared metric directions recorded in the experiment's metadata ({} if none)."""
        row = next((r for r in self.rows() if r["id"] == experiment_id), None)
        return row["metric_modes"] if row else {}

    def best_text(self, experiment_id: str, declared: dict[str, str] | None = None) -> str:
        """``val_loss 0.31 · val_acc 0.92``; a metric whose direction is a guess says so (``(min?)``)."""
        if declared is None:
            declared = self.metric_modes(experiment_id)
        return " · ".join(describe(k, v, declared) for k, v in sorted(self.best(experiment_id, declared).items()))

    def series(self, experiment_id: str) -> LiveSeries:
        follower = SeriesFollower(self.paths.experiment(experiment_id).metrics)
        follower.poll()
        return follower.series


@dataclass
class CheckpointRow:
    experiment_id: str
    dataset: str
    model: str
    adapter: str
    info: CheckpointInfo

    def as_dict(self) -> dict[str, Any]:
        return {"key": f"{self.experiment_id}/{self.info.name}", "experiment_id": self.experiment_id,
                "name": self.info.name, "dataset": self.dataset, "model": self.model, "adapter": self.adapter,
                "epoch": self.info.epochs_done, "size": self.info.size, "size_mb": round(self.info.size / 1e6, 2),
                "created": self.info.modified}


@dataclass
class CheckpointIndex:
    """Checkpoints of the (filtered) experiments, newest experiments first."""

    experiments: ExperimentIndex
    _cache: dict[str, tuple[float, list[CheckpointInfo]]] = field(default_factory=dict)

    def list(self, *, model: str | None = None, dataset: str | None = None, experiment: str | None = None,
             limit: int = 5000) -> list[CheckpointRow]:
        out: list[CheckpointRow] = []
        for r in self.experiments.rows():
            if (model and r["model"] != model) or (dataset and r["dataset"] != dataset) \
                    or (experiment and r["id"] != experiment):
                continue
            for info in self._checkpoints(r["id"]):
                out.append(CheckpointRow(r["id"], r["dataset"], r["model"], r["adapter"], info))
            if len(out) >= limit:
                break
        return out

    def _checkpoints(self, experiment_id: str) -> list[CheckpointInfo]:
        exp = self.experiments.paths.experiment(experiment_id)
        try:
            mtime = exp.checkpoints.stat().st_mtime
        except FileNotFoundError:
            return []
        cached = self._cache.get(experiment_id)
        if cached is None or cached[0] != mtime:
            cached = self._cache[experiment_id] = (mtime, list_checkpoints(exp))
        return cached[1]
