"""Model-layer plots of the CNN: training curves across resumes, and what it predicts."""

from __future__ import annotations

from MLSystem.base import BasePlot, new_figure
from MLSystem.plots import ConfusionMatrix, LearningRate, LossCurves, ValidationMetrics, predict_validation


class Predictions(BasePlot):
    """Validation inputs with the predicted and the true digit (red when wrong)."""

    title = "Predictions on validation images"
    needs_weights = True
    defaults = {"count": 24}

    def execute(self, context):
        n = int(self.params["count"])
        inputs, labels, preds = predict_validation(context, n)
        cols = 8
        rows = (len(labels) + cols - 1) // cols
        fig, axes = new_figure(rows, cols, size=(1.1 * cols, 1.3 * rows), squeeze=False)
        for i, ax in enumerate(axes.flat):
            ax.axis("off")
            if i < len(labels):
                ax.imshow(inputs[i, 0].numpy(), cmap="gray_r")
                ok = preds[i] == labels[i]
                ax.set_title(f"{preds[i]} ({labels[i]})", fontsize=8, color="black" if ok else "red")
        fig.suptitle("predicted (true)", fontsize=9)
        return fig


PLOTS = [LossCurves, LearningRate, ValidationMetrics, Predictions, ConfusionMatrix]
