"""Side by side: ``python -m MLSystem.compare ID ID ... [--json] [--all]``.

The parameters that differ between experiments (``--all``: every parameter), and per metric the
best and last epoch value of each (best by ``utils.metric_mode``). The same data serves the
cockpit's ``/compare`` page and ``/api/compare``, with the curves: every epoch metric by epoch
and the training loss by global step. An experiment's metrics log is one series across its
resumes and extensions, so the curves are continuous; resume points come along as markers.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any, Sequence

from MLSystem import experiment_store as store
from MLSystem.errors import BadInputError, CorruptFileError, ExperimentNotFoundError, MLSystemError
from MLSystem.experiment_store import resolve_id
from MLSystem.hashing import same_value
from MLSystem.metrics_reader import MetricSeries, downsample, read_rows
from MLSystem.paths import ProjectPaths
from MLSystem.utils.metric_mode import best_of, is_known, metric_mode

MAX_COMPARED = 50
NOT_METRICS = {"step", "epoch", "kind", "epoch_time", "time"}
SELECTION = ("dataset", "model", "adapter", "init_from")


def resolve_ids(paths: ProjectPaths, refs: Sequence[str]) -> list[str]:
    """Full IDs, in the order given, duplicates dropped; a full ID is checked without a listing."""
    out: list[str] = []
    for ref in refs:
        for part in filter(None, (p.strip() for p in str(ref).split(","))):
            eid = part if paths.experiment(part).metadata.is_file() else resolve_id(paths, part)
            if eid not in out:
                out.append(eid)
    if not out:
        raise BadInputError("compare: give at least one experiment ID (a unique prefix works)")
    if len(out) > MAX_COMPARED:
        raise BadInputError(f"compare: {len(out)} experiments; at most {MAX_COMPARED} at once")
    return out


def experiment_params(meta: dict[str, Any], state: dict[str, Any] | None) -> dict[str, Any]:
    """Selection, identity values (defaults included) and the trained/target epochs."""
    ident = meta.get("identity") or {}
    params: dict[str, Any] = {k: ident.get(k, meta.get(k)) for k in SELECTION if ident.get(k, meta.get(k)) is not None}
    params.update(meta.get("identity_values") or ident.get("params") or {})
    state = state or {}
    params["max_epochs"] = state.get("max_epochs", meta.get("max_epochs"))
    return params


def _declared(meta: dict[str, Any]) -> dict[str, str]:
    """Metric directions an experiment declares (``metric_modes``, or ``best_metric``/``best_mode``)."""
    values = meta.get("identity_values") or {}
    declared = dict(meta.get("metric_modes") or values.get("metric_modes") or {})
    for src in (meta, values):
        if src.get("best_metric") and src.get("best_mode") in ("min", "max"):
            declared.setdefault(src["best_metric"], src["best_mode"])
    return declared


def metric_table(series: MetricSeries, declared: dict[str, str]) -> dict[str, dict[str, Any]]:
    """Per epoch metric: best (and its epoch), last, the direction and whether it was guessed."""
    out: dict[str, dict[str, Any]] = {}
    names: dict[str, None] = {}
    for row in series.epochs:
        for k, v in row.items():
            if k not in NOT_METRICS and isinstance(v, (int, float)) and not isinstance(v, bool):
                names[k] = None
    for name in names:
        points = [(int(r.get("epoch", 0)) + 1, float(r[name])) for r in series.epochs
                  if isinstance(r.get(name), (int, float))]
        mode = metric_mode(name, declared)
        best = best_of([v for _, v in points], mode)
        best_epoch = next((e for e, v in points if v == best), None)
        out[name] = {"best": best, "best_epoch": best_epoch, "last": points[-1][1], "last_epoch": points[-1][0],
                     "mode": mode, "mode_guessed": not is_known(name, declared)}
    return out


def curves(series: MetricSeries, max_points: int = 2000) -> dict[str, Any]:
    """Epoch metrics by epoch and by step, the training loss by step, and resume markers."""
    epoch: dict[str, dict[str, list]] = {}
    for row in series.epochs:
        for k, v in row.items():
            if k in NOT_METRICS or not isinstance(v, (int, float)) or isinstance(v, bool):
                continue
            c = epoch.setdefault(k, {"epoch": [], "step": [], "value": []})
            c["epoch"].append(int(row.get("epoch", 0)) + 1)
            c["step"].append(int(row.get("step", 0)))
            c["value"].append(float(v))
    steps = [(int(r["step"]), float(r["loss"])) for r in series.steps if isinstance(r.get("loss"), (int, float))]
    xs, ys = downsample([s for s, _ in steps], [v for _, v in steps], max_points)
    resumes = [{"event": e.get("event"), "step": e.get("step"), "epoch": e.get("epoch")} for e in series.resumes()]
    return {"epoch_metrics": epoch, "loss": {"step": xs, "value": ys}, "resumes": resumes}


def _same(a: Any, b: Any) -> bool:
    try:
        return same_value(a, b)
    except Exception:  # values of unrelated types
        return a == b


def compare(paths: ProjectPaths, refs: Sequence[str], *, with_curves: bool = False) -> dict[str, Any]:
    """Everything the CLI, the API and the page show about several experiments."""
    ids = resolve_ids(paths, refs)
    experiments, params, metrics, curve_data = [], {}, {}, {}
    for eid in ids:
        exp = paths.experiment(eid)
        record = store.read_record(exp)  # a garbled experiment.json: CorruptFileError naming it
        if record is None:
            raise ExperimentNotFoundError(f"experiment {eid}: no experiment.json in {exp.dir}")
        try:
            training = store.read_state(exp)
        except CorruptFileError:  # listed without its state, as everywhere
            training = None
        meta = {**record.to_dict(), "status": store.live_status(exp, record)}
        state = training.to_dict() if training is not None else None
        params[eid] = experiment_params(meta, state)
        series = MetricSeries.from_rows(read_rows(exp.metrics))
        metrics[eid] = metric_table(series, _declared(meta))
        if with_curves:
            curve_data[eid] = curves(series)
        experiments.append({"id": eid, "dataset": meta.get("dataset"), "model": meta.get("model"),
                            "adapter": meta.get("adapter"), "status": meta.get("status"),
                            "epochs_done": (state or {}).get("epochs_completed", 0),
                            "max_epochs": params[eid].get("max_epochs"), "parent": meta.get("parent"),
                            "created": meta.get("created"), "updated": meta.get("updated")})
    keys: dict[str, None] = {}
    for p in params.values():
        keys.update(dict.fromkeys(p))
    table = {k: {eid: params[eid].get(k) for eid in ids} for k in keys}
    differing = [k for k, row in table.items()
                 if any(k not in params[e] for e in ids) or not all(_same(row[ids[0]], row[e]) for e in ids[1:])]
    metric_names: dict[str, None] = {}
    for m in metrics.values():
        metric_names.update(dict.fromkeys(m))
    out = {"ids": ids, "experiments": experiments, "params": table, "differing": differing,
           "metric_names": list(metric_names), "metrics": metrics}
    if with_curves:
        out["curves"] = curve_data
    return out


def _fmt(v: Any) -> str:
    if isinstance(v, float):
        return f"{v:.6g}"
    return "-" if v is None else str(v)


def format_table(result: dict[str, Any], *, all_params: bool = False) -> str:
    ids = result["ids"]
    width = max(12, *(len(k) for k in result["params"])) if result["params"] else 12
    lines = [f"{'':<{width}}  " + "  ".join(f"{e[:12]:>12}" for e in ids)]
    shown = list(result["params"]) if all_params else result["differing"]
    lines.append(("parameters" if all_params else "parameters that differ") + (":" if shown else ": none"))
    for k in shown:
        mark = "*" if all_params and k in result["differing"] else " "
        lines.append(f"{k:<{width}}{mark} " + "  ".join(f"{_fmt(result['params'][k][e])[:12]:>12}" for e in ids))
    for name in result["metric_names"]:
        modes = {result["metrics"][e][name]["mode"] for e in ids if name in result["metrics"][e]}
        guessed = any(result["metrics"][e].get(name, {}).get("mode_guessed") for e in ids)
        lines.append(f"{name} ({'/'.join(sorted(modes))}{', guessed' if guessed else ''}):")
        for which in ("best", "last"):
            vals = [result["metrics"][e].get(name, {}).get(which) for e in ids]
            lines.append(f"  {which:<{width - 2}}  " + "  ".join(f"{_fmt(v):>12}" for v in vals))
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m MLSystem.compare", description=__doc__.split("\n\n")[0])
    p.add_argument("ids", nargs="+", help="experiment IDs or unique prefixes")
    p.add_argument("--all", action="store_true", help="every parameter, not only those that differ")
    p.add_argument("--curves", action="store_true", help="with --json: the metric curves too")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    args = p.parse_args(argv)
    try:
        result = compare(ProjectPaths.discover(), args.ids, with_curves=args.curves)
    except MLSystemError as exc:
        print(json.dumps({"error": str(exc)}) if args.json else f"error: {exc}", file=sys.stdout if args.json else sys.stderr)
        return int(exc.exit_code)
    print(json.dumps(result, indent=2, default=str) if args.json else format_table(result, all_params=args.all))
    return 0


if __name__ == "__main__":
    sys.exit(main())
