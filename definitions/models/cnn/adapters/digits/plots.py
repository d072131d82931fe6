"""Adapter-layer plot of digits -> cnn: the tensors the CNN actually receives."""

from __future__ import annotations

import numpy as np

from MLSystem.base import BasePlot, new_figure


class AdaptedInputs(BasePlot):
    """A few training inputs after the adapter's transform, and the distribution of their values."""

    title = "Inputs after the adapter"
    defaults = {"count": 8}

    def execute(self, context):
        n = int(self.params["count"])
        train_set = context.datamodule.train_set
        samples = [train_set[i] for i in range(min(n, len(train_set)))]
        fig, axes = new_figure(1, len(samples) + 1, size=(1.3 * len(samples) + 3, 2.2), squeeze=False)
        values = []
        for ax, (x, label) in zip(axes[0], samples):
            image = x[0].numpy()  # (1, H, W) -> H x W
            values.append(image.ravel())
            ax.imshow(image, cmap="gray_r")
            ax.set_title(f"{label}  {tuple(x.shape)}", fontsize=7)
            ax.axis("off")
        hist = axes[0][-1]
        hist.hist(np.concatenate(values), bins=30)
        hist.set_title("input values", fontsize=8)
        return fig
