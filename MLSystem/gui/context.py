"""What every page and the API share in one cockpit process: the project, caches, the token."""

from __future__ import annotations

import contextlib
import importlib
import threading
import time
from dataclasses import dataclass, field

from MLSystem.eta import Eta, estimate
from MLSystem.events.broker import Broker
from MLSystem.gui.activity import Activity
from MLSystem.gui.index import CheckpointIndex, ExperimentIndex
from MLSystem.gui.inference import ModelCache
from MLSystem.jobs import Job, Status
from MLSystem.paths import ProjectPaths
from MLSystem.queue_store import JobQueue
from MLSystem.registry import Registry
from MLSystem.tune.report import importance_module
from MLSystem.tune.store import list_study_names

ETA_TTL_S = 10.0  # ETAs scan the experiment listing and the queue: recomputed at most this often
ETA_QUIET_S, ETA_WAIT_AT_MOST_S = 0.3, 5.0  # background ETAs: after this much quiet, or at most this long
VERIFY_AFTER_S = 60.0  # the index's full check (catches hand edits) runs this often, first after startup
# What the study pages need, imported one step at a time so that a visitor waits behind one step
# at most: Optuna (~0.2 s), then its importance package without scikit-learn (tune.report).
STUDY_IMPORTS = ("optuna", "optuna.storages.journal", importance_module)


@dataclass
class Cockpit:
    paths: ProjectPaths
    token: str | None = None
    events: Broker | None = None  # the event stream of /api/ws, which the live view follows too
    experiments: ExperimentIndex = field(init=False)
    checkpoints: CheckpointIndex = field(init=False)
    models: ModelCache = field(init=False)
    activity: Activity = field(default_factory=Activity)
    _etas: tuple[float, dict[str, Eta]] = (0.0, {})
    _eta_lock: threading.Lock = field(default_factory=threading.Lock)
    _eta_queued: threading.Event = field(default_factory=threading.Event)

    def __post_init__(self) -> None:
        self.experiments = ExperimentIndex(self.paths)
        self.checkpoints = CheckpointIndex(self.experiments)
        self.models = ModelCache(self.paths)

    def queue(self) -> JobQueue:
        """A queue handle per call: handles are cheap and their lock objects are not shared across threads."""
        return JobQueue(self.paths)

    def registry(self) -> Registry:
        return Registry.load(self.paths)

    def warm_up(self) -> None:
        """Prepare what the first visitors need, without slowing them down: the experiments' query
        index (built if missing: ~40 s at 100,000) and the rows of the experiments page's first
        page, then — each step only once no request was served for a while (``Activity``: the
        steps hold the GIL, which the pages' requests need) — the ETAs and, if there are studies,
        Optuna (~0.3 s of imports, in steps). Then, every ``VERIFY_AFTER_S``, the full check of the
        index against every folder (hand edits). Never returns: run it in a daemon thread."""
        self.experiments.page()  # builds / refreshes the index, reads the first page's best metrics
        self.activity.wait_quiet()
        self.etas(self.queue().list([Status.RUNNING, Status.PENDING]))
        if list_study_names(self.paths):
            for module in STUDY_IMPORTS:
                self.activity.wait_quiet()
                with contextlib.suppress(ImportError):  # only a head start: the study page imports what it uses
                    module() if callable(module) else importlib.import_module(module)
        while True:  # a daemon thread: ends with the cockpit
            time.sleep(VERIFY_AFTER_S)
            self.activity.wait_quiet()
            self.experiments.verify()

    def etas(self, jobs: list[Job], *, wait: bool = True) -> dict[str, Eta]:
        """ETAs of pending jobs, cached for ``ETA_TTL_S`` (blocking: call from a worker thread).

        ``wait=False``: the cached ETAs at once (possibly stale, or {}), and a stale cache is
        recomputed in a background thread — a page shows its jobs without waiting for them
        (~0.2 s for 1,000 jobs at 10,000 experiments, 0.26 s for 100 jobs at 100,000, under load)."""
        if not wait:
            at, cached = self._etas
            if self._stale(at, cached, jobs) and not self._eta_queued.is_set():
                self._eta_queued.set()
                threading.Thread(target=self._etas_when_quiet, args=(jobs,), name="cockpit-etas", daemon=True).start()
            return cached
        with self._eta_lock:
            at, cached = self._etas
            if self._stale(at, cached, jobs):
                cached = estimate(self.queue(), jobs)
                self._etas = (time.monotonic(), cached)
            return cached

    def _etas_when_quiet(self, jobs: list[Job]) -> None:
        # The page that asked is still being served, and a visitor often opens the next page at
        # once: the computation (CPU-bound, it holds the GIL) waits for a short quiet moment
        # instead of slowing those pages down.
        try:
            self.activity.wait_quiet(quiet=ETA_QUIET_S, at_most=ETA_WAIT_AT_MOST_S)
            self.etas(jobs)
        finally:
            self._eta_queued.clear()

    @staticmethod
    def _stale(at: float, cached: dict[str, Eta], jobs: list[Job]) -> bool:
        return time.monotonic() - at > ETA_TTL_S or any(j.id not in cached for j in jobs if j.status == Status.PENDING)
