"""Entry point: draw an experiment's plots.

    python -m MLSystem.execute_plot 3f9c1a                          # every plot of the experiment
    python -m MLSystem.execute_plot 3f9c1a --plot loss_curves --checkpoint epoch-0003
    python -m MLSystem.execute_plot --list 3f9c1a                   # which plots exist, per layer

restore -> weights (only if a plot needs them; with no checkpoint the experiment is trained
first, through the same path as ``execute_train``) -> each plot's ``execute`` ->
``output/experiments/{id}/plots/{layer}/{name}.png`` and ``plots/index.json`` (when, which
checkpoint, the plot's parameters, errors). One failing plot does not stop the others.

Exit codes: 0 every plot written, 1 a plot or the training failed, 2 bad input (unknown ID,
plot or checkpoint), 3 training stopped on request, 4 the experiment is busy training.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import time
import traceback
from dataclasses import asdict, dataclass, field
from typing import Any, Sequence

from MLSystem.errors import BadInputError, ExitCode, MLSystemError
from MLSystem.execute_train import train_context
from MLSystem.inspector import PlotSpec, discover_plots
from MLSystem.loader import LoadedExperiment, load_experiment
from MLSystem.paths import ProjectPaths
from MLSystem.records import ExperimentStatus
from MLSystem.utils.atomic import atomic_write, atomic_write_json, read_json
from MLSystem.utils.clock import now_iso

log = logging.getLogger("MLSystem.plot")
INDEX = "index.json"


@dataclass
class PlotOutcome:
    name: str
    layer: str
    title: str
    ok: bool
    files: list[str] = field(default_factory=list)  # relative to the experiment folder
    error: str | None = None
    checkpoint: str | None = None
    params: dict[str, Any] = field(default_factory=dict)
    seconds: float = 0.0
    created: str = ""

    @property
    def file(self) -> str | None:
        return self.files[0] if self.files else None

    def as_dict(self) -> dict[str, Any]:
        return {**asdict(self), "file": self.file}


@dataclass
class PlotReport:
    experiment_id: str
    outcomes: list[PlotOutcome]
    trained: str | None = None  # what training ran first, if any
    exit_code: ExitCode = ExitCode.OK

    @property
    def failed(self) -> list[PlotOutcome]:
        return [o for o in self.outcomes if not o.ok]


def select_plots(specs: list[PlotSpec], names: Sequence[str] = (), layers: Sequence[str] = ()) -> list[PlotSpec]:
    """Filter by ``layer/name`` or ``name`` and by layer; unknown names are a clear error."""
    chosen = [s for s in specs if not layers or s.layer in layers]
    if not names:
        return chosen
    out = []
    for name in names:
        hits = [s for s in chosen if name in (s.name, f"{s.layer}/{s.name}")]
        if not hits:
            valid = ", ".join(f"{s.layer}/{s.name}" for s in chosen) or "none"
            raise BadInputError(f"--plot {name}: no such plot for this experiment (available: {valid})")
        out.extend(h for h in hits if h not in out)
    return out


def no_plots_message(experiment_id: str, entries: dict, layers: Sequence[str] = ()) -> str:
    """Why there is nothing to draw, and where a plot would go."""
    where = [f"{entries[layer].folder}/plots.py"
             for layer in ("dataset", "adapter", "model") if not layers or layer in layers]
    return (f"experiment {experiment_id} has no plots" + (f" in layer {', '.join(layers)}" if layers else "")
            + f": add BasePlot subclasses to {' or '.join(where)}, or list ready-made ones there in "
            "PLOTS = [...] (from MLSystem.plots import LossCurves, ValidationMetrics; see README: Adding a definition)")


def run_plots(experiment: str, *, names: Sequence[str] = (), layers: Sequence[str] = (),
              checkpoint: str | None = None, paths: ProjectPaths | None = None, out=print) -> PlotReport:
    """Restore the experiment, train it first if a plot needs weights and there are none, draw."""
    loaded = load_experiment(experiment, checkpoint, paths=paths)
    for w in loaded.warnings:
        out(f"warning: {w}")
    specs, problems = discover_plots(loaded.context.entries)
    selected = select_plots(specs, names, layers)
    report = PlotReport(loaded.experiment_id, [])
    for problem in problems:  # a plot module that cannot be imported fails, the others still run
        layer = problem.split(":", 1)[0]
        if not layers or layer in layers:
            report.outcomes.append(PlotOutcome("(plot module)", layer, "", False, error=problem, created=now_iso()))
    if not selected and not report.outcomes:
        raise BadInputError(no_plots_message(loaded.experiment_id, loaded.context.entries, layers))

    weights_error = None
    if any(s.needs_weights for s in selected) and not loaded.has_checkpoint():
        weights_error, report.trained = _train_first(loaded, out)
        if weights_error is None:
            loaded = load_experiment(loaded.experiment_id, checkpoint, paths=paths)
        elif report.trained == ExperimentStatus.STOPPED:
            report.exit_code = ExitCode.STOPPED
    ckpt_name = None
    for spec in selected:
        if spec.needs_weights and weights_error:
            report.outcomes.append(PlotOutcome(spec.name, spec.layer, spec.title, False, error=weights_error,
                                               created=now_iso()))
            continue
        if spec.needs_weights and ckpt_name is None:
            ckpt_name = loaded.checkpoint_path.stem
        outcome = draw(loaded, spec, ckpt_name if spec.needs_weights else None)
        report.outcomes.append(outcome)
        out(f"  {'ok  ' if outcome.ok else 'FAIL'} {spec.layer}/{spec.name}"
            + (f"  {outcome.seconds:.2f}s  {', '.join(outcome.files)}" if outcome.ok else f"  {outcome.error}"))
    update_index(loaded, report.outcomes)
    if report.failed and report.exit_code == ExitCode.OK:
        report.exit_code = ExitCode.FAILED
    return report


def _train_first(loaded: LoadedExperiment, out) -> tuple[str | None, str]:
    """Train the experiment through ``execute_train``'s path; an error text if no weights result."""
    out(f"no checkpoint for {loaded.experiment_id}: training it first "
        f"(max_epochs={loaded.all_params['max_epochs']}) because a plot needs trained weights")
    result = train_context(loaded.context, out=out)
    if result.exit_code == ExitCode.OK:
        return None, "trained"
    status = ExperimentStatus.STOPPED if result.exit_code == ExitCode.STOPPED else ExperimentStatus.FAILED
    return f"no trained weights: training {status} ({result.message})", status


