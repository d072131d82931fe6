"""Experiment and checkpoint listings for the cockpit: cached, filtered, sorted, paged.

The listing comes from the query index over the experiment folders (``experiment_index``,
SQLite): refreshed at most every few seconds (several tabs do not each rescan the folders), paged
and filtered by SQL, with best validation metrics added for the rows actually shown.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from typing import Any, Iterator

from MLSystem.checkpoint_manager import CheckpointInfo, list_checkpoints
from MLSystem.experiment_index import ExperimentIndexDB
from MLSystem.gui.series import LiveSeries, SeriesFollower, best_metrics
from MLSystem.paths import ProjectPaths
from MLSystem.utils.metric_mode import describe

_BATCH = 500  # index rows read at a time by the checkpoint listing
SORT_KEYS = ("updated", "created", "id", "dataset", "model", "adapter", "status", "epochs")


@dataclass
class Page:
    rows: list[dict[str, Any]]
    total: int  # rows matching the filter
    pages: int


class ExperimentIndex:
    """The experiment listing (query index), refreshed at most every ``ttl`` seconds (thread-safe)."""

    def __init__(self, paths: ProjectPaths, ttl: float = 3.0):
        self.paths = paths
        self.ttl = ttl
        self._rows: list[dict[str, Any]] = []
        self._at = 0.0
        self._lock = threading.Lock()
        self._best: dict[str, SeriesFollower] = {}
        self._db = None
        self._db_at = 0.0
        self._db_lock = threading.Lock()

    def rows(self, *, fresh: bool = False) -> list[dict[str, Any]]:
        with self._lock:
            if fresh or time.monotonic() - self._at > self.ttl:
                if fresh:
                    self._db_at = 0.0
                self._rows = self.indexed().all_rows()  # the query index: 100,000 rows in ~0.5 s
                self._at = time.monotonic()
            return self._rows

    def invalidate(self) -> None:
        self._at = 0.0
        self._db_at = 0.0

    def page(self, *, query: str = "", dataset: str | None = None, model: str | None = None,
             status: str | None = None, sort: str = "updated", descending: bool = True, page: int = 1,
             per_page: int = 50) -> Page:
        """One page of the filtered, sorted table; ``query`` matches id/dataset/model/adapter/status.
        Served by the SQLite query index (``experiment_index``), refreshed at most every ``ttl`` s."""
        per_page = max(1, min(int(per_page), 500))
        shown, total = self.indexed().page(query=query, dataset=dataset, model=model, status=status, sort=sort,
                                           descending=descending, page=page, per_page=per_page)
        for r in shown:
            r["best"] = self.best_text(r["id"], r["metric_modes"])
        return Page(shown, total, max(1, -(-total // per_page)))

    def indexed(self):
        """The query index, brought up to date at most every ``ttl`` seconds (one refresh at a time)."""
        with self._db_lock:
            if self._db is None:
                self._db = ExperimentIndexDB(self.paths)
                self._db.refresh()  # builds it if missing: the one time a visitor waits for the files
                self._db_at = time.monotonic()
            elif time.monotonic() - self._db_at > self.ttl and self._db.refresh_if_idle() is not None:
                self._db_at = time.monotonic()
            return self._db

    def building(self) -> tuple[int, int] | None:
        """(folders read, folders to read) while the index reads many folders (its first build), else None."""
        db = self._db
        return db.progress if db is not None else None

    def verify(self) -> None:
        """Full check of the index against every folder (catches hand edits); in the background."""
        self.indexed().refresh(full=True)

    def children(self, experiment_id: str) -> list[str]:
        return self.indexed().children(experiment_id)  # one query, not every row (100,000: ~1 s)

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
        return self.indexed().metric_modes(experiment_id)

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
        for r in self._experiments(model, dataset, experiment):
            for info in self._checkpoints(r["id"]):
                out.append(CheckpointRow(r["id"], r["dataset"], r["model"], r["adapter"], info))
            if len(out) >= limit:
                break
        return out

    def _experiments(self, model: str | None, dataset: str | None, experiment: str | None) -> Iterator[dict[str, Any]]:
        """The (filtered) experiments, most recently updated first, read from the query index a
        page at a time: listing 5,000 checkpoints reads ~2,500 rows, not all 100,000."""
        db = self.experiments.indexed()
        if experiment:
            yield from (r for r in db.page(query=experiment, per_page=500)[0] if r["id"] == experiment)
            return
        page = 1
        while True:
            rows, total = db.page(model=model, dataset=dataset, page=page, per_page=_BATCH)
            yield from rows
            if page * _BATCH >= total:
                return
            page += 1

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
