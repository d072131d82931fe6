"""What the live view shows, fed by the project's event stream (the broker behind ``/api/ws``).

The cockpit has one reader of the training files: the event source. A view reads the followed
experiment's files once, as a snapshot, when it starts following a run (page opened, another job
or experiment, a run start — a resume may cut the metrics log, a restart replaces it); after that
it only applies events: ``progress`` (metrics rows -> chart points, progress bar),
``validation_result`` (epoch rows), ``log`` run starts (resume markers), ``samples``. Only the
job's log file is tailed here: events do not carry a job's console output.

The followed job is one given experiment's (the page's picker sets it), else the running job in
the lowest slot; the running jobs are listed again when a queue event arrives.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from typing import Any

from MLSystem.events.broker import Broker
from MLSystem.events.training_files import SAMPLES_FILE
from MLSystem.gui.context import Cockpit
from MLSystem.gui.series import LiveSeries
from MLSystem.jobs import Job, Kind, Status
from MLSystem.metrics_reader import parse_rows, read_rows, row_kind
from MLSystem.utils.atomic import read_json
from MLSystem.utils.tail import FileTail

LOG_START_BYTES = 64 * 1024  # a log view opens on the last 64 KiB
RELIST_S = 5.0  # running jobs are listed again at least this often (placement updates have no event)
QUEUE_EVENTS = frozenset({"queued", "started", "finished", "failed", "stopped", "status", "drained"})

__all__ = ["LiveReader", "LiveUpdate", "SAMPLES_FILE", "event_row", "sample_pairs"]


@dataclass
class LiveUpdate:
    job: Job | None
    experiment_id: str | None
    reset: bool = False  # another job/experiment: clear the view
    metrics_changed: bool = False
    log_lines: list[str] = field(default_factory=list)
    progress: dict[str, Any] | None = None  # only when it changed
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


def event_row(event: dict[str, Any]) -> dict[str, Any] | None:
    """The ``metrics.jsonl`` row an event was derived from (None for events of other files).
    Events count epochs from 1, rows from 0."""
    if event.get("source") != "metrics":
        return None
    p, t = event.get("payload") or {}, event.get("time")
    epoch = int(p.get("epoch") or 1) - 1
    if event["type"] == "progress":
        return {"step": p.get("step"), "epoch": epoch, "loss": p.get("loss"), "lr": p.get("lr"), "time": t}
    if event["type"] == "validation_result":
        return {"step": p.get("step"), "epoch": epoch, "kind": "epoch", "epoch_time": p.get("epoch_time"),
                **(p.get("metrics") or {}), "time": t}
    if event["type"] == "log" and p.get("run_kind"):
        return {"event": p["run_kind"], "step": p.get("step"), "epoch": epoch, "max_epochs": p.get("max_epochs"),
                "time": t}
    return None


def _key(row: dict[str, Any]) -> tuple:
    return row_kind(row), row.get("step"), row.get("epoch")


class LiveReader:
    """The state of one live view (one per browser tab): :meth:`events` on the UI loop, then
    :meth:`poll` in a worker thread."""

    def __init__(self, cockpit: Cockpit, experiment: str | None = None):
        assert cockpit.events is not None, "the cockpit's event broker (app.build) first"
        self.cockpit = cockpit
        self.broker: Broker = cockpit.events
        self.fixed = experiment
        self.cursor: int | None = None  # seq of the last event taken from the broker
        self.job: Job | None = None
        self.running: list[Job] = []
        self._listed = -math.inf
        self._listed_for: str | None = None  # the fixed experiment of the last listing
        self.job_id: str | None = None
        self.experiment_id: str | None = None
        self.series = LiveSeries()
        self.progress: dict[str, Any] = {}
        self.log: FileTail | None = None
        self._gap = False
        self._snap_time = -math.inf  # newest row time of the snapshot: older events are in it
        self._snap_keys: set[tuple] = set()  # rows of the snapshot written at exactly that time
        self._samples_epoch = -1

    async def events(self) -> list[dict[str, Any]]:
        """Events since the last call (the first call starts the cursor: the snapshot covers the past)."""
        if self.cursor is None:
            self.cursor = self.broker.last
            return []
        out = []
        async for event in self.broker.stream(self.cursor, follow=False):
            if event is None:
                continue
            if event.get("seq") is None:  # a gap: what was missed is read again from the files
                self.cursor, self._gap = int(event["payload"]["missed_to"]), True
                continue
            self.cursor = event["seq"]
            out.append(event)
        return out

    def poll(self, events: list[dict[str, Any]]) -> LiveUpdate:
        """Apply ``events`` (blocking file reads: call from a worker thread)."""
        if any(e["type"] in QUEUE_EVENTS for e in events) or time.monotonic() - self._listed > RELIST_S \
                or self.fixed != self._listed_for:
            self._list_running()
        job = self.job
        eid = self.fixed or (job.experiment_id if job else self.experiment_id)
        job_id = job.id if job else self.job_id
        update = LiveUpdate(job, eid, running=self.running)
        if eid != self.experiment_id or job_id != self.job_id or self._gap:
            self._follow(eid, job_id, update)
        for event in events:
            if eid is not None and event.get("experiment_id") == eid:
                self._apply(event, update)
        if self.log is not None:
            update.log_lines = self.log.read().lines
        return update

    # -- the followed job ------------------------------------------------------------------------
    def _list_running(self) -> None:
        jobs = [j for j in self.cockpit.queue().list([Status.RUNNING]) if j.kind == Kind.TRAIN.value]
        jobs.sort(key=lambda j: ((j.placement or {}).get("slot", 0), j.started or ""))
        mine = [j for j in jobs if j.experiment_id == self.fixed] if self.fixed else jobs
        self.job, self.running, self._listed = (mine[0] if mine else None), jobs, time.monotonic()
        self._listed_for = self.fixed

    def _follow(self, eid: str | None, job_id: str | None, update: LiveUpdate) -> None:
        self.experiment_id, self.job_id, self._gap = eid, job_id, False
        self.series, self.progress, self._samples_epoch = LiveSeries(), {}, -1
        update.reset = update.metrics_changed = True
        if eid is None:
            self.log = None
            return
        exp = self.cockpit.paths.experiment(eid)
        self._snapshot_metrics()
        try:
            self.progress = read_json(exp.progress) or {}
        except ValueError:  # torn by a kill between writes of an old MLSystem
            self.progress = {}
        update.progress = dict(self.progress)
        try:
            text = (exp.dir / SAMPLES_FILE).read_bytes()
        except FileNotFoundError:
            text = b""
        rows = parse_rows(text.splitlines())
        if rows:
            update.samples.append(rows[-1])
            self._samples_epoch = int(rows[-1].get("epoch", -1))
        log_path = self.cockpit.queue().paths.log(job_id) if job_id else exp.log
        self.log = FileTail(log_path, start_bytes=LOG_START_BYTES)

    def _snapshot_metrics(self) -> None:
        """The series from the whole metrics log (events older than its newest row are in it)."""
        rows = read_rows(self.cockpit.paths.experiment(self.experiment_id).metrics)
        self.series = LiveSeries()
        self.series.add_rows(rows)
        times = [round(r["time"], 3) for r in rows if isinstance(r.get("time"), (int, float))]
        self._snap_time = max(times, default=-math.inf)
        self._snap_keys = {_key(r) for r in rows if isinstance(r.get("time"), (int, float))
                           and round(r["time"], 3) == self._snap_time}

    # -- events ----------------------------------------------------------------------------------
    def _apply(self, event: dict[str, Any], update: LiveUpdate) -> None:
        row = event_row(event)
        if row is not None:
            if "event" in row:
                # A run start: a resume cuts the log back to its checkpoint, a restart replaces
                # it; read it once more rather than guess (once per run).
                self._snapshot_metrics()
                update.metrics_changed = True
            elif not self._seen(row):
                update.metrics_changed |= bool(self.series.add_rows([row]))
        p = event.get("payload") or {}
        if event["type"] == "progress" and (event.get("time") or 0) >= (self.progress.get("updated") or 0):
            self._progress(p, event["time"])
            update.progress = dict(self.progress)
        elif event["type"] == "samples" and int(p.get("epoch") or 0) - 1 > self._samples_epoch:
            self._samples_epoch = int(p["epoch"]) - 1
            update.samples.append({"epoch": self._samples_epoch, "step": p.get("step"), "samples": p.get("samples")})

    def _seen(self, row: dict[str, Any]) -> bool:
        t = row.get("time")
        if not isinstance(t, (int, float)) or t > self._snap_time:
            return False
        return t < self._snap_time or _key(row) in self._snap_keys

    def _progress(self, p: dict[str, Any], t: float) -> None:
        """Merge a ``progress`` payload into the bar's state. Events from metrics rows carry no
        batch index: it is carried forward by the steps taken within the same epoch."""
        last = self.progress
        new = {**last, **{k: v for k, v in p.items() if v is not None}, "updated": t}
        if p.get("batch") is None:
            same_epoch = last.get("epoch") == new.get("epoch")
            if same_epoch and isinstance(last.get("batch"), int) and isinstance(last.get("step"), int) \
                    and isinstance(new.get("step"), int):
                batch = last["batch"] + new["step"] - last["step"]
                batches = new.get("batches")
                new["batch"] = min(batch, batches) if isinstance(batches, int) and batches > 0 else batch
            elif not same_epoch:
                new["batch"] = None
        self.progress = new
