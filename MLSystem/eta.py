"""Queue ETAs: when each pending job should start and how long it should take.

Durations come from past runs: the mean epoch time recorded in each ``experiment.json``
(``epoch_seconds``), the job's own experiment first, else the most similar runs of the same
dataset/model/adapter; process start-up overhead is measured on finished jobs.
"""

from __future__ import annotations

import heapq
import statistics
import time
from dataclasses import dataclass
from typing import Any

from MLSystem.experiment_index import index_for_hints
from MLSystem.experiment_store import trained_epochs
from MLSystem.jobs import Job, Kind, Status
from MLSystem.metrics_reader import mean_epoch_seconds
from MLSystem.paths import ProjectPaths
from MLSystem.queue_store import JobQueue
from MLSystem.utils.clock import format_seconds, parse_iso

__all__ = ["Eta", "EtaModel", "estimate", "format_seconds", "DEFAULT_STARTUP_S"]

DEFAULT_STARTUP_S = 5.0  # process start + imports when no finished job measured it


@dataclass
class Eta:
    """When a pending job should start and how long it should take (seconds from now).
    ``lower_bound``: some job before it has no similar past run, so the start is at least this."""

    start_in: float | None
    duration: float | None
    lower_bound: bool = False


def _norm_value(v: Any) -> str:
    """One spelling per value, so ``lr=0.10`` on a command line matches a recorded ``0.1``."""
    if isinstance(v, bool):
        return str(v).lower()
    try:
        return repr(float(v))
    except (TypeError, ValueError):
        return str(v).lower()


class EtaModel:
    """Epoch durations measured in past runs (``epoch_seconds`` in ``experiment.json``), for estimates."""

    def __init__(self, project: ProjectPaths, finished: list[Job]):
        self.project = project
        # Runs are read from the experiments' query index, per experiment and per dataset/model
        # group as needed: 100,000 experiments are never loaded at once.
        self.index = index_for_hints(project)  # None: no estimates from past runs
        self._means: dict[str, float | None] = {}
        overheads = []
        for job in finished:
            t0, t1 = parse_iso(job.started), parse_iso(job.ended)
            mean = self.mean(job.experiment_id)
            if t0 and t1 and mean is not None and job.epochs_done is not None and job.epochs_before is not None:
                overheads.append(max(0.0, (t1 - t0) - (job.epochs_done - job.epochs_before) * mean))
        self.startup = statistics.median(overheads) if overheads else DEFAULT_STARTUP_S
        self._groups: dict[tuple, Any] = {}

    def _mean_of(self, experiment_id: str, recorded: float | None) -> float | None:
        if recorded is None:  # trained before experiment.json recorded epoch_seconds (or never)
            recorded = mean_epoch_seconds(self.project.experiment(experiment_id).metrics)
        self._means[experiment_id] = recorded
        return recorded

    def mean(self, experiment_id: str | None) -> float | None:
        """Mean epoch time of one experiment (None if it has not trained an epoch)."""
        if not experiment_id:
            return None
        if experiment_id not in self._means:
            recorded = self.index.epoch_seconds(experiment_id) if self.index else None
            if recorded is None:
                self._means[experiment_id] = None
            else:
                self._mean_of(experiment_id, recorded[0])
        return self._means[experiment_id]

    def epoch_time(self, job: Job) -> float | None:
        """The job's own experiment if it has trained, else the closest runs of the same
        dataset/model/adapter (most overrides equal to theirs; the median of those runs)."""
        own = self.mean(job.experiment_id)
        if own is not None:
            return own
        group = self._group(job.dataset, job.model, job.adapter)
        if group is None:
            return None
        means, index, median_all = group
        matches: dict[int, int] = {}
        for k, v in dict(a.split("=", 1) for a in job.args if "=" in a).items():
            for i in index.get((k, _norm_value(v)), ()):
                matches[i] = matches.get(i, 0) + 1
        if not matches:
            return median_all
        most = max(matches.values())
        return statistics.median(means[i] for i, n in matches.items() if n == most)

    def _group(self, dataset: str | None, model: str | None, adapter: str | None):
        """Runs of one dataset/model(/adapter): their means, a ``(key, value) -> runs`` index and
        the median of all, built once (1,000 pending jobs x 10,000 runs stays fast)."""
        key = (dataset, model, adapter)
        if key not in self._groups:
            means: list[float] = []
            index: dict[tuple[str, str], list[int]] = {}
            for eid, sel, values, recorded in (self.index.candidates(dataset, model) if self.index else ()):
                if adapter and sel.get("adapter") != adapter:
                    continue
                mean = self._means[eid] if eid in self._means else self._mean_of(eid, recorded)
                if mean is None:
                    continue
                for k, v in values.items():
                    index.setdefault((k, _norm_value(v)), []).append(len(means))
                means.append(mean)
            self._groups[key] = (means, index, statistics.median(means)) if means else None
        return self._groups[key]

    def trained(self, experiment_id: str | None) -> int:
        return trained_epochs(self.project.experiment(experiment_id)) if experiment_id else 0

    def duration(self, job: Job, trained: int) -> float | None:
        if job.kind != Kind.TRAIN.value or job.max_epochs is None:
            return None
        remaining = max(0, job.max_epochs - trained)
        if remaining == 0:
            return 0.5  # "already complete" exits without importing torch
        per_epoch = self.epoch_time(job)
        return None if per_epoch is None else self.startup + remaining * per_epoch


