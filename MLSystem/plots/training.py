"""Training curves from the metrics log: the whole experiment, across resumes.

They read ``metrics.jsonl`` only (no weights, no torch), and draw every run of the experiment as
one series with a dashed line where a run resumed or extended it.
"""

from __future__ import annotations

from typing import Any

from MLSystem.metrics_reader import MetricSeries, downsample, run_label
from MLSystem.utils.base_plot import BasePlot, new_figure

# A step series is drawn with at most this many points (min/max per bucket keep spikes visible).
MAX_POINTS = 4000


def _mark_resumes(ax, series: MetricSeries, x_of_event) -> None:
    for event in series.resumes():
        x = x_of_event(event)
        ax.axvline(x, color="0.45", linestyle="--", linewidth=0.8)
        label = run_label(event)
        ax.annotate(label, (x, 1.0), xycoords=("data", "axes fraction"), rotation=90, fontsize=7,
                    va="top", ha="right", color="0.35")


def _finish(ax, series: MetricSeries, x_of_event, **labels: str) -> None:
    """Resume markers, labels and a light grid: the common end of every curve panel."""
    _mark_resumes(ax, series, x_of_event)
    ax.set(**labels)
    ax.grid(alpha=0.3)


def _by_step(event: dict[str, Any]) -> float:
    return event.get("step", 0)


def _column(rows: list[dict[str, Any]], x: str, y: str) -> tuple[list[float], list[float]]:
    pairs = [(r[x], r[y]) for r in rows if isinstance(r.get(y), (int, float)) and r.get(x) is not None]
    return [p[0] for p in pairs], [p[1] for p in pairs]


class _MetricsPlot(BasePlot):
    def series(self, context) -> MetricSeries:
        series = context.series
        if not series.steps and not series.epochs:
            raise ValueError(f"no metrics yet in {context.exp.metrics}")
        return series


class LossCurves(_MetricsPlot):
    """Training loss per logged step, and per-epoch train/validation loss, against the global step."""

    title = "Loss"

    def execute(self, context):
        series = self.series(context)
        fig, ax = new_figure(size=(7, 3.8))
        xs, ys = downsample(*_column(series.steps, "step", "loss"), MAX_POINTS)
        if xs:
            ax.plot(xs, ys, linewidth=0.7, alpha=0.6, label="train loss (step)")
        for key, style in (("train_loss_epoch", "-o"), ("val_loss", "-s")):
            ex, ey = downsample(*_column(series.epochs, "step", key), MAX_POINTS)
            if ex:
                ax.plot(ex, ey, style, markersize=2.5, linewidth=1.2, label=key.replace("_", " "))
        _finish(ax, series, _by_step, xlabel="global step", ylabel="loss", title=f"{context.experiment_id}: loss")
        ax.legend(fontsize=8)
        return fig


class LearningRate(_MetricsPlot):
    """The learning rate actually used at each logged step (schedule changes on extension show here)."""

    title = "Learning rate"

    def execute(self, context):
        series = self.series(context)
        xs, ys = downsample(*_column(series.steps, "step", "lr"), MAX_POINTS)
        if not xs:
            raise ValueError("the metrics log has no learning-rate values")
        fig, ax = new_figure(size=(7, 3.2))
        ax.plot(xs, ys, linewidth=1.0)
        _finish(ax, series, _by_step, xlabel="global step", ylabel="learning rate",
                title=f"{context.experiment_id}: learning rate")
        return fig


class ValidationMetrics(_MetricsPlot):
    """Every ``val_*`` metric per epoch, one panel each."""

    title = "Validation metrics per epoch"

    def execute(self, context):
        series = self.series(context)
        names = series.epoch_metric_names("val_")
        if not names:
            raise ValueError("the metrics log has no validation metrics (log val_* in validation_step)")
        fig, axes = new_figure(1, len(names), squeeze=False)
        for ax, name in zip(axes[0], names):
            xs, ys = _column(series.epochs, "epoch", name)
            xs = [x + 1 for x in xs]  # epoch rows carry the 0-based index; show epochs completed
            xs, ys = downsample(xs, ys, MAX_POINTS)
            ax.plot(xs, ys, "-o", markersize=2.5)
            # a run that resumed after k epochs starts between epochs k and k + 1
            _finish(ax, series, lambda e: e.get("epoch", 0) + 0.5, xlabel="epoch", title=name)
        return fig