def draw(loaded: LoadedExperiment, spec: PlotSpec, checkpoint: str | None) -> PlotOutcome:
    """Run one plot and save its figures; any exception becomes a failed outcome (traceback logged)."""
    plot = spec.cls(spec.layer)
    outcome = PlotOutcome(spec.name, spec.layer, spec.title, False, checkpoint=checkpoint,
                          params=dict(plot.params), created=now_iso())
    t0 = time.perf_counter()
    try:
        figures = _as_named_figures(spec.name, plot.execute(loaded))
        folder = loaded.exp.plots / spec.layer
        folder.mkdir(parents=True, exist_ok=True)
        for stem, fig in figures:
            target = folder / f"{stem}.png"
            atomic_write(target, lambda fh, fig=fig: fig.savefig(fh, format="png", dpi=100))
            outcome.files.append(str(target.relative_to(loaded.exp.dir)))
        outcome.ok = True
    except Exception as exc:
        outcome.error = f"{type(exc).__name__}: {(str(exc).strip().splitlines() or [''])[0]}"
        _log_failure(loaded, spec, traceback.format_exc())
    outcome.seconds = round(time.perf_counter() - t0, 3)
    return outcome


def _as_named_figures(name: str, result: Any) -> list[tuple[str, Any]]:
    from matplotlib.figure import Figure

    if isinstance(result, Figure):
        return [(name, result)]
    if isinstance(result, dict):
        items = [(f"{name}-{key}", fig) for key, fig in result.items()]
    elif isinstance(result, (list, tuple)):
        items = [(name if i == 0 else f"{name}-{i + 1}", fig) for i, fig in enumerate(result)]
    else:
        items = []
    if not items or not all(isinstance(fig, Figure) for _, fig in items):
        raise TypeError(f"execute() must return a matplotlib Figure, a list or a dict of them, not {type(result).__name__}")
    return items


def _log_failure(loaded: LoadedExperiment, spec: PlotSpec, tb: str) -> None:
    loaded.exp.plots.mkdir(parents=True, exist_ok=True)
    with open(loaded.exp.plots / "plot.log", "a", encoding="utf-8") as fh:
        fh.write(f"\n[{now_iso()}] {spec.layer}/{spec.name} failed\n{tb}")


