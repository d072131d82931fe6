"""Ready-made plots a definition can list in its ``PLOTS`` (see :mod:`MLSystem.utils.base_plot`)."""

from MLSystem.plots.classification import ConfusionMatrix, predict_validation
from MLSystem.plots.training import LearningRate, LossCurves, ValidationMetrics

__all__ = ["ConfusionMatrix", "LearningRate", "LossCurves", "ValidationMetrics", "predict_validation"]
