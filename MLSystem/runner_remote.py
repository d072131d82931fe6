"""The runner's side of jobs that outlive it (cluster executors, ``executor.remote``): the engine
record written before a submission, engine states copied into the job file, and reattaching at
start to jobs a dead (or detached) runner submitted. See ``MLSystem.cluster_executor`` for why
this never submits a job twice."""

from __future__ import annotations

import os
from typing import Any

from MLSystem.engine_view import describe, live_states
from MLSystem.executor import Executor, Run
from MLSystem.jobs import Job
from MLSystem.scheduler import Impossible
from MLSystem.utils.clock import now_iso

TAIL_BYTES = 20000  # a reattached job's failure summary comes from the log's end


def is_remote(executor: Executor) -> bool:
    return bool(getattr(executor, "remote", False))


def batches(executor: Executor, claimed: list[tuple[Job, Any]]) -> list[list[tuple[Job, Any]]]:
    """Claimed jobs in submissions: jobs the executor puts in one job array (``array_key``: a sweep's
    jobs with the same resources, claimed in the same round) together, every other job alone."""
    key_of = getattr(executor, "array_key", None)
    groups: dict[Any, list[tuple[Job, Any]]] = {}
    out: list[list[tuple[Job, Any]]] = []
    for job, where in claimed:
        key = key_of(job) if key_of is not None and not isinstance(where, Impossible) else None
        if key is None:
            out.append([(job, where)])
        elif key in groups:
            groups[key].append((job, where))
        else:
            groups[key] = [(job, where)]
            out.append(groups[key])
    return out


def submitted_fields(job: Job, run: Run) -> dict[str, Any]:
    """Job fields once the engine accepted the job: its engine id (the record already holds the tag)."""
    if not run.engine_id:
        return {}
    return {"engine": {**(job.engine or {}), "job_id": run.engine_id, "state": "PENDING", "submitted": now_iso()}}


def ended_fields(job: Job) -> dict[str, Any]:
    """The engine record of a job being filed: its engine is done with it."""
    return {"engine": {**job.engine, "state": "ENDED"}} if job.engine else {}


def state_change(executor: Executor, job: Job, run: Run) -> dict[str, Any] | None:
    """The new engine record when the engine's state of a running job changed, else None."""
    state = executor.state(run)  # type: ignore[attr-defined]
    engine = dict(job.engine or {})
    if not state or state == engine.get("state") or state == "ENDED":
        return None
    engine["state"] = state
    if state == "RUNNING" and not engine.get("running_since"):
        engine["running_since"] = now_iso()
    return engine


class Reattach:
    """Decides, at runner start, what happens to each job left in running/ with an engine record."""

    def __init__(self, executor: Executor):
        self.executor = executor
        self.runs: dict[str, Run] = {}  # jobs to adopt: queue job id -> their run

    def keep(self, job: Job) -> str | None:
        """A note for a job that stays running (reattached, or owned by another kind of executor);
        None: requeue it (the engine never got it, or it is gone)."""
        engine = job.engine or {}
        if not engine:
            return None
        who = (job.runner or {}).get("pid", "?")
        if engine.get("executor") != getattr(self.executor, "name", "local"):
            state = live_states([job]).get(job.id)
            if state and state != "ENDED":
                return (f"runs on {describe(job, state)}; start a runner with --executor {engine.get('executor')} "
                        "to follow it")
            return None
        run = self.executor.reattach(job)  # type: ignore[attr-defined]
        if run is None:
            return None
        self.runs[job.id] = run
        return f"reattached to {engine.get('executor')} job {run.engine_id} (runner pid {who} left it running)"

    def engine_fields(self, job: Job) -> dict[str, Any]:
        """The engine id found by tag or submission file, for a job whose record lacked it."""
        run = self.runs[job.id]
        if (job.engine or {}).get("job_id") == run.engine_id:
            return {}
        return {"engine": {**(job.engine or {}), "job_id": run.engine_id, "found": "after a runner crash"}}


def tail_offset(path: os.PathLike[str] | str) -> int:
    try:
        return max(0, os.path.getsize(path) - TAIL_BYTES)
    except OSError:
        return 0
