"""Cockpit actions shared by the pages and the REST API, as calls into submit / job_queue / runner.

Nothing here decides anything the CLI would not: these functions only assemble override lists
from an experiment's record and hand them to :mod:`MLSystem.submit`.
"""

from __future__ import annotations

from typing import Any

from MLSystem.config_merge import to_override
from MLSystem.errors import BadInputError
from MLSystem.experiment_store import read_metadata, resolve_id
from MLSystem.job_queue import JobQueue, Status
from MLSystem.paths import ProjectPaths
from MLSystem.submit import SubmitReport, experiment_overrides, submit, with_overrides


def experiment_record(paths: ProjectPaths, ref: str) -> tuple[str, dict[str, Any]]:
    eid = resolve_id(paths, ref)
    meta = read_metadata(paths.experiment(eid))
    if not meta:
        raise BadInputError(f"experiment {eid}: no experiment.json (not created by MLSystem?)")
    return eid, meta


def _replace(args: list[str], **values: Any) -> list[str]:
    """``args`` with ``key=value`` set for every value that is not None."""
    return with_overrides(args, [to_override(k, v) for k, v in values.items() if v is not None])


def continue_overrides(paths: ProjectPaths, ref: str, max_epochs: int | None = None) -> list[str]:
    """Overrides that resume (same ``max_epochs``) or extend (a larger one) an experiment."""
    eid, meta = experiment_record(paths, ref)
    target = max_epochs if max_epochs is not None else meta.get("max_epochs")
    return _replace(experiment_overrides(meta), max_epochs=target)


def warm_start_overrides(paths: ProjectPaths, ref: str, checkpoint: str, *, max_epochs: int,
                         batch_size: int | None = None, limit_samples: int | None = None) -> list[str]:
    """A new experiment initialised from ``ref``'s ``checkpoint`` (its parent is recorded; the
    original is never rewritten), with the parent's hyperparameters unless changed here."""
    from MLSystem.checkpoint_manager import find_checkpoint

    eid, meta = experiment_record(paths, ref)
    name = find_checkpoint(paths.experiment(eid), checkpoint).stem
    return _replace(experiment_overrides(meta), init_from=f"{eid}/{name}", max_epochs=max_epochs,
                    batch_size=batch_size, limit_samples=limit_samples)


def queue_continue(queue: JobQueue, ref: str, max_epochs: int | None = None, priority: int = 0) -> SubmitReport:
    return submit(continue_overrides(queue.project, ref, max_epochs), priority=priority, queue=queue)


def runner_status(queue: JobQueue) -> dict[str, Any]:
    running = queue.list([Status.RUNNING])
    return {"runner": queue.active_runner(), "drain": queue.drain_requested(),
            "running": [j.to_dict() for j in running]}
