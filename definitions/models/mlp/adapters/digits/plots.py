"""Adapter-layer plot of digits -> mlp: the flat vectors the MLP actually receives."""

from __future__ import annotations

import numpy as np

from MLSystem.base import BasePlot, new_figure


class FlatInputs(BasePlot):
    """Training inputs after flattening, one row per sample, and the distribution of their values."""

    title = "Flattened inputs"
    defaults = {"count": 32}

    def execute(self, context):
        train_set = context.datamodule.train_set
        items = [train_set[i] for i in range(min(int(self.params["count"]), len(train_set)))]
        matrix = np.stack([x.numpy() for x, _ in items])
        fig, (rows, hist) = new_figure(1, 2, size=(9, 3.2), width_ratios=[3, 1])
        im = rows.imshow(matrix, aspect="auto", cmap="gray_r", interpolation="nearest")
        rows.set(xlabel="input feature", ylabel="sample", title=f"{matrix.shape[1]} features per sample")
        fig.colorbar(im, ax=rows, shrink=0.8)
        hist.hist(matrix.ravel(), bins=30)
        hist.set_title("input values", fontsize=8)
        return fig
