"""The public surface for ``definitions/``: everything a dataset, model, adapter or plot may use.

    from MLSystem.base import ConfigBase, param                  # config.py (never imports torch)
    from MLSystem.base import BaseDataModule                     # datamodule.py
    from MLSystem.base import BaseModel                          # model.py
    from MLSystem.base import BaseClassifier                     # model.py of a classifier: write forward only
    from MLSystem.base import WrappedModel                       # model.py holding your own LightningModule
    from MLSystem.base import BaseAdapter                        # adapter.py
    from MLSystem.base import BasePlot, new_figure               # plots.py
    from MLSystem.plots import LossCurves, ConfusionMatrix, ...  # ready-made plots

These names are the stable API: they keep their meaning across MLSystem versions (a change is
announced with a deprecation warning first). Every other module of ``MLSystem`` is internal and may
change without notice; ``tests/test_architecture.py`` checks that ``definitions/`` imports only
``MLSystem.base`` and ``MLSystem.plots``.

Importing this package is cheap: the Lightning-based classes, plots and the loader are imported
on first use of their name, so a ``config.py`` that imports ``ConfigBase`` never loads torch.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from MLSystem.base.adapter import BaseAdapter
from MLSystem.errors import BadInputError, ConfigError, MLSystemError
from MLSystem.paths import ExperimentPaths, ProjectPaths
from MLSystem.utils.atomic import atomic_write, atomic_write_json, atomic_write_text, read_json
from MLSystem.utils.config_base import ConfigBase, param

if TYPE_CHECKING:
    from MLSystem.base.datamodule import BaseDataModule
    from MLSystem.base.model import BaseClassifier, BaseModel
    from MLSystem.base.wrapped import WrappedModel
    from MLSystem.loader import LoadedExperiment, load_experiment
    from MLSystem.resumable import BucketBatchSampler, ResumableDataLoader
    from MLSystem.utils.base_plot import BasePlot, new_figure

__all__ = [
    # configs
    "ConfigBase", "param",
    # definitions
    "BaseDataModule", "BaseModel", "BaseClassifier", "WrappedModel", "BaseAdapter", "ResumableDataLoader", "BucketBatchSampler",
    # plots
    "BasePlot", "new_figure",
    # paths, files and errors a definition may need (data folders, caches, one-line errors)
    "ProjectPaths", "ExperimentPaths", "atomic_write", "atomic_write_text", "atomic_write_json", "read_json",
    "MLSystemError", "ConfigError", "BadInputError",
    # restoring a trained experiment (inference scripts, notebooks)
    "load_experiment", "LoadedExperiment",
]


def __getattr__(name: str) -> Any:
    """The heavy names, imported on first use (PEP 562)."""
    if name == "BaseDataModule":
        from MLSystem.base.datamodule import BaseDataModule  # lazy: Lightning

        return BaseDataModule
    if name in ("BaseModel", "BaseClassifier"):
        from MLSystem.base import model  # lazy: Lightning

        return getattr(model, name)
    if name == "WrappedModel":
        from MLSystem.base.wrapped import WrappedModel  # lazy: Lightning

        return WrappedModel
    if name in ("ResumableDataLoader", "BucketBatchSampler"):
        from MLSystem import resumable  # lazy: torch

        return getattr(resumable, name)
    if name in ("BasePlot", "new_figure"):
        from MLSystem.utils import base_plot  # lazy: matplotlib

        return getattr(base_plot, name)
    if name in ("load_experiment", "LoadedExperiment"):
        from MLSystem import loader  # lazy: the loader sits above the registry, which imports this package

        return getattr(loader, name)
    raise AttributeError(f"module 'MLSystem.base' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
