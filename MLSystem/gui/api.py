"""REST API under ``/api``: the cockpit's operations as JSON for scripts and notebooks.

Documented by FastAPI's OpenAPI page (``/docs``). Endpoints are plain ``def`` functions, so
FastAPI runs them in worker threads and file reads never block the UI's event loop. Errors
come back as ``{"detail": ...}`` with the status of the error's class (``errors.http_status``:
400 bad input, 404 unknown job/experiment/checkpoint/file, 409 wrong state, 413 upload too large,
500 a damaged record, named in the detail).
"""

from __future__ import annotations

import dataclasses
from typing import Any, Literal

from fastapi import APIRouter, FastAPI, File, Form, HTTPException, Query, Request, UploadFile
from fastapi.responses import FileResponse, JSONResponse
from pydantic import BaseModel, Field

from MLSystem.errors import ConfigError, ConflictError, MLSystemError, NotFoundError, http_status
from MLSystem.experiment_store import live_status
from MLSystem.gui import actions, validate
from MLSystem.gui.context import Cockpit
from MLSystem.gui.inference import MAX_UPLOAD_BYTES, InferenceError, check_upload
from MLSystem.gui.inference import inference_models as find
from MLSystem.gui.series import SeriesFollower
from MLSystem.engine_view import live_states
from MLSystem.jobs import Status
from MLSystem.submit import edit_overrides, plan, submit, submit_plot
from MLSystem.utils.tail import read_range

# Files of an experiment folder the API serves (checkpoints are not downloadable through it).
SERVED_FILES = ("config.yaml", "experiment.json", "state.json", "metrics.jsonl", "progress.json", "samples.jsonl",
                "train.log")
STATUSES = Literal["pending", "running", "finished", "failed", "stopped"]  # the values of jobs.Status
assert set(STATUSES.__args__) == {s.value for s in Status}


class JobRequest(BaseModel):
    overrides: list[str] = Field(..., examples=[["dataset=digits", "model=cnn", "max_epochs=3"]],
                                 description="key=value overrides; sweeps (lr=0.1,0.01) queue one job per combination")
    priority: int = 0
    held: bool = False
    force: bool = Field(False, description="queue even if the experiment is pending, running or complete")


class PreviewRequest(BaseModel):
    overrides: list[str]


class JobEdit(BaseModel):
    overrides: list[str] | None = Field(None, description="the job's complete new override list")
    priority: int | None = None
    held: bool | None = None


class MoveRequest(BaseModel):
    before: str | None = None
    after: str | None = None
    first: bool = Field(False, description="run this job next (ignores before/after)")


class DrainRequest(BaseModel):
    cancel: bool = False


class RunnerStart(BaseModel):
    """Slot options of a started runner (all optional: one slot, no GPU placement)."""

    slots: int | None = Field(None, ge=1, le=1024, description="jobs at once (default 1; with gpus: GPUs x per GPU)")
    gpus: str | None = Field(None, max_length=200, description="'all' or GPU indices such as '0,1'")
    slots_per_gpu: int | None = Field(None, ge=1, le=64, description="jobs that may share one GPU")
    threads: int | None = Field(None, ge=1, le=1024, description="CPU threads per job")


class EpochsRequest(BaseModel):
    max_epochs: int | None = Field(None, ge=1, description="total epochs; omit to resume to the current target")
    priority: int = 0


class WarmStartRequest(BaseModel):
    experiment: str
    checkpoint: str = "last"
    max_epochs: int = Field(..., ge=1)
    batch_size: int | None = Field(None, ge=1)
    limit_samples: int | None = Field(None, ge=0, description="light mode: at most this many training samples")
    priority: int = 0


async def _error(request: Request, exc: MLSystemError) -> JSONResponse:
    """Every MLSystem error as ``{"detail": ...}``; the status code comes from its class."""
    body: dict[str, Any] = {"detail": str(exc)}
    if isinstance(exc, ConfigError):
        body["problems"] = exc.problems
    return JSONResponse(body, status_code=http_status(exc))


def _report(report) -> dict[str, Any]:
    return dataclasses.asdict(report)


