"""``BasePlot``: one figure (or a few) about an experiment, at one layer of its definitions.

Write plots in ``plots.py`` of any layer: ``definitions/datasets/{name}/plots.py``,
``definitions/models/{name}/plots.py`` or ``definitions/models/{model}/adapters/{name}/plots.py``::

    class LabelHistogram(BasePlot):
        title = "Labels in the training set"

        def execute(self, context):
            fig, ax = new_figure()
            ax.hist([y for _, y in context.datamodule.train_set], bins=10)
            return fig

The layer comes from the file the plot is found in. ``execute`` returns a figure, a list of
figures or a ``{suffix: figure}`` dict; ``execute_plot`` saves them, names the files, records
them in the plot index and reports errors. A module may list its plots in ``PLOTS`` (to include
plots defined elsewhere, e.g. :mod:`MLSystem.plots`); otherwise every ``BasePlot`` subclass
defined in it is a plot.
"""

from __future__ import annotations

import re
from abc import ABC, abstractmethod
from typing import TYPE_CHECKING, Any, ClassVar, Mapping, Sequence, Union

import matplotlib

matplotlib.use("Agg")  # files only; never a display, also on a desktop

from matplotlib.figure import Figure  # noqa: E402

if TYPE_CHECKING:
    from MLSystem.loader import LoadedExperiment

LAYERS = ("dataset", "adapter", "model")
PlotResult = Union[Figure, Sequence[Figure], Mapping[str, Figure]]


class BasePlot(ABC):
    """Subclass and implement :meth:`execute`. Class attributes describe the plot."""

    name: ClassVar[str] = ""  # file name; default: the class name in snake_case
    title: ClassVar[str] = ""
    needs_weights: ClassVar[bool] = False  # True: trained weights are loaded (training first if none)
    defaults: ClassVar[dict[str, Any]] = {}  # the plot's own parameters, recorded in the plot index

    def __init__(self, layer: str, **params: Any):
        if layer not in LAYERS:
            raise ValueError(f"layer {layer!r} is not one of {', '.join(LAYERS)}")
        self.layer = layer
        self.params = {**self.defaults, **params}

    @classmethod
    def plot_name(cls) -> str:
        return cls.name or re.sub(r"(?<!^)(?=[A-Z])", "_", cls.__name__).lower()

    @classmethod
    def plot_title(cls) -> str:
        return cls.title or cls.plot_name().replace("_", " ").capitalize()

    @abstractmethod
    def execute(self, context: "LoadedExperiment") -> PlotResult:
        """Draw from ``context`` (config, data module, model, metrics); return the figure(s)."""


def new_figure(nrows: int = 1, ncols: int = 1, *, size: tuple[float, float] | None = None,
               **kwargs: Any) -> tuple[Figure, Any]:
    """A figure with its axes, without pyplot's global state (safe in threads; nothing to close)."""
    fig = Figure(figsize=size or (4.5 * ncols, 3.4 * nrows), layout="constrained")
    axes = fig.subplots(nrows, ncols, **kwargs)
    return fig, axes
