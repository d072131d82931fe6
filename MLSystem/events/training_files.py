"""Training events of one running job, read by byte offset from its experiment's files.

``metrics.jsonl`` (run starts -> ``log``, step rows -> ``progress``, epoch rows ->
``validation_result``), ``progress.json`` (``progress`` between logged steps) and
``samples.jsonl`` (``samples``). Only rows written during the job's run count (each row carries
its time); the cursors of :class:`~MLSystem.events.derive_state.Follow` skip what was emitted.
"""

from __future__ import annotations

import os
import time
from typing import Any, Protocol

from MLSystem.events.derive_state import Follow
from MLSystem.jobs import Job
from MLSystem.metrics_reader import MetricsTail, parse_rows, row_kind
from MLSystem.paths import ProjectPaths
from MLSystem.utils.atomic import read_json
from MLSystem.utils.tail import FileTail

SAMPLES_FILE = "samples.jsonl"
BOOKKEEPING = {"step", "epoch", "kind", "time", "epoch_time"}  # not metrics of an epoch row


class Emit(Protocol):
    def __call__(self, etype: str, t: float, payload: dict[str, Any], job: Job | None = None, *,
                 experiment_id: str | None = None, source: str = "queue") -> None: ...


class Readers:
    """In-memory file cursors of one followed run (not state: a new leader re-reads, and the
    cursors of :class:`Follow` skip what was already emitted)."""

    def __init__(self, paths: ProjectPaths, experiment_id: str):
        exp = paths.experiment(experiment_id)
        self.metrics = MetricsTail(exp.metrics)
        self.samples = FileTail(exp.dir / SAMPLES_FILE)
        self.progress_path = exp.progress
        self.progress_mtime = 0
        self.batches: int | None = None


def run_start(row: dict[str, Any]) -> dict[str, Any]:
    """Payload of the ``log`` event of a run-start row (new, resume, extend)."""
    kind, epoch, step, total = row.get("event"), int(row.get("epoch", 0)), row.get("step"), row.get("max_epochs")
    if kind == "new":
        message = f"training started: new run, {total} epochs"
    else:
        verb = "resumed" if kind == "resume" else "extended"
        message = f"training started: {verb} at epoch {epoch + 1} (step {step}), {total} epochs in all"
    return {"message": message, "run_kind": kind, "step": step, "epoch": epoch + 1, "max_epochs": total}


def training_events(emit: Emit, r: Readers, job: Job, f: Follow) -> None:
    """Emit what the job's files gained since the last call (``emit`` applies each event to ``f``)."""
    eid = f.experiment_id

    def in_run(t: Any) -> bool:
        return isinstance(t, (int, float)) and t >= f.since and (f.until is None or t <= f.until)

    for row in r.metrics.poll():
        t = row.get("time")
        if not in_run(t):
            continue
        t = round(t, 3)  # as events carry it (a replayed state compares with event times)
        kind = row_kind(row)
        if kind == "event":
            if t <= f.run_time:
                continue
            emit("log", t, run_start(row), job, experiment_id=eid, source="metrics")
        elif kind == "step":
            step = int(row.get("step", 0))
            if step <= f.step:
                continue
            emit("progress", t, {"epoch": int(row.get("epoch", 0)) + 1, "max_epochs": f.max_epochs,
                                 "step": step, "batches": r.batches, "loss": row.get("loss"),
                                 "lr": row.get("lr")}, job, experiment_id=eid, source="metrics")
        else:
            epoch = int(row.get("epoch", 0)) + 1
            if epoch <= f.val_epoch:
                continue
            metrics = {k: v for k, v in row.items() if k not in BOOKKEEPING}
            emit("validation_result", t, {"epoch": epoch, "step": row.get("step"),
                                          "epoch_time": row.get("epoch_time"), "metrics": metrics},
                 job, experiment_id=eid, source="metrics")
    for row in parse_rows(r.samples.read().lines):
        epoch = int(row.get("epoch", -1)) + 1
        if epoch > f.samples_epoch and f.run_time:  # rows have no time: stamped when read
            emit("samples", time.time() if f.until is None else min(time.time(), f.until),
                 {"epoch": epoch, "step": row.get("step"), "samples": row.get("samples")},
                 job, experiment_id=eid, source="samples")
    try:
        mtime = os.stat(r.progress_path).st_mtime_ns
    except FileNotFoundError:
        mtime = 0
    if mtime and mtime != r.progress_mtime:
        r.progress_mtime = mtime
        p = read_json(r.progress_path) or {}
        r.batches = p.get("batches") if isinstance(p.get("batches"), int) else r.batches
        step = p.get("step")
        if isinstance(step, int) and step > max(f.step, f.progress_step) and in_run(p.get("updated")) \
                and f.run_time:
            emit("progress", p["updated"], {k: p.get(k) for k in ("epoch", "max_epochs", "step", "batch",
                                                                  "batches", "loss", "lr")},
                 job, experiment_id=eid, source="progress")
