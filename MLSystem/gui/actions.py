"""Cockpit actions shared by the pages and the REST API, as calls into submit / queue_store / runner.

Nothing here decides anything the CLI would not: these functions only assemble override lists
from an experiment's record and hand them to :mod:`MLSystem.submit`.
"""

from __future__ import annotations

from typing import Any

from MLSystem.checkpoint_manager import find_checkpoint
from MLSystem.overrides import to_override
from MLSystem.errors import BadInputError, CorruptFileError
from MLSystem.experiment_store import read_record, read_state, resolve_id
from MLSystem.jobs import Status
from MLSystem.paths import ExperimentPaths, ProjectPaths
from MLSystem.placement import build_pool
from MLSystem.queue_store import JobQueue
from MLSystem.records import ExperimentRecord, TrainingState
from MLSystem.runner import start_detached
from MLSystem.scheduler import Placement, describe_runner
from MLSystem.submit import SubmitReport, experiment_overrides, submit, with_overrides


def experiment_record(paths: ProjectPaths, ref: str) -> tuple[str, ExperimentRecord]:
    """The full ID and record of an experiment; a damaged ``experiment.json`` raises an error naming it."""
    eid = resolve_id(paths, ref)
    record = read_record(paths.experiment(eid))
    if record is None:
        raise BadInputError(f"experiment {eid}: no experiment.json (not created by MLSystem?)")
    return eid, record


def training_state(exp: ExperimentPaths) -> TrainingState | None:
    """``state.json`` for display (a garbled one shows as no state; training reads the checkpoint)."""
    try:
        return read_state(exp)
    except CorruptFileError:
        return None


def _replace(args: list[str], **values: Any) -> list[str]:
    """``args`` with ``key=value`` set for every value that is not None."""
    return with_overrides(args, [to_override(k, v) for k, v in values.items() if v is not None])


def continue_overrides(paths: ProjectPaths, ref: str, max_epochs: int | None = None) -> list[str]:
    """Overrides that resume (same ``max_epochs``) or extend (a larger one) an experiment."""
    eid, record = experiment_record(paths, ref)
    target = max_epochs if max_epochs is not None else record.max_epochs
    return _replace(experiment_overrides(record), max_epochs=target)


def warm_start_overrides(paths: ProjectPaths, ref: str, checkpoint: str, *, max_epochs: int,
                         batch_size: int | None = None, limit_samples: int | None = None) -> list[str]:
    """A new experiment initialised from ``ref``'s ``checkpoint`` (its parent is recorded; the
    original is never rewritten), with the parent's hyperparameters unless changed here."""
    eid, record = experiment_record(paths, ref)
    name = find_checkpoint(paths.experiment(eid), checkpoint).stem
    return _replace(experiment_overrides(record), init_from=f"{eid}/{name}", max_epochs=max_epochs,
                    batch_size=batch_size, limit_samples=limit_samples)


def queue_continue(queue: JobQueue, ref: str, max_epochs: int | None = None, priority: int = 0) -> SubmitReport:
    return submit(continue_overrides(queue.project, ref, max_epochs), priority=priority, queue=queue)


def runner_status(queue: JobQueue) -> dict[str, Any]:
    """The active runner (with its slot settings), the drain request, and the running jobs with
    the slot / GPUs each one runs in (``slots``, by slot)."""
    running = queue.list([Status.RUNNING])
    runner = queue.active_runner()
    slots = []
    for job in running:
        where = Placement.from_dict(job.placement)
        if where is not None:
            slots.append({**where.to_dict(), "job": job.id, "experiment_id": job.experiment_id, "pid": job.pid})
    return {"runner": runner, "summary": describe_runner(runner), "drain": queue.drain_requested(),
            "running": [j.to_dict() for j in running], "slots": sorted(slots, key=lambda s: s["slot"])}


def start_runner(paths: ProjectPaths, *, slots: int | None = None, gpus: str | None = None,
                 slots_per_gpu: int | None = None, threads: int | None = None) -> int:
    """Start a detached runner with these slot options (checked first: a one-line error naming the
    option instead of a runner that dies in the background). Returns its pid."""
    gpus = (gpus or "").strip() or None
    try:
        build_pool(slots, gpus, slots_per_gpu or 1, threads, warn=lambda _: None)
    except ValueError as exc:
        raise BadInputError(str(exc)) from None
    return start_detached(paths, slots=slots, gpus=gpus, slots_per_gpu=slots_per_gpu, threads=threads)
