"""Hyperparameter search through the queue: ``python -m MLSystem.tune``.

    python -m MLSystem.tune dataset=digits model=cnn max_epochs=5 \\
        "lr=tag(log, interval(1e-4, 1e-1))" "batch_size=choice(32, 64, 128)" \\
        --trials 20 --metric val_acc [--mode max] [--name cnn-lr] [--pruner median] [--run] [--slots 2]
    python -m MLSystem.tune --name cnn-lr [--trials 30] [--run]     # continue (or enlarge) a study
    python -m MLSystem.tune --list | --show NAME  [--json]

Each trial is a queue job with its own experiment ID; the runner tells Optuna the trial's value
when the job ends and queues the next trials, so ``python -m MLSystem.runner`` alone advances a
study. ``--run`` starts that runner here. The study (Optuna's journal file) lives in
``output/studies/NAME/``; it survives interruptions, and a trial whose experiment is already
complete is told from its metrics instead of being trained again.

Search spaces use hydra-optuna-sweeper's grammar: ``interval(a, b)``, ``tag(log, interval(a, b))``,
``tag(int, interval(a, b))``, ``range(start, stop[, step])`` (stop excluded), ``choice(a, b, …)``
and ``a,b,c``. Pruners: none, median, percentile, asha, hyperband, threshold, with options as
``median:n_startup_trials=2,n_warmup_steps=1``. The trial value is the best epoch value of
``--metric`` (``--value last``: its last value); the direction comes from ``--mode`` or the
metric's name (``MLSystem.utils.metric_mode``).
"""

from __future__ import annotations

import argparse
import hashlib
import inspect
import json
import sys
from typing import Any, Sequence

import MLSystem.runner as runner
from MLSystem.config_merge import merge_config
from MLSystem.errors import ConfigError, ExitCode, MLSystemError, suggest
from MLSystem.queue_store import JobQueue
from MLSystem.utils.clock import now_iso
from MLSystem.utils.metric_mode import metric_mode
from MLSystem.paths import ProjectPaths
from MLSystem.runner import main as runner_main
from MLSystem.tune.driver import StudyDriver
from MLSystem.tune.report import list_studies, study_summary
from MLSystem.tune.space import parse_space
from MLSystem.tune.store import SAMPLERS, VALUES, StudySpec, StudyStore, check_name, make_pruner, make_sampler


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m MLSystem.tune", description=__doc__.split("\n\n")[0],
                                epilog=__doc__.split("\n\n", 1)[1], formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("overrides", nargs="*", help="key=value overrides and search spaces (key=interval(a, b), …)")
    p.add_argument("--trials", type=int, help="trials in the study (default 20; raise it to continue a study)")
    p.add_argument("--metric", help="epoch metric to optimise, e.g. val_acc")
    p.add_argument("--mode", choices=("min", "max"), help="direction (default: from the metric's name)")
    p.add_argument("--name", help="study name (default: derived from the overrides and metric)")
    p.add_argument("--sampler", default="tpe", help=f"{', '.join(SAMPLERS)} (options: tpe:n_startup_trials=5)")
    p.add_argument("--seed", type=int, default=0, help="sampler seed (default 0)")
    p.add_argument("--pruner", default="none", help="none, median, percentile, asha, hyperband, threshold[:k=v,…]")
    p.add_argument("--parallel", type=int, help="trials queued at once (default: --slots, else 1)")
    p.add_argument("--value", choices=VALUES, default="best", help="trial value: best (default) or last epoch value")
    p.add_argument("--run", action="store_true", help="drain the queue with the runner here")
    p.add_argument("--slots", type=int, help="with --run: parallel jobs (passed to the runner)")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    act = p.add_mutually_exclusive_group()
    act.add_argument("--list", action="store_true", help="every study: trials, best value")
    act.add_argument("--show", metavar="NAME", help="one study: trials, best so far, parameter importance")
    return p


def default_name(overrides: list[str], metric: str) -> str:
    sel = dict(o.split("=", 1) for o in overrides if o.split("=", 1)[0] in ("dataset", "model") and "=" in o)
    digest = hashlib.sha1(json.dumps([sorted(overrides), metric]).encode()).hexdigest()[:6]
    return "-".join([sel.get("dataset", "study"), sel.get("model", ""), digest]).replace("--", "-")


def _int_keys(paths: ProjectPaths, fixed: list[str], space_keys: list[str]) -> list[str]:
    """Search-space keys that are ``int`` fields (an interval on them samples integers); unknown
    keys are reported like any unknown override."""
    merged = merge_config(fixed, paths=paths)
    unknown = [k for k in space_keys if k not in merged.fields]
    if unknown:
        raise ConfigError([f"{k}: not a parameter of {merged.selection.dataset}/{merged.selection.model}"
                           + suggest(k, merged.fields) for k in unknown])
    return [k for k in space_keys if merged.fields[k].type is int]


