"""Dataset-layer plots of `digits`: what the raw data looks like, before any adapter."""

from __future__ import annotations

import numpy as np

from MLSystem.base import BasePlot, new_figure


class Samples(BasePlot):
    """A grid of raw training images with their labels."""

    title = "Raw samples"
    defaults = {"rows": 4, "cols": 8}

    def execute(self, context):
        rows, cols = int(self.params["rows"]), int(self.params["cols"])
        raw = context.datamodule.train_set
        raw = getattr(raw, "dataset", raw)  # light mode wraps the set in a Subset
        fig, axes = new_figure(rows, cols, size=(1.1 * cols, 1.25 * rows), squeeze=False)
        for i, ax in enumerate(axes.flat):
            ax.imshow(raw.images[i], cmap="gray_r", vmin=0, vmax=1)
            ax.set_title(str(raw.labels[i]), fontsize=8)
            ax.axis("off")
        return fig


class ClassBalance(BasePlot):
    """How many images of each digit the training and validation sets hold."""

    title = "Images per class"

    def execute(self, context):
        dm = context.datamodule
        fig, ax = new_figure(size=(6, 3))
        width = 0.4
        for offset, (name, ds) in zip((-width / 2, width / 2), (("train", dm.train_set), ("val", dm.val_set))):
            ds = getattr(ds, "dataset", ds)
            counts = np.bincount(ds.labels, minlength=dm.num_classes)
            ax.bar(np.arange(dm.num_classes) + offset, counts, width, label=f"{name} ({len(ds.labels)})")
        ax.set(xlabel="digit", ylabel="images", xticks=range(dm.num_classes))
        ax.legend(fontsize=8)
        return fig