def update_index(loaded: LoadedExperiment, outcomes: list[PlotOutcome]) -> None:
    """Merge outcomes into ``plots/index.json`` (keyed by layer/name) under the plots folder's lock."""
    from filelock import FileLock

    folder = loaded.exp.plots
    folder.mkdir(parents=True, exist_ok=True)
    with FileLock(str(folder / ".lock")):
        index = read_json(folder / INDEX) or {}
        entries = {(p.get("layer"), p.get("name")): p for p in index.get("plots", []) if isinstance(p, dict)}
        for o in outcomes:
            entries[(o.layer, o.name)] = o.as_dict()
        atomic_write_json(folder / INDEX, {"experiment_id": loaded.experiment_id, "updated": now_iso(),
                                           "plots": sorted(entries.values(), key=_index_order)})


def _index_order(entry: dict[str, Any]) -> tuple[int, str]:
    order = {"dataset": 0, "adapter": 1, "model": 2}
    return order.get(entry.get("layer"), 3), entry.get("name", "")


def list_plots(experiment: str, paths: ProjectPaths | None = None) -> tuple[str, list[PlotSpec], list[str]]:
    """The experiment's full ID, its plots per layer and plot modules that failed to load."""
    loaded = load_experiment(experiment, paths=paths, weights=False)
    specs, problems = discover_plots(loaded.context.entries)
    return loaded.experiment_id, specs, problems


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m MLSystem.execute_plot",
                                description="Draw an experiment's plots (dataset, adapter and model layers).")
    p.add_argument("experiment", help="experiment ID or a unique prefix of it")
    p.add_argument("--plot", action="append", default=[], metavar="NAME",
                   help="only this plot (NAME or LAYER/NAME; repeatable)")
    p.add_argument("--layer", action="append", default=[], choices=["dataset", "adapter", "model"],
                   help="only plots of this layer (repeatable)")
    p.add_argument("--checkpoint", metavar="NAME", help="weights from this checkpoint (e.g. epoch-0003; default last)")
    p.add_argument("--list", action="store_true", help="list the experiment's plots per layer and exit")
    p.add_argument("--json", action="store_true", help="print the result as JSON")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    quiet = (lambda *a, **k: None) if args.json else print
    try:
        if args.list:
            return _print_list(args)
        report = run_plots(args.experiment, names=args.plot, layers=args.layer, checkpoint=args.checkpoint,
                           out=quiet)
    except MLSystemError as exc:
        if args.json:
            print(json.dumps({"error": str(exc), "exit_code": int(exc.exit_code)}))
        else:
            print(f"error: {exc}", file=sys.stderr)
        return int(exc.exit_code)
    ok = len(report.outcomes) - len(report.failed)
    if args.json:
        print(json.dumps({"experiment_id": report.experiment_id, "trained": report.trained,
                          "exit_code": int(report.exit_code), "plots": [o.as_dict() for o in report.outcomes]}))
    else:
        where = ProjectPaths.discover().experiment(report.experiment_id).plots
        summary = f"{report.experiment_id}: {ok} plot(s) written to {where}"
        if report.failed:
            summary += f", {len(report.failed)} failed: " + "; ".join(
                f"{o.layer}/{o.name}: {o.error}" for o in report.failed) + f" (tracebacks in {where / 'plot.log'})"
        print(summary)
    return int(report.exit_code)


def _print_list(args: argparse.Namespace) -> int:
    eid, specs, problems = list_plots(args.experiment)
    if args.json:
        print(json.dumps({"experiment_id": eid, "plots": [s.as_dict() for s in specs], "problems": problems}))
        return 0
    print(f"plots of {eid}:")
    for layer in ("dataset", "adapter", "model"):
        mine = [s for s in specs if s.layer == layer]
        print(f"  {layer}:" + ("" if mine else " (none)"))
        for s in mine:
            print(f"    {s.name:<24} {s.title}" + ("  [needs weights]" if s.needs_weights else ""))
    for p in problems:
        print(f"  error: {p}")
    return 0


if __name__ == "__main__":
    from MLSystem.utils.cli import run_main  # closed pipe, Ctrl-C, full disk: one line each

    sys.exit(run_main(main))