def create_or_load(paths: ProjectPaths, args: argparse.Namespace) -> tuple[StudySpec, list[str]]:
    """The study's spec: a new one from the command line, or the stored one (checked against it)."""
    notes: list[str] = []
    if not args.overrides:
        if not args.name:
            raise ConfigError("give overrides with a search space (see --help), or --name NAME to continue a study")
        store = StudyStore(paths, args.name)
        spec = store.read_spec()
    else:
        if not args.metric:
            raise ConfigError("--metric: which epoch metric to optimise (e.g. --metric val_acc)")
        space = parse_space(args.overrides)
        int_keys = _int_keys(paths, space.fixed, list(space.space))
        parse_space(args.overrides, int_keys)  # re-check with the field types
        mode = args.mode or metric_mode(args.metric)
        name = check_name(args.name or default_name(args.overrides, args.metric))
        store = StudyStore(paths, name)
        spec = StudySpec(name=name, overrides=list(args.overrides), metric=args.metric, mode=mode,
                         trials=args.trials or 20, sampler=args.sampler, seed=args.seed, pruner=args.pruner,
                         value=args.value, created=now_iso(), extra={"int_keys": int_keys})
        if store.exists():
            old = store.read_spec()
            changed = [k for k in ("overrides", "metric", "mode", "sampler", "seed", "pruner", "value")
                       if getattr(old, k) != getattr(spec, k)]
            if changed:
                raise ConfigError(f"study {name!r} exists with other settings ({', '.join(changed)}: "
                                  f"{', '.join(repr(getattr(old, k)) for k in changed)}); give another --name")
            spec.created = old.created
            spec.parallel = old.parallel
            notes.append(f"continuing study {name}")
    if args.trials is not None:
        if args.trials < 1:
            raise ConfigError(f"--trials: must be >= 1, got {args.trials}")
        spec.trials = args.trials
    if args.parallel is not None or args.slots is not None:
        spec.parallel = max(1, args.parallel or args.slots or 1)
    make_pruner(spec.pruner), make_sampler(spec.sampler, spec.seed)  # validate before anything is written
    store.write_spec(spec)
    return spec, notes


def _check_slots(slots: int | None) -> None:
    """``--slots`` goes to the runner's own command line; refuse it up front if that runner has none."""
    if slots is not None and '"--slots"' not in inspect.getsource(runner):
        raise ConfigError("--slots: this runner runs one job at a time (parallel slots are not installed)")
    if slots is not None and slots < 1:
        raise ConfigError(f"--slots: must be >= 1, got {slots}")


def run_runner(slots: int | None) -> int:
    """Drain the queue with ``python -m MLSystem.runner [--slots N]`` in this process (its hooks
    tell and ask trials); the runner's own option parsing applies."""
    _check_slots(slots)
    return runner_main(["--slots", str(slots)] if slots is not None else [])


def _print_summary(s: dict[str, Any]) -> None:
    spec = s["spec"]
    c = s["counts"]
    print(f"study {s['name']}: {spec['metric']} ({spec['mode']}), {s['n_trials']}/{spec['trials']} trials: "
          f"{c['complete']} complete, {c['pruned']} pruned, {c['fail']} failed, {c['running']} running"
          + (f"; pruner {spec['pruner']}" if spec["pruner"] != "none" else ""))
    for t in s["trials"]:
        value = f"{t['value']:.6g}" if t["value"] is not None else "-"
        extra = (f" pruned at epoch {t['pruned_at_epoch']}" if t["pruned_at_epoch"] is not None else "") + \
                (" (reused)" if t["reused"] else "") + (f" {t['error']}" if t["error"] else "")
        params = " ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in t["params"].items())
        print(f"  #{t['number']:<3} {t['state']:<8} {value:>10}  {t['experiment_id'] or '-':<12} {params}{extra}")
    if s["best"]:
        b = s["best"]
        print(f"best: trial {b['number']} {spec['metric']} {b['value']:.6g} experiment {b['experiment_id']} "
              + " ".join(f"{k}={v}" for k, v in b["params"].items()))
    if s["importance"]:
        print("importance: " + ", ".join(f"{k} {v:.2f}" for k, v in s["importance"].items()))


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        return _main(args)
    except MLSystemError as exc:
        if args.json:
            print(json.dumps({"error": str(exc)}))
        else:
            print(f"error: {exc}", file=sys.stderr)
        return int(exc.exit_code if exc.exit_code != ExitCode.FAILED else ExitCode.BAD_INPUT)


def _main(args: argparse.Namespace) -> int:
    paths = ProjectPaths.discover()
    if args.list:
        rows = list_studies(paths)
        if args.json:
            print(json.dumps({"studies": rows}, indent=2, default=str))
        for r in [] if args.json else rows:
            c = r["counts"]
            best = f"{r['best_value']:.6g} ({r['best_experiment']})" if r["best_value"] is not None else "-"
            print(f"{r['name']:<28} {r['metric']} {r['mode']}  {r['n_trials']}/{r['trials']} trials "
                  f"({c['complete']} complete, {c['pruned']} pruned, {c['fail']} failed, {c['running']} running)  best {best}")
        if not rows and not args.json:
            print("(no studies)")
        return 0
    if args.show:
        s = study_summary(paths, args.show)
        print(json.dumps(s, indent=2, default=str)) if args.json else _print_summary(s)
        return 0
    if args.run:
        _check_slots(args.slots)  # before anything is queued
    spec, notes = create_or_load(paths, args)
    queue = JobQueue(paths)
    driver = StudyDriver(paths, spec.name, queue=queue)
    said = notes + driver.reconcile() + driver.fill()
    if not args.json:
        print(f"study {spec.name}: {spec.metric} ({spec.mode}), {spec.trials} trials, {spec.parallel} at a time "
              f"(output/studies/{spec.name})")
        for line in said:
            print(line)
    rc = 0
    if args.run:
        rc = run_runner(args.slots)
    summary = study_summary(paths, spec.name, importance=args.run)
    if args.json:
        print(json.dumps({"messages": said, **summary}, indent=2, default=str))
    elif args.run:
        _print_summary(summary)
    else:
        print("run the queue to advance the study: python -m MLSystem.runner   (or tune --name "
              f"{spec.name} --run); progress: python -m MLSystem.tune --show {spec.name}")
    return rc


if __name__ == "__main__":
    sys.exit(main())
