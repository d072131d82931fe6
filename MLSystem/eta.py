"""Queue ETAs: when each pending job should start and how long it should take.

Durations come from past runs: the mean epoch time recorded in each ``experiment.json``
(``epoch_seconds``), the job's own experiment first, else the most similar runs of the same
dataset/model/adapter; process start-up overhead is measured on finished jobs.
"""

from __future__ import annotations

import heapq
import statistics
import time
from collections import Counter
from dataclasses import dataclass
from itertools import chain

from MLSystem.experiment_index import index_for_hints
from MLSystem.experiment_store import trained_epochs
from MLSystem.index_rows import norm_value
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


def _pairs(job: Job) -> set[tuple[str, str]]:
    """The job's ``key=value`` arguments as ``(key, normalized value)`` (as the index stores them)."""
    return {(k, norm_value(v)) for k, v in dict(a.split("=", 1) for a in job.args if "=" in a).items()}


class EtaModel:
    """Epoch durations measured in past runs (``epoch_seconds`` in ``experiment.json``), for estimates.

    Runs are looked up in the experiments' query index: a job's own experiment, else the runs
    that share some of its values (the index's ``identity_kv`` table), so 100,000 experiments
    are never all read. ``jobs``: the jobs about to be estimated, looked up together.
    """

    def __init__(self, project: ProjectPaths, finished: list[Job], jobs: list[Job] = ()):
        self.project = project
        self.index = index_for_hints(project)  # None: no estimates from past runs
        self._means: dict[str, float | None] = {}
        # Every experiment of these jobs in one query, not one per job.
        self._asked = {j.experiment_id for j in (*finished, *jobs) if j.experiment_id} if self.index else set()
        self._recorded = self.index.epoch_seconds_of(self._asked) if self.index else {}  # id -> (seconds,)
        self._pending = {(j.dataset, j.model, j.adapter): set() for j in jobs}
        for j in jobs:
            self._pending[(j.dataset, j.model, j.adapter)].update(_pairs(j))
        overheads = []
        for job in finished:
            t0, t1 = parse_iso(job.started), parse_iso(job.ended)
            mean = self.mean(job.experiment_id)
            if t0 and t1 and mean is not None and job.epochs_done is not None and job.epochs_before is not None:
                overheads.append(max(0.0, (t1 - t0) - (job.epochs_done - job.epochs_before) * mean))
        self.startup = statistics.median(overheads) if overheads else DEFAULT_STARTUP_S
        self._postings: dict[tuple, dict[tuple[str, str], list[str]]] = {}
        self._similar: dict[tuple, float | None] = {}
        self._median_all: dict[tuple, float | None] = {}

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
            if experiment_id in self._asked:
                one = self._recorded.get(experiment_id)  # None: not indexed (a new experiment)
            else:
                one = self.index.epoch_seconds(experiment_id) if self.index else None
            if one is None:
                self._means[experiment_id] = None
            else:
                self._mean_of(experiment_id, one[0])
        return self._means[experiment_id]

    def epoch_time(self, job: Job) -> float | None:
        """The job's own experiment if it has trained, else the closest runs of the same
        dataset/model/adapter (most of the job's values equal to theirs; the median of those
        runs), else the median of all of them."""
        own = self.mean(job.experiment_id)
        if own is not None:
            return own
        group = (job.dataset, job.model, job.adapter)
        postings = self._postings_of(group, _pairs(job))
        # Jobs of a sweep differ in values no run has (a new seed): they share one answer.
        pairs = tuple(sorted(p for p in _pairs(job) if postings.get(p)))
        if (group, pairs) not in self._similar:
            # How many of the job's values each run shares (C-level counting over the lists).
            matches = Counter(chain.from_iterable(postings[p] for p in pairs))
            if matches:
                most = max(matches.values())
                similar = statistics.median(self._means[i] for i, n in matches.items() if n == most)
            else:
                similar = self._median_of_all(group)
            self._similar[(group, pairs)] = similar
        return self._similar[(group, pairs)]

    def _postings_of(self, group: tuple, pairs: set[tuple[str, str]]) -> dict[tuple[str, str], list[str]]:
        """``(key, value) -> runs`` (those with a mean epoch time) of a group, for the values of
        every job of the group at once (the ones passed to the constructor) and ``pairs``."""
        postings = self._postings.setdefault(group, {})
        missing = [p for p in {*pairs, *self._pending.pop(group, ())} if p not in postings]
        if missing and self.index is not None:
            for pair, runs in self.index.runs_sharing(*group, missing).items():
                for eid, recorded in runs:
                    if eid not in self._means:
                        self._mean_of(eid, recorded)
                postings[pair] = [eid for eid, _ in runs if self._means[eid] is not None]
        return postings

    def _median_of_all(self, group: tuple) -> float | None:
        if group not in self._median_all:
            median, unrecorded = self.index.epoch_seconds_median(*group) if self.index else (None, [])
            more = [m for eid in unrecorded
                    if (m := self._means[eid] if eid in self._means else self._mean_of(eid, None)) is not None]
            if more:  # runs recorded before epoch_seconds was: all values needed (rare)
                median = statistics.median(self.index.group_epoch_seconds(*group) + more)
            self._median_all[group] = median
        return self._median_all[group]

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
    model = EtaModel(queue.project, queue.list([Status.FINISHED]), jobs)
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
