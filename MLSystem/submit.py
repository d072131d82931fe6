"""Queue jobs and control the queue: ``python -m MLSystem.submit ...`` (every command takes ``--json``).

    python -m MLSystem.submit dataset=digits model=cnn max_epochs=3 --priority 5
    python -m MLSystem.submit dataset=digits model=mlp lr=0.1,0.01,0.001     # a sweep: three jobs
    python -m MLSystem.submit --plot EXPERIMENT_ID                           # a plot job
    python -m MLSystem.submit --list [--all]                                 # the queue, with ETAs
    python -m MLSystem.submit --show JOB | --stop JOB | --requeue JOB... | --delete JOB
    python -m MLSystem.submit --hold JOB | --release JOB | --next JOB | --set-priority JOB N
    python -m MLSystem.submit --move JOB --before OTHER   (or --after OTHER)
    python -m MLSystem.submit --edit JOB lr=0.05           # change a pending job's overrides
    python -m MLSystem.submit --drain [--cancel]           # the runner finishes its running jobs, then exits

Overrides are validated before anything is queued (unknown dataset/model/adapter/key, wrong
type -> one clear error, nothing written); sweeps (``a=1,2 b=x,y``, ``range(…)``) become one job
per combination. Each job prints its id, experiment ID and what will happen (new / resume /
extend / complete). A job whose experiment is already pending or running, or already complete,
is not queued again unless ``--force``. Job ids may be abbreviated to a unique prefix.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
import uuid
from dataclasses import asdict, dataclass, field
from typing import Any, Iterable, Sequence

from MLSystem.builder import ExperimentBuilder, Neighbours
from MLSystem.overrides import expand_sweeps, parse_overrides, to_override
from MLSystem.engine_view import describe, live_states
from MLSystem.errors import ConfigError, ExitCode, MLSystemError
from MLSystem.eta import estimate
from MLSystem.experiment_store import resolve_id
from MLSystem.jobs import DEFAULT_MAX_ATTEMPTS, Action, Job, Kind, QueueError, QueueInputError, Status, new_job_id
from MLSystem.paths import ProjectPaths
from MLSystem.queue_store import JobQueue
from MLSystem.records import SELECTION_KEYS, ExperimentRecord
from MLSystem.registry import Registry
from MLSystem.scheduler import Placement, describe_runner
from MLSystem.utils.clock import format_seconds, parse_iso
from MLSystem.utils.cli import EXIT_INTERRUPTED, DeferredInterrupt, run_main


@dataclass
class Planned:
    """One validated job-to-be: its overrides, experiment and what execute_train will do."""

    args: list[str]
    experiment_id: str
    action: str
    message: str
    dataset: str
    model: str
    adapter: str
    max_epochs: int
    nearest: dict[str, Any] | None = None  # a new experiment: the closest existing one and what differs


@dataclass
class SubmitReport:
    queued: list[dict] = field(default_factory=list)  # {job, experiment_id, action, message}
    skipped: list[dict] = field(default_factory=list)  # {experiment_id, args, reason}


def plan(overrides: Iterable[str], *, paths: ProjectPaths | None = None) -> list[Planned]:
    """Expand sweeps and validate every combination; raises :class:`ConfigError` naming the bad one."""
    paths = paths or ProjectPaths.discover()
    overrides = list(overrides)
    combos = expand_sweeps(overrides)
    registry = Registry.load(paths)
    typed: dict[str, dict[str, Any]] = {}  # each distinct "key=value" is parsed once, not per combination
    out = []
    neighbours: Neighbours | None = None  # experiments on disk, listed at the first new combination
    for combo in combos:
        values: dict[str, Any] = {}
        for text in combo:
            if text not in typed:
                typed[text] = parse_overrides([text])
            values.update(typed[text])
        try:
            ctx = ExperimentBuilder(values, paths=paths, registry=registry).build()
        except ConfigError as exc:
            where = f" (in sweep combination {' '.join(combo)})" if len(combos) > 1 else ""
            raise ConfigError(f"{exc}{where}") from None
        decision = ctx.decide()
        sel = ctx.selection
        message, near = decision.message, None
        if decision.action == Action.NEW and neighbours is None:
            # Listed once per submission; the keys the sweep varies are the only ones to compare per combination.
            varying = {t.split("=", 1)[0].lstrip("+~") for c in combos for t in c if any(t not in o for o in combos)}
            neighbours = Neighbours.from_index(paths, varying)
        if decision.action == Action.NEW and (near := ctx.nearest(neighbours)):
            message += f" ({near['text']})"  # the same words execute_train and the cockpit use
        out.append(Planned(combo, ctx.experiment_id, decision.action, message, sel.dataset, sel.model,
                           sel.adapter, int(ctx.all_params["max_epochs"]), near))
    return out


def submit(overrides: Iterable[str], *, priority: int = 0, force: bool = False, held: bool = False,
           max_attempts: int = DEFAULT_MAX_ATTEMPTS, dry_run: bool = False,
           queue: JobQueue | None = None, extra: dict[str, Any] | None = None) -> SubmitReport:
    """Validate, expand and queue training jobs (the CLI and the cockpit both call this); all or none.
    ``extra`` keys are stored in each job file (e.g. the study and trial a job belongs to)."""
    queue = queue or JobQueue()
    report, jobs = prepare(overrides, priority=priority, force=force, held=held, max_attempts=max_attempts,
                           queue=queue, extra=extra)
    if jobs and not dry_run:
        queue.add_many(jobs)
    return report


def prepare(overrides: Iterable[str], *, priority: int = 0, force: bool = False, held: bool = False,
            max_attempts: int = DEFAULT_MAX_ATTEMPTS, queue: JobQueue,
            extra: dict[str, Any] | None = None) -> tuple[SubmitReport, list[Job]]:
    """Validate and expand into jobs, queueing nothing: the report and the jobs :func:`submit` would queue."""
    planned = plan(overrides, paths=queue.project)
    active = queue.find_active(p.experiment_id for p in planned) if not force else {}
    if len(planned) > 1 and "sweep" not in (extra or {}):
        # the jobs of one sweep, named together (a Slurm runner submits them as one job array)
        extra = {**(extra or {}), "sweep": f"sweep-{uuid.uuid4().hex[:8]}"}
    report, jobs, seen = SubmitReport(), [], set()
    for p in planned:
        reason = None
        if not force:
            if p.experiment_id in active:
                other = active[p.experiment_id]
                reason = f"already {other.status} as {other.id} (use --force to queue it again)"
            elif p.experiment_id in seen:
                reason = "same experiment as an earlier combination of this submission"
            elif p.action == Action.COMPLETE:
                reason = f"{p.message}: nothing to train (raise max_epochs for more, or --force)"
        if reason:
            report.skipped.append({"experiment_id": p.experiment_id, "args": p.args, "reason": reason})
            continue
        seen.add(p.experiment_id)
        job = Job(id=new_job_id(), kind=Kind.TRAIN.value, args=p.args, experiment_id=p.experiment_id,
                  action=p.action, dataset=p.dataset, model=p.model, adapter=p.adapter, max_epochs=p.max_epochs,
                  priority=int(priority), held=held, max_attempts=max_attempts, note=f"submitted: {p.message}",
                  extra=dict(extra or {}))
        jobs.append(job)
        report.queued.append({"job": job.id, "experiment_id": p.experiment_id, "action": p.action,
                              "message": p.message, "args": p.args, "nearest": p.nearest})
    return report, jobs


def submit_plot(experiment: str, *, priority: int = 0, queue: JobQueue | None = None) -> Job:
    """Queue ``python -m MLSystem.execute_plot EXPERIMENT_ID`` (the experiment must exist)."""
    queue = queue or JobQueue()
    eid = resolve_id(queue.project, experiment)
    return queue.add(Job(id=new_job_id(), kind=Kind.PLOT.value, args=[eid], experiment_id=eid, action=Action.PLOT.value,
                         priority=int(priority), note=f"submitted: plots of {eid}"))


def edit_overrides(queue: JobQueue, ref: str, changes: Iterable[str], *, replace: bool = False) -> Job:
    """Merge ``key=value`` changes into a pending train job (``replace``: they become its whole
    override list, as the cockpit's edit form sends), re-validate and re-derive its experiment."""
    job = queue.get(ref)
    if job.kind != Kind.TRAIN.value:
        raise QueueError(f"job {job.id} is a {job.kind} job; only train jobs have overrides to edit")
    changes = list(changes)
    if not changes:
        raise QueueInputError("--edit: give the key=value overrides to change")
    parse_overrides(changes)  # rejects sweeps: one job stays one job
    args = changes if replace else with_overrides(job.args, changes)
    [p] = plan(args, paths=queue.project)
    return queue.edit(job.id, args=p.args, experiment_id=p.experiment_id, action=p.action, dataset=p.dataset,
                      model=p.model, adapter=p.adapter, max_epochs=p.max_epochs, note=f"edited: {p.message}")


def with_overrides(args: Iterable[str], changes: Iterable[str]) -> list[str]:
    """``args`` with every key that ``changes`` sets replaced by its new ``key=value``."""
    changes = list(changes)
    keys = {c.split("=", 1)[0] for c in changes}
    return [a for a in args if a.split("=", 1)[0] not in keys] + changes


def experiment_overrides(record: ExperimentRecord) -> list[str]:
    """The overrides that rebuild an existing experiment (same ID): its selection, warm-start
    parent and the identity values that differ from the defaults (``experiment.json`` "identity")."""
    ident = record.identity
    args = [to_override(k, ident[k]) for k in SELECTION_KEYS if ident.get(k)]
    return args + [to_override(k, v) for k, v in sorted((ident.get("params") or {}).items())]


# -- CLI --------------------------------------------------------------------------------------------
def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m MLSystem.submit", description=__doc__.split("\n\n")[0],
                                epilog=__doc__.split("\n\n", 1)[1], formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("overrides", nargs="*", help="key=value overrides (sweeps: a=1,2); with --edit: the changes")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.add_argument("--priority", type=int, default=0, help="higher runs first (default 0)")
    p.add_argument("--force", action="store_true", help="queue even if pending/running/complete")
    p.add_argument("--held", action="store_true", help="queue on hold (runs after --release)")
    p.add_argument("--max-attempts", type=int, default=DEFAULT_MAX_ATTEMPTS,
                   help=f"runs allowed after infrastructure interruptions (default {DEFAULT_MAX_ATTEMPTS})")
    p.add_argument("--dry-run", action="store_true", help="validate and print, queue nothing")
    act = p.add_mutually_exclusive_group()
    act.add_argument("--plot", metavar="EXPERIMENT_ID", help="queue a plot job for an experiment")
    act.add_argument("--list", action="store_true", help="show the queue")
    act.add_argument("--show", metavar="JOB", help="one job's full record")
    act.add_argument("--stop", metavar="JOB", help="graceful stop (running: checkpoint, then stopped/)")
    act.add_argument("--requeue", metavar="JOB", nargs="+", help="failed/stopped jobs back to pending")
    act.add_argument("--delete", metavar="JOB", nargs="+", help="remove jobs that are not running")
    act.add_argument("--hold", metavar="JOB", nargs="+", help="keep pending jobs from running")
    act.add_argument("--release", metavar="JOB", nargs="+", help="undo --hold")
    act.add_argument("--next", metavar="JOB", help="run this pending job next")
    act.add_argument("--set-priority", nargs=2, metavar=("JOB", "N"), help="change a pending job's priority")
    act.add_argument("--move", metavar="JOB", help="reorder a pending job (with --before or --after)")
    act.add_argument("--edit", metavar="JOB", help="change a pending job's overrides (given as key=value)")
    act.add_argument("--drain", action="store_true", help="the runner finishes its running jobs, starts no more, then exits")
    p.add_argument("--before", metavar="OTHER")
    p.add_argument("--after", metavar="OTHER")
    p.add_argument("--cancel", action="store_true", help="with --drain: withdraw the drain request")
    p.add_argument("--all", action="store_true", help="with --list: every finished/failed/stopped job")
    return p


class _Out:
    def __init__(self, as_json: bool):
        self.as_json = as_json

    def emit(self, data: Any, text: str) -> None:
        print(json.dumps(data, indent=2, default=str) if self.as_json else text)


def _job_line(job: Job) -> str:
    return f"{job.id}  {job.status:<8} experiment {job.experiment_id or '-'}  {job.note}"


def _do_list(queue: JobQueue, out: _Out, show_all: bool) -> None:
    jobs = queue.list()
    etas = estimate(queue, [j for j in jobs if j.status in (Status.PENDING.value, Status.RUNNING.value)])
    # cluster jobs: the engine's state now (one squeue for all), also while no runner follows them
    engine = live_states([j for j in jobs if j.status == Status.RUNNING.value])
    if out.as_json:
        rows = []
        for j in jobs:
            row = j.to_dict()
            if j.id in etas:
                row["eta"] = asdict(etas[j.id])
            if j.id in engine:
                row["engine_state"] = engine[j.id]
            rows.append(row)
        out.emit({"jobs": rows, "runner": queue.active_runner(), "drain": queue.drain_requested()}, "")
        return
    runner = queue.active_runner()
    slots = describe_runner(runner)
    print(f"queue {queue.paths.root}: runner " + (f"pid {runner['pid']} since {runner['since']}" if runner else "not running")
          + (f" ({runner['executor']})" if runner and runner.get("executor", "local") != "local" else "")
          + (f", {slots}" if slots else "") + (" (draining)" if queue.drain_requested() else ""))
    by_status: dict[str, list[Job]] = {s.value: [] for s in Status}
    for j in jobs:
        by_status[j.status].append(j)
    for j in by_status[Status.RUNNING]:
        since = parse_iso(j.started)
        took = format_seconds(time.time() - since) if since else "?"
        where = Placement.from_dict(j.placement)
        at = (describe(j, engine.get(j.id)) if j.engine else (where.describe() + "  " if where else "") + f"pid {j.pid}")
        print(f"running   {j.id}  {j.experiment_id or '-':<12}  {at}  {took} so far  "
              f"{'(stop requested) ' if j.stop_requested else ''}{' '.join(j.args)}")
    for n, j in enumerate(by_status[Status.PENDING], 1):
        eta = etas.get(j.id)
        when = "held" if j.held else (("≥" if eta and eta.lower_bound else "") + format_seconds(eta.start_in)
                                       if eta else "?")
        took = format_seconds(eta.duration) if eta and eta.duration is not None else "?"
        print(f"pending {n:>3} {j.id}  {j.experiment_id or '-':<12}  p{j.priority:<3} {j.action or j.kind:<8} "
              f"starts in {when:<8} takes {took:<7} {' '.join(j.args)}"
              + (f"  [{j.note}]" if j.note.startswith("waiting") else ""))
    for s in (Status.FINISHED, Status.STOPPED, Status.FAILED):
        shown = by_status[s] if show_all else by_status[s][:10]
        for j in shown:
            first = (j.error or j.note or "").splitlines()[0] if (j.error or j.note) else ""
            print(f"{s:<9} {j.id}  {j.experiment_id or '-':<12}  exit {j.exit_code}  {first[:100]}")
        if len(by_status[s]) > len(shown):
            print(f"{s:<9} … {len(by_status[s]) - len(shown)} more (--all)")
    if not jobs:
        print("(empty)")


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    out = _Out(args.json)
    try:
        queue = JobQueue(ProjectPaths.discover())
        return _dispatch(args, queue, out)
    except MLSystemError as exc:
        if args.json:
            print(json.dumps({"error": str(exc)}))
        else:
            print(f"error: {exc}", file=sys.stderr)
        return int(exc.exit_code if isinstance(exc, ConfigError) else ExitCode.BAD_INPUT)


def _dispatch(args: argparse.Namespace, queue: JobQueue, out: _Out) -> int:
    if (args.before or args.after) and not args.move:
        raise QueueInputError("--before/--after go with --move JOB")
    extra_ok = args.edit is not None or not (args.list or args.show or args.stop or args.requeue or args.delete
                                              or args.hold or args.release or args.next or args.set_priority
                                              or args.move or args.drain or args.plot)
    if args.overrides and not extra_ok:
        raise QueueInputError(f"unexpected overrides {' '.join(args.overrides)}: they go with a new job or --edit")
    if args.list:
        _do_list(queue, out, args.all)
    elif args.show:
        job = queue.get(args.show)
        out.emit(job.to_dict(), json.dumps(job.to_dict(), indent=2, default=str))
    elif args.stop:
        job, message = queue.request_stop(args.stop)
        out.emit({"job": job.id, "message": message}, message)
    elif args.requeue:
        jobs = [queue.requeue(r) for r in args.requeue]
        out.emit({"requeued": [j.id for j in jobs]},
                 "\n".join(f"requeued {j.id} (experiment {j.experiment_id or '-'}): resumes from its last checkpoint"
                           for j in jobs))
    elif args.delete:
        jobs = [queue.delete(r) for r in args.delete]
        out.emit({"deleted": [j.id for j in jobs]}, "\n".join(f"deleted {j.id} ({j.status})" for j in jobs))
    elif args.hold or args.release:
        jobs = [queue.hold(r) for r in args.hold] if args.hold else [queue.release(r) for r in args.release]
        word = "held" if args.hold else "released"
        out.emit({word: [j.id for j in jobs]}, "\n".join(f"{word} {j.id}" for j in jobs))
    elif args.next:
        job = queue.run_next(args.next)
        out.emit(job.to_dict(), f"{job.id} runs next (priority {job.priority})")
    elif args.set_priority:
        ref, value = args.set_priority
        try:
            priority = int(value)
        except ValueError:
            raise QueueInputError(f"--set-priority: {value!r} is not an integer") from None
        job = queue.set_priority(ref, priority)
        out.emit(job.to_dict(), f"{job.id} priority {job.priority}")
    elif args.move:
        if (args.before is None) == (args.after is None):
            raise QueueInputError("--move JOB: also give --before OTHER or --after OTHER (one of them)")
        job = queue.move(args.move, before=args.before, after=args.after)
        out.emit(job.to_dict(), f"moved {job.id} {'before ' + args.before if args.before else 'after ' + str(args.after)}"
                                f" (priority {job.priority})")
    elif args.edit:
        job = edit_overrides(queue, args.edit, args.overrides)
        out.emit(job.to_dict(), f"edited {job.id}: experiment {job.experiment_id}: {job.note}")
    elif args.drain:
        if args.cancel:
            had = queue.cancel_drain()
            out.emit({"drain": False, "was_requested": had}, "drain request withdrawn" if had else "no drain was requested")
        else:
            runner = queue.active_runner()
            if runner is None:
                out.emit({"drain": False, "runner": None}, "no runner is active; nothing to drain")
            else:
                queue.request_drain()
                out.emit({"drain": True, "runner": runner},
                         f"runner pid {runner['pid']} will finish its running job(s), start no more, then exit")
    elif args.plot:
        job = submit_plot(args.plot, priority=args.priority, queue=queue)
        out.emit({"queued": [{"job": job.id, "experiment_id": job.experiment_id, "action": Action.PLOT}], "skipped": []},
                 f"queued {job.id}  experiment {job.experiment_id}  plot")
    else:
        if not args.overrides:
            raise QueueInputError("nothing to submit: give key=value overrides (e.g. dataset=digits model=cnn) "
                             "or an action such as --list; see --help")
        # Ctrl-C while validating: nothing is queued. Once queueing starts, it is held until every
        # job is written and its id printed, so what was queued is always exactly what was shown.
        report, jobs = prepare(args.overrides, priority=args.priority, force=args.force, held=args.held,
                               max_attempts=args.max_attempts, queue=queue)
        verb = "would queue" if args.dry_run else "queued"
        lines = [f"{verb} {q['job']}  experiment {q['experiment_id']}  {q['message']}"
                 + (f"  (priority {args.priority})" if args.priority else "") + ("  [held]" if args.held else "")
                 for q in report.queued]
        lines += [f"skipped experiment {s['experiment_id']}: {s['reason']}" for s in report.skipped]
        with DeferredInterrupt() as held_signal:
            if jobs and not args.dry_run:
                queue.add_many(jobs)
            out.emit({**asdict(report), "dry_run": args.dry_run}, "\n".join(lines))
            sys.stdout.flush()
        if held_signal.signal:
            print(f"interrupted ({held_signal.signal}) after queueing: the {len(jobs)} job(s) above are queued",
                  file=sys.stderr)
            return EXIT_INTERRUPTED
    return int(ExitCode.OK)


if __name__ == "__main__":
    sys.exit(run_main(main))
