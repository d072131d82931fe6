"""Ask and tell: one study's trials as queue jobs.

* :meth:`StudyDriver.fill` asks Optuna for new trials until ``parallel`` of them are active or
  the study has ``trials`` trials. Each becomes a train job (``extra: {"study", "trial"}``)
  through ``submit`` — its own experiment ID. A trial whose experiment is already complete is
  told at once from the experiment's metrics (never retrained); one whose experiment is already
  queued is attached to that job.
* :meth:`StudyDriver.job_ended` (the runner's hook) tells the trials of a filed job, then fills.
* :meth:`StudyDriver.reconcile` (``tune`` at start) repairs what an interruption left: trials
  whose job ended while no hook ran, trials whose job was deleted or stopped by hand.
* :meth:`StudyDriver.poll` (the runner's hook, about once a second) reports the metric of every
  finished epoch to Optuna and asks the pruner; a pruned trial's job gets the ordinary stop
  request (checkpoint at the next step, job ``stopped``), and is told ``PRUNED`` when filed.

Everything that changes the study happens under the study's lock, so the ``tune`` command and a
runner never over-ask.
"""

from __future__ import annotations

import logging
from typing import Any, Callable

from MLSystem.errors import ConfigError, MLSystemError
from MLSystem.jobs import Job, QueueError, Status
from MLSystem.queue_store import JobQueue
from MLSystem.metrics_reader import MetricSeries, MetricsTail, read_rows
from MLSystem.paths import ProjectPaths
from MLSystem.tune.space import SearchSpace, parse_space
from MLSystem.submit import submit
from MLSystem.tune.store import StudySpec, StudyStore, make_pruner, make_sampler, studies_dir
from MLSystem.utils.metric_mode import best_of

log = logging.getLogger("MLSystem.tune")

# Trial user attributes (also read by the report and the cockpit).
EXPERIMENT, JOB, OVERRIDES, PRUNED_AT, ERROR, REUSED = "experiment_id", "job", "overrides", "pruned_at_epoch", "error", "reused"
MAX_CONSECUTIVE_INVALID = 20  # sampled configs rejected by the config checks before giving up


def experiment_value(paths: ProjectPaths, experiment_id: str, metric: str, mode: str,
                     how: str = "best") -> tuple[float | None, int]:
    """The trial value of an experiment (best or last epoch value of ``metric``) and how many
    epochs logged it. One reader: ``metrics_reader``."""
    series = MetricSeries.from_rows(read_rows(paths.experiment(experiment_id).metrics))
    values = [float(r[metric]) for r in series.epochs if isinstance(r.get(metric), (int, float))]
    if not values:
        return None, 0
    return (values[-1] if how == "last" else best_of(values, mode)), len(values)


def epoch_values(rows: list[dict[str, Any]], metric: str) -> dict[int, float]:
    """``{epochs completed: value}`` from metrics rows (the pruner's step is the epoch count)."""
    out = {}
    for row in rows:
        if row.get("kind") == "epoch" and isinstance(row.get(metric), (int, float)):
            out[int(row.get("epoch", 0)) + 1] = float(row[metric])
    return out


def attached_file(paths: ProjectPaths, job_id: str):
    """Marks a job of another study (or none) that a trial of this study waits for."""
    return studies_dir(paths) / ".attached" / job_id


