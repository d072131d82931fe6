"""Pages ``/studies`` (every study) and ``/studies/{name}`` (trials, best so far, parameter importance).

A study page is served with its trials and best-so-far history; the parameter importance follows
(Optuna's importance module imports scikit-learn, ~2 s in a cockpit that has not loaded it yet).
"""

from __future__ import annotations

from typing import Any

from nicegui import background_tasks, run, ui

from MLSystem.errors import MLSystemError
from MLSystem.gui.compare_charts import best_so_far_options, importance_options
from MLSystem.gui.context import Cockpit
from MLSystem.gui.layout import frame
from MLSystem.paths import ProjectPaths
from MLSystem.tune.report import list_studies, study_importance, study_summary


def _fmt(v: Any) -> str:
    return f"{v:.6g}" if isinstance(v, float) else ("–" if v is None else str(v))


def study_table(rows: list[dict[str, Any]]) -> None:
    columns = [{"name": k, "label": label, "field": k, "align": "left"} for k, label in (
        ("name", "Study"), ("metric", "Metric"), ("progress", "Trials"), ("states", "States"), ("best", "Best"))]
    data = [{"name": r["name"], "metric": f"{r['metric']} ({r['mode']})", "progress": f"{r['n_trials']}/{r['trials']}",
             "states": ", ".join(f"{n} {s}" for s, n in r["counts"].items() if n), "best": _fmt(r["best_value"])}
            for r in rows]
    table = ui.table(columns=columns, rows=data, row_key="name").props("dense flat").classes("w-full").mark("study-list")
    table.add_slot("body-cell-name", r'''
        <q-td :props="props"><a :href="'/studies/' + props.value" class="text-blue-700">{{ props.value }}</a></q-td>''')


NO_IMPORTANCE = "needs at least two complete trials with different values"


def trials_view(summary: dict[str, Any]) -> ui.label | None:
    """The study's counts, trials table and charts. Returns the importance column's "computing…"
    label when ``summary`` comes without the importance it can have (see :func:`show_importance`)."""
    spec = summary["spec"]
    c = summary["counts"]
    ui.label(f"{spec['metric']} ({spec['mode']}) · {summary['n_trials']}/{spec['trials']} trials · "
             f"{c['complete']} complete, {c['pruned']} pruned, {c['fail']} failed, {c['running']} running · "
             f"sampler {spec['sampler']}, pruner {spec['pruner']}").mark("study-counts")
    ui.label("Search: " + " ".join(spec["overrides"])).classes("font-mono text-sm")
    best = summary["best"]
    if best:
        ui.label(f"Best: trial {best['number']} · {spec['metric']} {_fmt(best['value'])} · experiment "
                 f"{best['experiment_id']}").classes("font-semibold").mark("study-best")
    keys = sorted({k for t in summary["trials"] for k in t["params"]})
    columns = [{"name": "number", "label": "#", "field": "number"},
               {"name": "state", "label": "State", "field": "state", "align": "left"},
               {"name": "value", "label": spec["metric"], "field": "value"},
               {"name": "experiment_id", "label": "Experiment", "field": "experiment_id", "align": "left"},
               *({"name": f"p_{k}", "label": k, "field": f"p_{k}"} for k in keys),
               {"name": "note", "label": "Note", "field": "note", "align": "left"}]
    rows = [{"number": t["number"], "state": t["state"], "value": _fmt(t["value"]),
             "experiment_id": t["experiment_id"] or "",
             **{f"p_{k}": _fmt(t["params"].get(k)) for k in keys},
             "note": (f"pruned at epoch {t['pruned_at_epoch']}" if t["pruned_at_epoch"] is not None else "")
             + (" reused" if t["reused"] else "") + (t["error"] or "")} for t in summary["trials"]]
    table = ui.table(columns=columns, rows=rows, row_key="number").props("dense flat").classes("w-full").mark("study-trials")
    table.add_slot("body-cell-experiment_id", r'''
        <q-td :props="props"><a :href="'/experiments/' + props.value" class="font-mono text-blue-700">{{ props.value }}</a></q-td>''')
    done = sorted((t for t in summary["trials"] if t["value"] is not None and t["experiment_id"]),
                  key=lambda t: t["value"], reverse=spec["mode"] == "max")
    top = list(dict.fromkeys(t["experiment_id"] for t in done))[:5]
    if top:
        ui.link(f"Compare the best {len(top)}", "/compare?ids=" + ",".join(top)).mark("study-compare")
    with ui.row().classes("w-full gap-4 no-wrap"):
        with ui.column().classes("w-2/3"):
            ui.label("Best so far").classes("text-lg font-semibold")
            ui.echart(best_so_far_options(summary)).classes("w-full h-72").mark("study-history")
        with ui.column().classes("w-1/3"):
            ui.label("Parameter importance (Optuna)").classes("text-lg font-semibold")
            if summary["importance"]:
                importance_chart(summary["importance"])
            elif summary["counts"]["complete"] < 2:
                ui.label(NO_IMPORTANCE)
            else:
                return ui.label("computing…").mark("study-importance-wait")
    return None


def importance_chart(importance: dict[str, float]) -> None:
    ui.echart(importance_options(importance)).classes("w-full h-72").mark("study-importance")


async def show_importance(waiting: ui.label, paths: ProjectPaths, name: str) -> None:
    """Replace the "computing…" label with Optuna's parameter importance."""
    importance = await run.io_bound(study_importance, paths, name)
    if importance is None or waiting.is_deleted:  # the page was closed meanwhile
        return
    with waiting.parent_slot:
        importance_chart(importance) if importance else ui.label(NO_IMPORTANCE)
    waiting.delete()


def register(cockpit: Cockpit) -> None:
    @ui.page("/studies")
    async def studies_page() -> None:
        with frame("Studies"):
            rows = await run.io_bound(list_studies, cockpit.paths)
            if rows:
                study_table(rows)
            else:
                ui.label("No studies yet: python -m MLSystem.tune … --trials N --metric val_acc")

    @ui.page("/studies/{name}")
    async def study_page(name: str) -> None:
        with frame(f"Study {name}"):
            try:
                summary = await run.io_bound(study_summary, cockpit.paths, name, importance=False)
            except MLSystemError as exc:
                ui.label(str(exc)).classes("text-negative")
                return
            if summary is None:  # the visitor left before the study was read
                return
            waiting = trials_view(summary)
        if waiting is not None:
            background_tasks.create(show_importance(waiting, cockpit.paths, name), name=f"importance of {name}")