def register(app: FastAPI, cockpit: Cockpit) -> None:
    """Add the ``/api`` routes and the error mapping to ``app``."""
    app.add_exception_handler(MLSystemError, _error)  # type: ignore[arg-type]
    api = APIRouter(prefix="/api")

    # -- jobs -----------------------------------------------------------------------------------
    @api.get("/jobs", tags=["jobs"], summary="List jobs (pending in run order, with ETAs)")
    def list_jobs(status: list[STATUSES] = Query(default=[]), offset: int = Query(0, ge=0),
                  limit: int = Query(100, ge=1, le=1000)) -> dict[str, Any]:
        queue = cockpit.queue()
        jobs = queue.list([Status(s) for s in status] or None)
        etas = cockpit.etas([j for j in jobs if j.status in (Status.PENDING, Status.RUNNING)])
        shown = jobs[offset: offset + limit]
        engine = live_states([j for j in shown if j.status == Status.RUNNING])  # one squeue for all cluster jobs
        rows = []
        for job in shown:
            row = job.to_dict()
            if job.id in etas:
                row["eta"] = dataclasses.asdict(etas[job.id])
            if job.id in engine:
                row["engine_state"] = engine[job.id]
            rows.append(row)
        return {"total": len(jobs), "offset": offset, "jobs": rows}

    @api.post("/jobs", tags=["jobs"], summary="Validate and queue training jobs (sweeps expand)")
    def create_jobs(body: JobRequest) -> dict[str, Any]:
        report = submit(body.overrides, priority=body.priority, held=body.held, force=body.force, queue=cockpit.queue())
        return _report(report)

    @api.post("/jobs/preview", tags=["jobs"], summary="Experiment ID and decision for overrides, queueing nothing")
    def preview(body: PreviewRequest) -> dict[str, Any]:
        return {"plans": [dataclasses.asdict(p) for p in plan(body.overrides, paths=cockpit.paths)]}

    @api.get("/jobs/{job_id}", tags=["jobs"], summary="One job's record")
    def get_job(job_id: str) -> dict[str, Any]:
        return cockpit.queue().get(validate.job_ref(job_id)).to_dict()

    @api.patch("/jobs/{job_id}", tags=["jobs"], summary="Edit a pending job: overrides, priority, hold")
    def edit_job(job_id: str, body: JobEdit) -> dict[str, Any]:
        queue, ref = cockpit.queue(), validate.job_ref(job_id)
        job = queue.get(ref)
        if body.overrides is not None:
            job = edit_overrides(queue, ref, body.overrides, replace=True)
        if body.priority is not None:
            job = queue.set_priority(ref, body.priority)
        if body.held is not None:
            job = queue.hold(ref) if body.held else queue.release(ref)
        return job.to_dict()

    @api.post("/jobs/{job_id}/move", tags=["jobs"], summary="Reorder a pending job")
    def move_job(job_id: str, body: MoveRequest) -> dict[str, Any]:
        queue, ref = cockpit.queue(), validate.job_ref(job_id)
        if body.first:
            return queue.run_next(ref).to_dict()
        if (body.before is None) == (body.after is None):
            raise HTTPException(400, "give exactly one of before, after (or first=true)")
        other = validate.job_ref(body.before or body.after or "")
        job = queue.move(ref, before=other if body.before else None, after=other if body.after else None)
        return job.to_dict()

    @api.post("/jobs/{job_id}/stop", tags=["jobs"], summary="Graceful stop (checkpoint kept) or cancel a pending job")
    def stop_job(job_id: str) -> dict[str, Any]:
        job, message = cockpit.queue().request_stop(validate.job_ref(job_id))
        return {"job": job.id, "message": message}

    @api.post("/jobs/{job_id}/requeue", tags=["jobs"], summary="Failed or stopped job back to pending")
    def requeue_job(job_id: str) -> dict[str, Any]:
        return cockpit.queue().requeue(validate.job_ref(job_id)).to_dict()

    @api.delete("/jobs/{job_id}", tags=["jobs"], summary="Remove a job that is not running, with its logs")
    def delete_job(job_id: str) -> dict[str, Any]:
        return {"deleted": cockpit.queue().delete(validate.job_ref(job_id)).id}

    @api.get("/jobs/{job_id}/log", tags=["jobs"], summary="A job's log from a byte offset (negative: from the end)")
    def job_log(job_id: str, offset: int = 0, max_bytes: int = Query(65536, ge=1, le=4 << 20)) -> dict[str, Any]:
        queue = cockpit.queue()
        job = queue.get(validate.job_ref(job_id))
        path = queue.paths.log(job.id)
        if not path.is_file():
            return {"job": job.id, "text": "", "offset": 0, "size": 0}
        text, nxt, size = read_range(path, offset, max_bytes)
        return {"job": job.id, "text": text, "offset": nxt, "size": size}

    # -- runner ---------------------------------------------------------------------------------
    @api.get("/runner", tags=["runner"], summary="Active runner, drain request, running jobs")
    def runner() -> dict[str, Any]:
        return actions.runner_status(cockpit.queue())

    @api.post("/runner/start", tags=["runner"], summary="Start a detached transient runner (no-op if one runs)")
    def runner_start(body: RunnerStart | None = None) -> dict[str, Any]:
        queue = cockpit.queue()
        active = queue.active_runner()
        if active:
            return {"started": False, "runner": active}
        options = body.model_dump() if body else {}
        return {"started": True, "pid": actions.start_runner(cockpit.paths, **options), "options": options}

    @api.post("/runner/drain", tags=["runner"], summary="Finish the running jobs, start no more, then exit (or cancel that)")
    def runner_drain(body: DrainRequest) -> dict[str, Any]:
        queue = cockpit.queue()
        if body.cancel:
            return {"drain": False, "was_requested": queue.cancel_drain()}
        if queue.active_runner() is None:
            raise ConflictError("no runner is active; nothing to drain")
        queue.request_drain()
        return {"drain": True}

    # -- experiments ----------------------------------------------------------------------------
    @api.get("/experiments", tags=["experiments"], summary="Experiments, filtered, sorted and paged")
    def experiments(q: str = "", dataset: str | None = None, model: str | None = None, status: str | None = None,
                    sort: str = "updated", descending: bool = True, page: int = Query(1, ge=1),
                    per_page: int = Query(50, ge=1, le=500)) -> dict[str, Any]:
        p = cockpit.experiments.page(query=q, dataset=dataset, model=model, status=status, sort=sort,
                                     descending=descending, page=page, per_page=per_page)
        return {"total": p.total, "pages": p.pages, "page": page, "experiments": p.rows}

    @api.get("/experiments/{experiment_id}", tags=["experiments"], summary="Metadata, state and resolved config")
    def experiment(experiment_id: str) -> dict[str, Any]:
        eid, record = actions.experiment_record(cockpit.paths, validate.experiment_ref(experiment_id))
        exp = cockpit.paths.experiment(eid)
        config = exp.resolved_config.read_text(encoding="utf-8") if exp.resolved_config.is_file() else ""
        state = actions.training_state(exp)
        metadata = {**record.to_dict(), "status": live_status(exp, record)}
        return {"id": eid, "metadata": metadata, "state": state.to_dict() if state else None, "config_yaml": config,
                "best": cockpit.experiments.best(eid), "children": cockpit.experiments.children(eid)}

    @api.get("/experiments/{experiment_id}/metrics", tags=["experiments"],
             summary="Loss/lr series (downsampled), epoch rows and resume markers")
    def metrics(experiment_id: str, max_points: int = Query(1000, ge=10, le=10000)) -> dict[str, Any]:
        eid, _ = actions.experiment_record(cockpit.paths, validate.experiment_ref(experiment_id))
        follower = SeriesFollower(cockpit.paths.experiment(eid).metrics, limit=max_points // 2)
        follower.poll()
        s = follower.series
        return {"id": eid, "loss": s.loss.data(), "lr": s.lr.data(), "epochs": s.epochs, "events": s.events}

    @api.get("/experiments/{experiment_id}/checkpoints", tags=["checkpoints"], summary="An experiment's checkpoints")
    def experiment_checkpoints(experiment_id: str) -> dict[str, Any]:
        eid, _ = actions.experiment_record(cockpit.paths, validate.experiment_ref(experiment_id))
        return {"checkpoints": [r.as_dict() for r in cockpit.checkpoints.list(experiment=eid)]}

    @api.get("/experiments/{experiment_id}/files/{path:path}", tags=["experiments"],
             summary="A file of the experiment folder: plots/…, config.yaml, metrics.jsonl, train.log, …")
    def experiment_file(experiment_id: str, path: str) -> FileResponse:
        eid, _ = actions.experiment_record(cockpit.paths, validate.experiment_ref(experiment_id))
        base = cockpit.paths.experiment(eid).dir
        target = validate.confined(base, path)
        if not (path in SERVED_FILES or path.startswith("plots/")):
            raise validate.InvalidInput(f"file {path!r}: served are plots/… and {', '.join(SERVED_FILES)}")
        if not target.is_file():
            raise NotFoundError(f"file {path!r} not found in experiment {eid}")
        return FileResponse(target)

    @api.post("/experiments/{experiment_id}/plots", tags=["experiments"], summary="Queue a plot job")
    def run_plots(experiment_id: str) -> dict[str, Any]:
        job = submit_plot(validate.experiment_ref(experiment_id), queue=cockpit.queue())
        return {"job": job.id, "experiment_id": job.experiment_id}

    @api.post("/experiments/{experiment_id}/epochs", tags=["experiments"],
              summary="Queue a job that resumes or adds epochs to an experiment")
    def add_epochs(experiment_id: str, body: EpochsRequest) -> dict[str, Any]:
        report = actions.queue_continue(cockpit.queue(), validate.experiment_ref(experiment_id), body.max_epochs,
                                        body.priority)
        return _report(report)

    # -- checkpoints ----------------------------------------------------------------------------
    @api.get("/checkpoints", tags=["checkpoints"], summary="Checkpoints, filtered by model and dataset")
    def checkpoints(model: str | None = None, dataset: str | None = None,
                    limit: int = Query(1000, ge=1, le=10000)) -> dict[str, Any]:
        rows = cockpit.checkpoints.list(model=model, dataset=dataset, limit=limit)
        return {"checkpoints": [r.as_dict() for r in rows[:limit]]}

    @api.post("/checkpoints/warm-start", tags=["checkpoints"],
              summary="Queue a new experiment that starts from a checkpoint (parent recorded)")
    def warm_start(body: WarmStartRequest) -> dict[str, Any]:
        args = actions.warm_start_overrides(cockpit.paths, validate.experiment_ref(body.experiment),
                                            validate.checkpoint_name(body.checkpoint), max_epochs=body.max_epochs,
                                            batch_size=body.batch_size, limit_samples=body.limit_samples)
        return _report(submit(args, priority=body.priority, queue=cockpit.queue()))

    # -- inference ------------------------------------------------------------------------------
    @api.get("/inference/models", tags=["inference"], summary="Models that have an inference method")
    def inference_models() -> dict[str, Any]:
        return {"models": find(cockpit.paths)}

    @api.post("/inference", tags=["inference"], summary="Transcribe an uploaded audio file; report the real-time factor")
    def inference(experiment: str = Form(...), checkpoint: str = Form("last"),
                  file: UploadFile = File(...)) -> dict[str, Any]:
        eid = validate.experiment_ref(experiment)
        name = validate.checkpoint_name(checkpoint)
        data = file.file.read(MAX_UPLOAD_BYTES + 1)
        if len(data) > MAX_UPLOAD_BYTES:
            raise HTTPException(413, f"upload over the {MAX_UPLOAD_BYTES // (1024 * 1024)} MiB limit")
        try:
            check_upload(file.filename or "", len(data))
        except InferenceError as exc:
            raise HTTPException(400, str(exc)) from None
        eid, _ = actions.experiment_record(cockpit.paths, eid)
        return cockpit.models.transcribe(eid, name, data, file.filename or "").as_dict()

    app.include_router(api)
