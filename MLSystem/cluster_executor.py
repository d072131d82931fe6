"""The runner's executor on a cluster: ``--executor slurm`` (submitit's SlurmExecutor) and
``--executor submitit-local`` (submitit's LocalExecutor: the same code path without Slurm).

It implements ``MLSystem.executor.Executor``: ``start`` submits the job's command (the same
``execute_train`` the local slots run) wrapped in :class:`~MLSystem.submitit_job.TrainJob` (which
checkpoints and requeues itself on Slurm's warning signal), ``poll`` reads the engine, ``stop``
signals through the engine, ``classify`` says when the engine, not the code, ended the run.

**Never submitted twice.** Each attempt submits into its own folder ``queue/engine/{job}/{n}/``
(n: the job's filed attempts + 1) with the comment :func:`~MLSystem.submitit_job.engine_tag`. The
runner writes ``Job.engine = {"executor", "tag", "folder"}`` into the job file *before* it submits
and adds the engine's ``job_id`` right after. A runner killed in between leaves a job whose record
has a tag but no id: the next runner finds the submission again by its tag (``scontrol show job``:
pending, running and recently ended jobs) or by submitit's ``{id}_submitted.pkl`` in the attempt's
folder, and reattaches instead of submitting again. Only when neither exists was nothing submitted.

**Sweeps as job arrays.** Jobs the runner claims in one round with the same :meth:`~SubmititExecutor.array_key`
(one sweep, the same resources; Slurm only) go out as one ``submit_array``: one ``sbatch --array=0-N%cap``
(``array_parallelism``) in the first job's attempt folder. Slurm keeps one comment per array, so the
records share one tag and each holds its ``array_index``: a runner killed after ``sbatch`` finds
``<array id>_<index>`` from any task the tag names, or from the task's ``<array>_<index>_submitted.pkl``.

**States without accounting.** One ``squeue`` per second for all the runner's jobs; a job that
``squeue`` no longer lists is looked at once more (``submitit_job.outcome``: ``scontrol``, then the
result file the job wrote) — no ``sacct``/``slurmdbd`` needed.
"""

from __future__ import annotations

import re
import signal
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable

from MLSystem.engine_view import cancel, squeue_states
from MLSystem.executor import Ending, Run
from MLSystem.jobs import Job, QueuePaths
from MLSystem.launcher_config import LauncherConfig
from MLSystem.paths import ProjectPaths
from MLSystem.placement import gpu_need
from MLSystem.scheduler import Placement, Pool
from MLSystem.submitit_job import (ACTIVE_STATES, BUSY, FAILED, FINISHED, STOPPED, Outcome, TrainJob, append_log_line,
                                   engine_state, engine_tag, find_tagged, make_executor, outcome)
from MLSystem.utils.procs import pid_alive

ENGINE_POLL_S = 1.0  # one squeue for all jobs at most this often
INTERRUPTED_RC = -int(signal.SIGKILL)  # no exit status: the engine ended the run (filed as infrastructure)
_RC = {FINISHED: 0, STOPPED: 3, BUSY: 4}
# Only the job's own variables travel with it; the rest of the environment is the allocation's
# (Slurm exports the submitting shell's environment by default, and sets its own SLURM_* ones).
_JOB_ENV = ("MLSYSTEM_", "PYTHONUNBUFFERED", "OMP_NUM_THREADS", "MKL_NUM_THREADS")


@dataclass
class _Handle:
    job: Any  # the submitit Job
    log: Path | None = None  # the queue job's log
    outcome: Outcome | None = None
    state: str = "PENDING"


