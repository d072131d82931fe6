"""What every page and the API share in one cockpit process: the project, caches, the token."""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field

from MLSystem.eta import Eta, estimate
from MLSystem.gui.index import CheckpointIndex, ExperimentIndex
from MLSystem.gui.inference import ModelCache
from MLSystem.jobs import Job, Status
from MLSystem.paths import ProjectPaths
from MLSystem.queue_store import JobQueue
from MLSystem.registry import Registry
from MLSystem.tune.store import list_study_names

ETA_TTL_S = 10.0  # ETAs scan the experiment listing and the queue: recomputed at most this often
VERIFY_AFTER_S = 60.0  # the index's full check (catches hand edits) runs this often, first after startup


@dataclass
class Cockpit:
    paths: ProjectPaths
    token: str | None = None
    experiments: ExperimentIndex = field(init=False)
    checkpoints: CheckpointIndex = field(init=False)
    models: ModelCache = field(init=False)
    _etas: tuple[float, dict[str, Eta]] = (0.0, {})
    _eta_lock: threading.Lock = field(default_factory=threading.Lock)

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
        """Bring the experiments' query index up to date and fill the ETAs before the first
        visitor needs them, then import Optuna if there are studies (~2 s); then, every
        ``VERIFY_AFTER_S``, the full check of the index against every folder (hand edits; the
        first one waits too, so that it does not slow the first pages down). Never returns: run it
        in a daemon thread."""
        self.experiments.indexed()  # builds the index if it is missing (once: ~25 s at 100,000)
        jobs = self.queue().list([Status.RUNNING, Status.PENDING])
        self.etas(jobs)
        if list_study_names(self.paths):
            import optuna.importance  # noqa: F401
        while True:  # a daemon thread: ends with the cockpit
            time.sleep(VERIFY_AFTER_S)
            self.experiments.verify()

    def etas(self, jobs: list[Job]) -> dict[str, Eta]:
        """ETAs of pending jobs, cached for ``ETA_TTL_S`` (blocking: call from a worker thread)."""
        with self._eta_lock:
            at, cached = self._etas
            if time.monotonic() - at > ETA_TTL_S or any(j.id not in cached for j in jobs if j.status == Status.PENDING):
                cached = estimate(self.queue(), jobs)
                self._etas = (time.monotonic(), cached)
            return cached
