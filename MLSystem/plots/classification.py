"""Plots for classifiers whose validation batches are ``(inputs, labels)`` and whose forward
returns logits (the digits examples; any model of that shape can list them in ``PLOTS``)."""

from __future__ import annotations

from typing import Any

import numpy as np

from MLSystem.utils.base_plot import BasePlot, new_figure


def predict_validation(context, max_items: int) -> tuple[Any, np.ndarray, np.ndarray]:
    """The first ``max_items`` validation inputs (as batched tensors), their labels and predictions."""
    import torch

    model = context.model
    inputs, labels, preds, seen = [], [], [], 0
    with torch.no_grad():
        for x, y in context.datamodule.val_dataloader():
            inputs.append(x)
            labels.append(y.numpy())
            preds.append(model(x).argmax(-1).numpy())
            seen += len(y)
            if seen >= max_items:
                break
    if not labels:
        raise ValueError("the validation set is empty")
    return torch.cat(inputs)[:max_items], np.concatenate(labels)[:max_items], np.concatenate(preds)[:max_items]


class ConfusionMatrix(BasePlot):
    """Counts of (true, predicted) classes over the validation set, with per-class accuracy."""

    title = "Confusion matrix (validation)"
    needs_weights = True
    defaults = {"max_items": 5000}

    def execute(self, context):
        _, labels, preds = predict_validation(context, int(self.params["max_items"]))
        k = int(max(labels.max(), preds.max())) + 1
        counts = np.zeros((k, k), dtype=np.int64)
        np.add.at(counts, (labels, preds), 1)
        fig, ax = new_figure(size=(5.2, 4.6))
        im = ax.imshow(counts, cmap="Blues")
        for (i, j), n in np.ndenumerate(counts):
            if n:
                ax.text(j, i, str(n), ha="center", va="center", fontsize=7,
                        color="white" if n > counts.max() / 2 else "black")
        acc = (labels == preds).mean()
        ax.set(xlabel="predicted", ylabel="true", xticks=range(k), yticks=range(k),
               title=f"{context.experiment_id}: accuracy {acc:.1%} on {len(labels)}")
        fig.colorbar(im, ax=ax, shrink=0.8)
        return fig