class StudyDriver:
    """One study: its spec, Optuna study object and queue."""

    def __init__(self, paths: ProjectPaths, name: str, queue: JobQueue | None = None,
                 say: Callable[[str], None] | None = None):
        self.paths = paths
        self.store = StudyStore(paths, name)
        self.spec: StudySpec = self.store.read_spec()
        self.queue = queue or JobQueue(paths)
        self.say = say or (lambda text: log.info(text))
        self._study = None
        self._storage = None
        self._space: SearchSpace | None = None
        self._tails: dict[str, MetricsTail] = {}

    # -- Optuna objects --------------------------------------------------------------------------
    @property
    def space(self) -> SearchSpace:
        if self._space is None:
            self._space = parse_space(self.spec.overrides, self.spec.extra.get("int_keys", ()))
        return self._space

    @property
    def study(self):
        if self._study is None:
            import optuna

            optuna.logging.set_verbosity(optuna.logging.WARNING)
            self._storage = self.store.storage()
            self._study = optuna.create_study(
                study_name=self.spec.name, storage=self._storage, direction=self.spec.direction,
                sampler=make_sampler(self.spec.sampler, self.spec.seed), pruner=make_pruner(self.spec.pruner),
                load_if_exists=True)
        return self._study

    def trials(self):
        return self.study.get_trials(deepcopy=False)

    # -- asking ----------------------------------------------------------------------------------
    def fill(self) -> list[str]:
        """Queue new trials until ``parallel`` are active or the budget is used; returns messages."""
        from optuna.trial import TrialState

        said: list[str] = []
        invalid = 0
        with self.store.locked():
            while True:
                trials = self.trials()
                active = [t for t in trials if t.state in (TrialState.RUNNING, TrialState.WAITING)]
                if len(trials) >= self.spec.trials or len(active) >= max(1, self.spec.parallel):
                    break
                # A fresh sampler seeded by the trial count: every process (tune, each runner) draws
                # trial n the same way, and a continued study does not replay the first draws.
                self.study.sampler = make_sampler(self.spec.sampler, self.spec.seed + len(trials))
                trial = self.study.ask(self.space.space)
                overrides = self.space.trial_overrides(trial.params)
                trial.set_user_attr(OVERRIDES, overrides)
                try:
                    report = submit(overrides, queue=self.queue,
                                    extra={"study": self.spec.name, "trial": trial.number})
                except ConfigError as exc:  # the sampled combination fails a config check
                    trial.set_user_attr(ERROR, str(exc))
                    self.study.tell(trial, state=TrialState.FAIL)
                    said.append(f"trial {trial.number}: invalid configuration: {exc}")
                    invalid += 1
                    if invalid >= MAX_CONSECUTIVE_INVALID:
                        raise ConfigError(f"study {self.spec.name}: {invalid} sampled configurations in a row "
                                          f"were invalid (last: {exc}); narrow the search space") from None
                    continue
                invalid = 0
                if report.queued:
                    q = report.queued[0]
                    trial.set_user_attr(EXPERIMENT, q["experiment_id"])
                    trial.set_user_attr(JOB, q["job"])
                    said.append(f"trial {trial.number}: queued {q['job']} experiment {q['experiment_id']} "
                                f"({q['action']}) {' '.join(f'{k}={v}' for k, v in trial.params.items())}")
                    continue
                skipped = report.skipped[0]
                eid = skipped["experiment_id"]
                trial.set_user_attr(EXPERIMENT, eid)
                busy = self.queue.find_active([eid]).get(eid)
                if busy is not None:  # the same experiment is already queued: share its job
                    trial.set_user_attr(JOB, busy.id)
                    if busy.extra.get("study") != self.spec.name:  # tell the hook who waits for it
                        mark = attached_file(self.paths, busy.id)
                        mark.parent.mkdir(parents=True, exist_ok=True)
                        mark.write_text(self.spec.name + "\n")
                    said.append(f"trial {trial.number}: experiment {eid} is already {busy.status} as {busy.id}")
                    continue
                trial.set_user_attr(REUSED, True)
                said.append(self._tell_from_experiment(trial.number, eid, reused=True))
        return said

    # -- telling ---------------------------------------------------------------------------------
    def _tell_from_experiment(self, number: int, eid: str, *, reused: bool = False, pruned: bool = False) -> str:
        from optuna.trial import TrialState

        if pruned:
            self.study.tell(number, state=TrialState.PRUNED, skip_if_finished=True)
            return f"trial {number}: pruned (experiment {eid} stopped with its checkpoint; extend it any time)"
        value, epochs = experiment_value(self.paths, eid, self.spec.metric, self.spec.mode, self.spec.value)
        if value is None:
            self._storage.set_trial_user_attr(self._trial_id(number), ERROR,
                                           f"experiment {eid} logged no {self.spec.metric!r} at any epoch end")
            self.study.tell(number, state=TrialState.FAIL, skip_if_finished=True)
            return f"trial {number}: failed: experiment {eid} logged no {self.spec.metric}"
        self.study.tell(number, value, skip_if_finished=True)
        how = "reused existing experiment" if reused else "complete"
        return f"trial {number}: {how} {eid}: {self.spec.metric} {value:.6g} ({self.spec.value} of {epochs} epochs)"

    def _trial_id(self, number: int) -> int:
        self.study  # noqa: B018 - opens the storage
        return self.trials()[number]._trial_id

    def job_ended(self, job: Job) -> list[str]:
        """Tell the trials served by a filed job, then queue the next trials."""
        said = []
        with self.store.locked():
            said += self._settle(lambda t: t.user_attrs.get(JOB) == job.id
                                 or (job.experiment_id and t.user_attrs.get(EXPERIMENT) == job.experiment_id),
                                 {job.id: job})
        self._tails.pop(job.id, None)
        return said + self.fill()

    def reconcile(self) -> list[str]:
        """Settle running trials whose job is no longer pending or running (after an interruption)."""
        with self.store.locked():
            return self._settle(lambda t: True, {})

    def _settle(self, wanted: Callable[[Any], bool], known: dict[str, Job]) -> list[str]:
        from optuna.trial import TrialState

        said = []
        for t in self.trials():
            if t.state != TrialState.RUNNING or not wanted(t):
                continue
            eid, job_id = t.user_attrs.get(EXPERIMENT), t.user_attrs.get(JOB)
            if not eid:  # asked but never queued (interrupted between ask and submit)
                self.study.tell(t.number, state=TrialState.FAIL, skip_if_finished=True)
                said.append(f"trial {t.number}: failed: interrupted before it was queued")
                continue
            job = known.get(job_id) if job_id else None
            if job is None and job_id:
                try:
                    job = self.queue.get(job_id)
                except QueueError:
                    job = None
            status = job.status if job else None
            if status in (Status.PENDING.value, Status.RUNNING.value):
                continue
            if status == Status.FINISHED.value:
                said.append(self._tell_from_experiment(t.number, eid))
            elif status == Status.STOPPED.value and t.user_attrs.get(PRUNED_AT) is not None:
                said.append(self._tell_from_experiment(t.number, eid, pruned=True))
            elif status == Status.FAILED.value:
                self._storage.set_trial_user_attr(t._trial_id, ERROR, (job.error or job.note or "failed").splitlines()[0])
                self.study.tell(t.number, state=TrialState.FAIL, skip_if_finished=True)
                said.append(f"trial {t.number}: failed ({job.id}: {(job.note or '').splitlines()[0] if job.note else 'failed'})")
            elif status == Status.STOPPED.value and job is not None:  # stopped by hand: the study goes on
                self.queue.requeue(job.id)
                said.append(f"trial {t.number}: {job.id} was stopped by hand; requeued (resumes from its checkpoint)")
            else:  # its job was deleted: the experiment decides
                report = submit(t.user_attrs.get(OVERRIDES) or [], queue=self.queue,
                                extra={"study": self.spec.name, "trial": t.number})
                if report.queued:
                    self._storage.set_trial_user_attr(t._trial_id, JOB, report.queued[0]["job"])
                    said.append(f"trial {t.number}: job {job_id} is gone; queued {report.queued[0]['job']}")
                else:
                    busy = self.queue.find_active([eid]).get(eid)
                    if busy is not None:
                        self._storage.set_trial_user_attr(t._trial_id, JOB, busy.id)
                    else:
                        said.append(self._tell_from_experiment(t.number, eid, reused=True))
        return said

    # -- pruning ---------------------------------------------------------------------------------
    def poll(self, job: Job) -> str | None:
        """Report new epoch values of a running trial; request a graceful stop when pruned."""
        from optuna.trial import Trial, TrialState

        if self.spec.pruner.split(":", 1)[0] in ("none", "") or not job.experiment_id:
            return None
        number = job.extra.get("trial")
        tail = self._tails.get(job.id)
        if tail is None:
            tail = self._tails[job.id] = MetricsTail(self.paths.experiment(job.experiment_id).metrics)
        new = epoch_values(tail.poll(), self.spec.metric)
        if not new or not isinstance(number, int):
            return None
        with self.store.locked():
            trials = self.trials()
            if number >= len(trials) or trials[number].state != TrialState.RUNNING:
                return None  # e.g. a pruned trial's job requeued by hand: the study's record is final
            frozen = trials[number]
            if frozen.user_attrs.get(PRUNED_AT) is not None:
                return None
            trial = Trial(self.study, frozen._trial_id)
            for step, value in sorted(new.items()):
                if step not in frozen.intermediate_values:
                    trial.report(value, step)
            if not trial.should_prune():
                return None
            step = max(new)
            trial.set_user_attr(PRUNED_AT, step)
        try:
            self.queue.request_stop(job.id)
        except MLSystemError as exc:  # it ended meanwhile: job_ended settles it
            return f"trial {number}: pruned at epoch {step}, but {job.id} could not be stopped: {exc}"
        return (f"trial {number}: pruned at epoch {step} ({self.spec.metric} {new[step]:.6g}); "
                f"stopping {job.id} gracefully (checkpoint kept)")