class SubmititExecutor:
    """Jobs submitted through submitit; ``kind`` is ``"slurm"`` or ``"local"`` (submitit-local)."""

    remote = True  # jobs outlive the runner: a later runner reattaches by engine job id

    def __init__(self, kind: str, project: ProjectPaths, config: LauncherConfig | None = None, *,
                 max_running: int = 16, local_timeout_min: float | None = None):
        if kind not in ("slurm", "local"):
            raise ValueError(f"executor: {kind!r} (valid: slurm, local)")
        self.kind = kind
        self.name = "slurm" if kind == "slurm" else "submitit-local"
        self.project = project
        self.config = config or LauncherConfig()
        self._pool = Pool(slots=max_running)
        self._local = {"timeout_min": local_timeout_min} if local_timeout_min else {}
        self._states: dict[str, str] | None = {}
        self._states_at = 0.0
        self._resource_cache: dict[tuple, tuple[int, int, bool]] = {}

    # -- the Executor interface --------------------------------------------------------------------
    def pool(self) -> Pool:
        return self._pool

    def busy_gpus(self, runs: Iterable[Run]) -> set[str]:
        return set()  # the cluster allocates GPUs

    def engine_record(self, job: Job) -> dict[str, Any]:
        """What the job file holds about this attempt *before* it is submitted."""
        # numbered by the job's filed attempts + 1: unique per submission, also when a recovered
        # attempt is not counted (its tag must never match an earlier submission)
        n = len(job.history) + 1
        folder = self.project.queue / "engine" / job.id / str(n)
        return {"executor": self.name, "tag": engine_tag(job.id, n),
                "folder": str(folder.relative_to(self.project.root))}

    def engine_records(self, jobs: list[Job]) -> dict[str, dict[str, Any]]:
        """The records of jobs submitted together: one job alone, or a job array sharing the first
        job's attempt folder and a tag of its own (Slurm keeps one comment per array), each job with
        its ``array_index`` (its engine id will be ``<array id>_<index>``)."""
        first = jobs[0].id
        record = self.engine_record(jobs[0])
        if len(jobs) == 1:
            return {first: record}
        record["tag"] = engine_tag(f"array-{first}", len(jobs[0].history) + 1)
        return {j.id: {**record, "array_index": i, "array_size": len(jobs)} for i, j in enumerate(jobs)}

    def array_key(self, job: Job) -> tuple | None:
        """Jobs with the same key, claimed in one round, go out as one Slurm job array (capped by
        ``array_parallelism``): the jobs of one sweep (``submit``'s ``sweep`` id) with the same resources."""
        sweep = job.extra.get("sweep")
        if self.kind != "slurm" or not sweep or not self.config.array_parallelism:
            return None
        return (sweep, *self._resources(job))

    def start(self, job: Job, cmd: list[str], env: dict[str, str], cwd: Path, log: Path,
              placement: Placement) -> Run:
        return self.start_array([(job, cmd, env, log, placement)], cwd)[0]

    def start_array(self, launches: list[tuple[Job, list[str], dict[str, str], Path, Placement]],
                    cwd: Path) -> list[Run]:
        """Submit jobs (their engine records written): one job alone, several as one job array."""
        first = launches[0][0]
        record = first.engine or self.engine_record(first)
        devices, num_nodes, gpu = self._resources(first)
        name = f"mlsystem-{first.id}" if len(launches) == 1 else f"mlsystem-{first.extra.get('sweep', first.id)}"
        executor = make_executor(self.kind, self.project.root / record["folder"], self.config, devices=devices,
                                 num_nodes=num_nodes, gpu=gpu, job_name=name, **self._local)
        if self.kind == "slurm":
            executor.update_parameters(comment=record["tag"])
        tasks = [TrainJob(cmd, str(cwd), {k: v for k, v in env.items() if k.startswith(_JOB_ENV)}, str(log),
                          max_requeues=self.config.max_requeues, job_id=job.id) for job, cmd, env, log, _ in launches]
        try:
            submitted = [executor.submit(tasks[0])] if len(tasks) == 1 else executor.submit_array(tasks)
        except Exception as exc:  # sbatch refused it (bad partition, GPUs the cluster lacks...)
            raise OSError(f"{self.name} did not accept the job: {str(exc).strip().splitlines()[-1][:300]}") from exc
        return [Run(job.id, None, where, handle=_Handle(sub, log), engine_id=str(sub.job_id))
                for (job, _, _, log, where), sub in zip(launches, submitted)]

    def poll(self, run: Run) -> int | None:
        h: _Handle = run.handle
        if h.outcome is None:
            if not self._maybe_ended(h):
                return None
            got = outcome(h.job)
            if got is None:
                return None
            h.outcome = got
            h.state = "ENDED"
            if got.kind == FAILED and got.reason:
                append_log_line(h.log, f"error: {got.reason}")  # the filed error line (the runner reads the log's tail)
        if h.outcome.infrastructure:
            return INTERRUPTED_RC
        return _RC.get(h.outcome.kind, h.outcome.exit_code if h.outcome.exit_code else 1)

    def stop(self, run: Run, how: str) -> None:
        record = Job(id=run.job_id, kind="train", args=[],
                     engine={"executor": self.name, "job_id": run.engine_id})
        if how == "kill":
            cancel(record)
        # "graceful"/"interrupt": the runner wrote the stop flag first (the job reads it on the shared
        # filesystem at its next step). A user's stop goes through the engine's signal instead
        # (queue_store.request_stop -> engine_view.signal_stop), which needs the job's folder.

    def classify(self, run: Run, status: int) -> Ending:
        got: Outcome | None = run.handle.outcome
        if got is not None and got.infrastructure:
            return Ending(status, None, infrastructure=f"{self.name} job {run.engine_id}: {got.reason}")
        return Ending(status)

    # -- beyond the interface: engine state, reattach ----------------------------------------------
    def state(self, run: Run) -> str:
        """The engine's state of a running job as last seen (PENDING, RUNNING, ...)."""
        return run.handle.state

    def reattach(self, job: Job) -> Run | None:
        """The run of a job a dead runner submitted (found by engine id, tag or submission file),
        or None when nothing was submitted for this attempt."""
        engine = job.engine or {}
        folder = self.project.root / engine.get("folder", "")
        jid = engine.get("job_id")
        index = engine.get("array_index")
        if not jid and self.kind == "slurm" and engine.get("tag"):
            found = find_tagged(engine["tag"])
            if index is not None:  # any task of the array names it: this job is its task `index`
                jid = f"{found[-1].split('_')[0]}_{index}" if found else None
            else:
                jid = found[-1] if found else None
        if not jid and engine.get("folder"):
            wanted = re.compile(rf"^(\d+_{index})_submitted\.pkl$" if index is not None else r"^(\d+)_submitted\.pkl$")
            pickles = sorted((p for p in folder.glob("*_submitted.pkl") if wanted.match(p.name)),
                             key=lambda p: p.stat().st_mtime)
            jid = wanted.match(pickles[-1].name).group(1) if pickles else None
        if not jid:
            return None
        import submitit  # lazy: only a cluster runner needs it

        cls = submitit.SlurmJob if self.kind == "slurm" else submitit.LocalJob
        log = QueuePaths(self.project.queue).log(job.id)
        handle = _Handle(cls(folder=folder, job_id=str(jid)), log, state=engine.get("state") or "PENDING")
        where = Placement.from_dict(job.placement) or Placement(0)
        return Run(job.id, None, where, handle=handle, engine_id=str(jid))

    # -- internals -----------------------------------------------------------------------------------
    def _maybe_ended(self, h: _Handle) -> bool:
        """Cheap test before the full outcome: the result file, else the engine's listing."""
        if h.job.paths.result_pickle.exists():
            return True
        if self.kind == "local":
            process = getattr(h.job, "_process", None)
            alive = process.poll() is None if process is not None else pid_alive(int(h.job.job_id))
            h.state = "RUNNING" if alive else "ENDED"
            return not alive
        now = time.monotonic()
        if now - self._states_at >= ENGINE_POLL_S:
            self._states, self._states_at = squeue_states(), now
        if self._states is None:  # squeue failed: ask about this job alone (scontrol, result file)
            state = engine_state(h.job)
        else:
            state = self._states.get(str(h.job.job_id), "")
        if state in ACTIVE_STATES:
            h.state = state
            return False
        return True

    def _merged_resources(self, job: Job) -> tuple[int, int, bool]:
        """``devices`` (per node), ``num_nodes`` and whether the job trains on GPUs, from its merged config."""
        from MLSystem.config_merge import merge_config  # lazy: Hydra, only when a job is submitted

        try:
            params = merge_config(job.args, paths=self.project).params
        except Exception:  # bad input: the job itself reports it (exit 2) in its allocation
            params = {}
        need = gpu_need(params.get("accelerator", "auto"), params.get("devices", "auto"), 1)
        devices = str(params.get("devices", "1")).strip()
        count = int(devices) if re.fullmatch(r"\d+", devices) and int(devices) > 0 else \
            len([d for d in re.split(r"[,\[\]\s]+", devices) if d.isdigit()]) if "," in devices else 1
        try:
            nodes = max(1, int(params.get("num_nodes", 1)))
        except (TypeError, ValueError):
            nodes = 1
        return max(1, count), nodes, bool(need.gpus)

    def _resources(self, job: Job) -> tuple[int, int, bool]:
        key = (job.id, tuple(job.args))
        if key not in self._resource_cache:  # asked when grouping a sweep and again when submitting
            self._resource_cache[key] = self._merged_resources(job)
        return self._resource_cache[key]
