"""What the live view reads each tick, off the UI loop: only bytes appended since the last tick.

Follows a running job — one given experiment (the page's picker sets it), else the job in the
lowest slot: its metrics log, ``progress.json``, log file and ASR ``samples.jsonl``. When the job
changes, every follower starts over.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from typing import Any

from MLSystem.errors import CorruptFileError
from MLSystem.experiment_store import read_record
from MLSystem.gui.context import Cockpit
from MLSystem.gui.series import SeriesFollower
from MLSystem.jobs import Job, Kind, Status
from MLSystem.records import ExperimentRecord
from MLSystem.utils.atomic import read_json
from MLSystem.utils.tail import FileTail

LOG_START_BYTES = 64 * 1024  # a log view opens on the last 64 KiB
SAMPLES_FILE = "samples.jsonl"


@dataclass
class LiveUpdate:
    job: Job | None
    experiment_id: str | None
    reset: bool = False  # another job/experiment: clear the view
    metrics_changed: bool = False
    log_lines: list[str] = field(default_factory=list)
    progress: dict[str, Any] | None = None  # only when it changed
    record: ExperimentRecord | None = None  # only when it may have changed
    samples: list[dict[str, Any]] = field(default_factory=list)
    running: list[Job] = field(default_factory=list)  # every running training job (the page's picker)


def sample_pairs(row: dict[str, Any]) -> list[tuple[str, str]]:
    """(reference, hypothesis) pairs of one ``samples.jsonl`` row, tolerant of its exact layout."""
    items = row.get("samples") or row.get("pairs") or []
    out = []
    for item in items if isinstance(items, list) else []:
        if isinstance(item, dict):
            out.append((str(item.get("ref", item.get("reference", ""))), str(item.get("hyp", item.get("hypothesis", "")))))
        elif isinstance(item, (list, tuple)) and len(item) == 2:
            out.append((str(item[0]), str(item[1])))
    return out


class LiveReader:
    """The followers of one live view (one per browser tab)."""

    def __init__(self, cockpit: Cockpit, experiment: str | None = None):
        self.cockpit = cockpit
        self.fixed = experiment
        self.job_id: str | None = None
        self.experiment_id: str | None = None
        self.follower: SeriesFollower | None = None
        self.log: FileTail | None = None
        self.samples: FileTail | None = None
        self._progress_mtime = 0.0
        self._events = 0

    def _running(self) -> tuple[Job | None, list[Job]]:
        """The job to follow (of the fixed experiment, else the one in the lowest slot) and every
        running training job."""
        jobs = [j for j in self.cockpit.queue().list([Status.RUNNING]) if j.kind == Kind.TRAIN.value]
        jobs.sort(key=lambda j: ((j.placement or {}).get("slot", 0), j.started or ""))
        mine = [j for j in jobs if j.experiment_id == self.fixed] if self.fixed else jobs
        return (mine[0] if mine else None), jobs

    def poll(self) -> LiveUpdate:
        job, running = self._running()
        eid = self.fixed or (job.experiment_id if job else self.experiment_id)
        update = LiveUpdate(job, eid, running=running)
        job_id = job.id if job else self.job_id
        if eid != self.experiment_id or job_id != self.job_id:
            self._follow(eid, job_id)
            update.reset = True
        if eid is None or self.follower is None:
            return update
        exp = self.cockpit.paths.experiment(eid)
        update.metrics_changed = self.follower.poll()
        if self.log is not None:
            update.log_lines = self.log.read().lines
        if self.samples is not None:
            for line in self.samples.read().lines:
                try:
                    update.samples.append(json.loads(line))
                except ValueError:
                    continue
        try:
            mtime = os.stat(exp.progress).st_mtime
        except FileNotFoundError:
            mtime = 0.0
        if mtime != self._progress_mtime:
            self._progress_mtime = mtime
            try:
                update.progress = read_json(exp.progress) or {}
            except ValueError:  # torn by a kill between writes of an old MLSystem: next tick
                update.progress = {}
        events = len(self.follower.series.events)
        if update.reset or events != self._events or (job is None and update.metrics_changed):
            self._events = events
            try:
                update.record = read_record(exp)
            except CorruptFileError:
                update.record = None
        return update

    def _follow(self, eid: str | None, job_id: str | None) -> None:
        self.experiment_id, self.job_id = eid, job_id
        self._progress_mtime, self._events = 0.0, -1
        if eid is None:
            self.follower = self.log = self.samples = None
            return
        exp = self.cockpit.paths.experiment(eid)
        self.follower = SeriesFollower(exp.metrics)
        log_path = self.cockpit.queue().paths.log(job_id) if job_id else exp.log
        self.log = FileTail(log_path, start_bytes=LOG_START_BYTES)
        self.samples = FileTail(exp.dir / SAMPLES_FILE)
