"""Model-layer plots of the MLP: the framework's training curves and a confusion matrix."""

from MLSystem.plots import ConfusionMatrix, LearningRate, LossCurves, ValidationMetrics

PLOTS = [LossCurves, LearningRate, ValidationMetrics, ConfusionMatrix]