def estimate(queue: JobQueue, jobs: list[Job] | None = None, slots: int | None = None) -> dict[str, Eta]:
    """ETA of every pending job in run order, after what is running now, with ``slots`` jobs at a
    time (default: the active runner's slots, else 1).

    Each slot is a lane: when a lane frees, the first pending job in order that may start takes it
    (not before its back-off, nor before its experiment's previous job ends: one experiment never
    trains twice at once). A job that needs several GPUs still counts as one lane — an
    approximation that errs early for such jobs.
    """
    jobs = queue.list([Status.RUNNING, Status.PENDING]) if jobs is None else jobs
    if slots is None:
        slots = int((queue.active_runner() or {}).get("slots") or 1)
    model = EtaModel(queue.project, queue.list([Status.FINISHED]))
    trained: dict[str, int] = {}
    exp_free: dict[str, float] = {}  # experiment -> when its queued work ends
    lanes: list[float] = []  # when each busy lane frees, seconds from now
    lower = False
    out: dict[str, Eta] = {}
    for job in [j for j in jobs if j.status == Status.RUNNING.value]:
        key = job.experiment_id or ""
        done = trained.setdefault(key, job.epochs_before or 0)
        d = model.duration(job, done)
        started = parse_iso(job.started) or time.time()
        left = 0.0
        if d is None:
            lower = True
        else:
            left = max(0.0, d - (time.time() - started))
        lanes.append(left)
        if key:
            exp_free[key] = max(exp_free.get(key, 0.0), left)
        if job.max_epochs is not None:
            trained[key] = max(done, job.max_epochs)
    lanes += [0.0] * max(0, slots - len(lanes))
    heapq.heapify(lanes)
    waiting = []
    for job in sorted((j for j in jobs if j.status == Status.PENDING.value), key=Job.order_key):
        if job.held:
            out[job.id] = Eta(None, None)
        else:
            waiting.append(job)
    now = time.time()

    def ready(job: Job) -> float:
        """When the job may start at the earliest: its back-off, and its experiment's earlier job."""
        return max((job.not_before or 0) - now, exp_free.get(job.experiment_id, 0.0) if job.experiment_id else 0.0)

    # List scheduling, as the runner does: when a slot frees, the first job in order that may start
    # takes it (a job whose experiment is still training lets the next one go first).
    while waiting:
        free = lanes[0]
        i = next((k for k, j in enumerate(waiting) if ready(j) <= free), None)
        if i is None:  # nothing may start when this slot frees: it idles until the first one may
            heapq.heapreplace(lanes, min(ready(j) for j in waiting))
            continue
        job = waiting.pop(i)
        key = job.experiment_id or ""
        done = trained[key] if key in trained else model.trained(job.experiment_id)
        d = model.duration(job, done)
        out[job.id] = Eta(free, d, lower)
        if d is None:
            lower = True
        end = free + (d or 0.0)
        heapq.heapreplace(lanes, end)
        if key:
            exp_free[key] = end
        if job.max_epochs is not None:
            trained[key] = max(done, job.max_epochs)
    return out
