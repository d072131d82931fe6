"""Restore an experiment by ID (or unique prefix) for analysis: notebooks, plots, inference.

    from MLSystem.loader import load_experiment
    exp = load_experiment("3f9c1a")          # config restored, weights of last.ckpt loaded
    exp.model.eval(); exp.datamodule; exp.all_params; exp.metrics

The configuration is rebuilt by the same :class:`~MLSystem.builder.ExperimentBuilder` as
training uses, from the selection and parameters saved in the experiment's ``config.yaml``
(the project's current ``configs/config.yaml`` is ignored: it may have changed since). Weights
are always loaded onto the CPU first, so a model trained on a GPU restores on any machine.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

from MLSystem import checkpoint_manager as cm
from MLSystem import experiment_store as store
from MLSystem.builder import ExperimentBuilder, ExperimentContext
from MLSystem.errors import BadInputError
from MLSystem.metrics_reader import MetricSeries, read_rows
from MLSystem.paths import ExperimentPaths, ProjectPaths
from MLSystem.records import SELECTION_KEYS, ExperimentRecord, TrainingState
from MLSystem.registry import Registry

log = logging.getLogger("MLSystem.loader")


@dataclass
class LoadedExperiment:
    """A restored experiment. Data, model and metrics are loaded on first access."""

    context: ExperimentContext
    checkpoint: str | None = None  # checkpoint name to load (None: last.ckpt)
    weights: bool = True  # False: `model` keeps its initial weights (e.g. to plot before training)
    warnings: list[str] = field(default_factory=list)
    _metrics_cache: tuple[tuple[int, int], list[dict[str, Any]], MetricSeries] | None = field(default=None, repr=False)

    # -- configuration -------------------------------------------------------------------------
    @property
    def experiment_id(self) -> str:
        return self.context.experiment_id

    @property
    def all_params(self) -> dict[str, Any]:
        return self.context.all_params

    params = all_params

    @property
    def selection(self):
        return self.context.selection

    @property
    def exp(self) -> ExperimentPaths:
        return self.context.exp

    @property
    def record(self) -> ExperimentRecord | None:
        """``experiment.json`` (re-read on every access: training may be running)."""
        return store.read_record(self.exp)

    @property
    def metadata(self) -> dict[str, Any]:
        """``experiment.json`` as a plain dict (prefer :attr:`record`)."""
        record = self.record
        return record.to_dict() if record else {}

    @property
    def state(self) -> TrainingState | None:
        return store.read_state(self.exp)

    # -- metrics -------------------------------------------------------------------------------
    @property
    def metrics(self) -> list[dict[str, Any]]:
        """Every row of ``metrics.jsonl``; re-read when the file changed (training may be running)."""
        try:
            st = self.exp.metrics.stat()
            stamp = (st.st_size, st.st_mtime_ns)
        except FileNotFoundError:
            return []
        if self._metrics_cache is None or self._metrics_cache[0] != stamp:
            rows = read_rows(self.exp.metrics)
            self._metrics_cache = (stamp, rows, MetricSeries.from_rows(rows))
        return self._metrics_cache[1]

    @property
    def series(self) -> MetricSeries:
        """The metrics split into step, epoch and event rows (shared with :attr:`metrics`)."""
        self.metrics  # noqa: B018 - refreshes the cache if the file changed
        return self._metrics_cache[2] if self._metrics_cache else MetricSeries()

    def metrics_frame(self):
        """The metrics log as a pandas DataFrame (needs pandas, which MLSystem does not require)."""
        import pandas as pd

        return pd.DataFrame(self.metrics)

    # -- checkpoints and weights -----------------------------------------------------------------
    def checkpoints(self) -> list[cm.CheckpointInfo]:
        return cm.list_checkpoints(self.exp)

    def has_checkpoint(self) -> bool:
        try:
            cm.find_checkpoint(self.exp, self.checkpoint)
        except BadInputError:
            return False
        return True

    @property
    def checkpoint_path(self) -> Path:
        """The checkpoint the weights come from; a clear error if it does not exist."""
        return cm.find_checkpoint(self.exp, self.checkpoint)

    # -- heavy parts -----------------------------------------------------------------------------
    @property
    def adapter(self):
        return self.context.adapter

    @cached_property
    def datamodule(self):
        """The data module, set up for fitting (train and validation sets ready)."""
        dm = self.context.datamodule
        dm.setup("fit")
        return dm

    @cached_property
    def model(self):
        """The model on the CPU in eval mode, with the checkpoint's weights unless ``weights=False``."""
        model = self.context.model
        if self.weights:
            load_weights(model, self.checkpoint_path)
        return model.cpu().eval()


