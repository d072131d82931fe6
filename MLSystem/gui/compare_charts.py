"""ECharts options for the compare and study pages (pure functions of ``compare``/``study_summary`` data)."""

from __future__ import annotations

from typing import Any


def overlay_options(result: dict[str, Any], metric: str, x: str = "epoch") -> dict[str, Any]:
    """One line per experiment for ``metric`` (an epoch metric, or ``loss`` by step), by epoch or step;
    resume points of each experiment as dashed marks."""
    series = []
    for eid in result["ids"]:
        c = result["curves"][eid]
        if metric == "loss":
            data = list(zip(c["loss"]["step"], c["loss"]["value"]))
        else:
            m = c["epoch_metrics"].get(metric)
            data = list(zip(m[x], m["value"])) if m else []
        marks = [{"xAxis": r[x if x in ("epoch", "step") else "step"] or 0} for r in c["resumes"]
                 if r.get(x if metric != "loss" else "step") is not None]
        series.append({"name": eid[:12], "type": "line", "showSymbol": metric != "loss", "data": data,
                       "markLine": {"symbol": "none", "silent": True, "lineStyle": {"type": "dashed"}, "data": marks}})
    x_name = "step" if metric == "loss" else x
    return {"animation": False, "tooltip": {"trigger": "axis"}, "legend": {"top": 0, "type": "scroll"},
            "grid": {"left": 60, "right": 20, "top": 40, "bottom": 40},
            "xAxis": {"type": "value", "name": x_name, "nameLocation": "middle", "nameGap": 25,
                      **({"minInterval": 1} if x_name == "epoch" else {})},
            "yAxis": {"type": "value", "name": metric, "scale": True}, "series": series}


def parallel_options(result: dict[str, Any], metric: str | None, params: list[str]) -> dict[str, Any]:
    """Parallel coordinates: one axis per parameter (categorical when not numeric) and the best
    value of ``metric``; one line per experiment."""
    axes, columns = [], []
    for i, key in enumerate(params):
        values = [result["params"][key].get(e) for e in result["ids"]]
        numeric = all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in values if v is not None)
        axis: dict[str, Any] = {"dim": i, "name": key}
        if not numeric:
            axis.update(type="category", data=sorted({str(v) for v in values}))
        axes.append(axis)
        columns.append((key, numeric))
    if metric:
        axes.append({"dim": len(axes), "name": f"{metric} (best)", "nameTextStyle": {"fontWeight": "bold"}})
    data = []
    for eid in result["ids"]:
        row = [(result["params"][k].get(eid) if num else str(result["params"][k].get(eid))) for k, num in columns]
        if metric:
            row.append(result["metrics"][eid].get(metric, {}).get("best"))
        data.append({"name": eid[:12], "value": row})
    return {"animation": False, "tooltip": {"trigger": "item", "formatter": "{b}"},
            "parallelAxis": axes, "parallel": {"left": 60, "right": 80, "top": 40, "bottom": 30},
            "series": [{"type": "parallel", "lineStyle": {"width": 2, "opacity": 0.8}, "data": data}]}


def best_so_far_options(summary: dict[str, Any]) -> dict[str, Any]:
    """Each complete trial's value and the best so far, by trial number."""
    hist = summary["best_so_far"]
    metric = summary["spec"]["metric"]
    return {"animation": False, "tooltip": {"trigger": "axis"}, "legend": {"top": 0},
            "grid": {"left": 60, "right": 20, "top": 40, "bottom": 40},
            "xAxis": {"type": "value", "name": "trial", "nameLocation": "middle", "nameGap": 25, "minInterval": 1},
            "yAxis": {"type": "value", "name": metric, "scale": True},
            "series": [{"name": "trial value", "type": "scatter", "data": [[h["trial"], h["value"]] for h in hist]},
                       {"name": "best so far", "type": "line", "step": "end",
                        "data": [[h["trial"], h["best"]] for h in hist]}]}


def importance_options(importance: dict[str, float]) -> dict[str, Any]:
    names = list(importance)[::-1]
    return {"animation": False, "grid": {"left": 120, "right": 20, "top": 10, "bottom": 30},
            "xAxis": {"type": "value", "name": "importance"}, "yAxis": {"type": "category", "data": names},
            "series": [{"type": "bar", "data": [round(importance[n], 4) for n in names]}]}
