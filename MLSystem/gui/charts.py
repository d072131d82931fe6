"""ECharts options for metric series: loss and learning rate by step, resume points marked."""

from __future__ import annotations

from typing import Any

from MLSystem.gui.series import LiveSeries
from MLSystem.metrics_reader import run_label


def _base(title: str, y_name: str, log_y: bool = False) -> dict[str, Any]:
    return {
        "title": {"text": title, "textStyle": {"fontSize": 13}},
        "animation": False,  # live updates: redraw at once
        "tooltip": {"trigger": "axis"},
        "legend": {"top": 0, "right": 0},
        "grid": {"left": 60, "right": 20, "top": 40, "bottom": 40},
        "xAxis": {"type": "value", "name": "step", "nameLocation": "middle", "nameGap": 25, "min": "dataMin"},
        "yAxis": {"type": "log" if log_y else "value", "name": y_name, "scale": True},
        "series": [],
    }


def _resume_marks(series: LiveSeries) -> dict[str, Any]:
    marks = [{"xAxis": e["step"], "label": {"formatter": run_label(e)}}
             for e in series.resumes]
    return {"symbol": "none", "lineStyle": {"type": "dashed", "color": "#e67e22"}, "data": marks}


def loss_options(series: LiveSeries) -> dict[str, Any]:
    opts = _base("Loss", "loss")
    opts["series"].append({"name": "train loss", "type": "line", "showSymbol": False, "data": series.loss.data(),
                           "markLine": _resume_marks(series)})
    val = series.val_points("val_loss")
    if val:
        opts["series"].append({"name": "val loss", "type": "line", "symbolSize": 6, "data": val})
    return opts


def lr_options(series: LiveSeries) -> dict[str, Any]:
    opts = _base("Learning rate", "lr")
    opts["series"].append({"name": "lr", "type": "line", "showSymbol": False, "data": series.lr.data(),
                           "markLine": _resume_marks(series)})
    return opts


def epoch_metric_options(series: LiveSeries) -> dict[str, Any]:
    """Every validation metric per epoch (one line each)."""
    opts = _base("Validation metrics", "value")
    opts["xAxis"] = {"type": "value", "name": "epoch", "nameLocation": "middle", "nameGap": 25, "minInterval": 1}
    for key in [k for k in series.epoch_keys() if k.startswith("val")]:
        data = [[r["epoch"] + 1, r[key]] for r in series.epochs if isinstance(r.get(key), (int, float))]
        opts["series"].append({"name": key, "type": "line", "data": data})
    return opts


def set_series(chart_options: dict[str, Any], new: dict[str, Any]) -> None:
    """Replace a chart's series in place (the element keeps its options object)."""
    chart_options["series"] = new["series"]