def load_weights(model, path: Path) -> None:
    """Load a checkpoint's ``state_dict`` into ``model`` (mapped to the CPU; strict)."""
    import torch

    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:
        raise BadInputError(f"checkpoint {path}: cannot be read ({type(exc).__name__}: {exc})") from None
    model.load_state_dict(ckpt["state_dict"])


def load_experiment(experiment: str, checkpoint: str | None = None, *, paths: ProjectPaths | None = None,
                    weights: bool = True) -> LoadedExperiment:
    """Restore ``experiment`` (a full ID or a unique prefix) with the weights of ``checkpoint``
    (a name such as ``epoch-0003``; default ``last``). Nothing heavy happens until it is used."""
    paths = paths or ProjectPaths.discover()
    eid = store.resolve_id(paths, experiment)
    ctx, warnings = restore_context(paths, eid)
    loaded = LoadedExperiment(ctx, checkpoint=checkpoint, weights=weights, warnings=warnings)
    if checkpoint:
        loaded.checkpoint_path  # noqa: B018 - fail now, naming the available checkpoints
    return loaded


def restore_context(paths: ProjectPaths, eid: str) -> tuple[ExperimentContext, list[str]]:
    """The experiment's build context from its saved ``config.yaml``, plus any warnings.

    Parameters the definitions no longer declare are dropped (with a warning); ones they gained
    take their defaults, which is also what the ID assumes for them.
    """
    from omegaconf import OmegaConf

    exp = paths.experiment(eid)
    if not exp.resolved_config.is_file():
        raise BadInputError(f"experiment {eid}: {exp.resolved_config} is missing (was it ever trained?)")
    try:
        saved = OmegaConf.to_container(OmegaConf.load(exp.resolved_config), resolve=True)
    except Exception as exc:
        raise BadInputError(f"{exp.resolved_config}: cannot be read ({str(exc).splitlines()[0]})") from None
    selection = {k: saved[k] for k in SELECTION_KEYS if saved.get(k) is not None}
    registry = Registry.load(paths)
    known = ExperimentBuilder(selection, paths=paths, registry=registry, use_base_config=False).build().merged.fields
    params = saved.get("params") or {}
    warnings = []
    if dropped := sorted(set(params) - set(known)):
        warnings.append(f"parameters no longer defined, ignored: {', '.join(dropped)}")
    values = {**selection, **{k: v for k, v in params.items() if k in known}}
    ctx = ExperimentBuilder(values, paths=paths, registry=registry, use_base_config=False).build()
    if ctx.experiment_id != eid:
        record = store.read_record(exp)
        warnings.append(f"the definitions changed since {eid} was created: its saved config now hashes to "
                        f"{ctx.experiment_id}; loading it as {eid}")
        ctx = ExperimentContext(eid, ctx.merged, (record.identity if record else None) or ctx.identity, paths, registry)
    # Keep the provenance recorded at training time, not "override" for every restored value.
    ctx.merged.sources.update({k: v for k, v in (saved.get("sources") or {}).items() if k in known})
    for w in warnings:
        log.warning("%s", w)
    return ctx, warnings
