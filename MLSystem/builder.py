"""``ExperimentBuilder`` -> ``ExperimentContext``: the one way to turn a selection + overrides
into an experiment. Training, plots, the loader and the GUI preview all go through here.

Building a context merges configs and computes the experiment ID; it loads no data, builds no
model and imports no torch. The data module, adapter and model are created on first access.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property
from typing import Any, Iterable, Mapping

from MLSystem.checkpoint_manager import Decision, decide
from MLSystem.config_merge import MergedConfig, Selection, merge_config
from MLSystem.experiment_index import ExperimentIndexDB, index_for_hints
from MLSystem.experiment_store import ExperimentSummary, read_record, resolve_id
from MLSystem.hashing import ID_LENGTH, diff_params, experiment_id, identity, same_value
from MLSystem.paths import ExperimentPaths, ProjectPaths
from MLSystem.records import SELECTION_KEYS
from MLSystem.registry import Entry, Registry
from MLSystem.utils.metric_mode import declared_modes


class ExperimentBuilder:
    """Merge ``Common < Dataset < Adapter < Model < config.yaml < overrides`` and hash the identity."""

    def __init__(self, overrides: Iterable[str] | Mapping[str, Any] = (), *, paths: ProjectPaths | None = None,
                 registry: Registry | None = None, use_base_config: bool = True):
        self.paths = paths or (registry.paths if registry else ProjectPaths.discover())
        self.registry = registry or Registry.load(self.paths)
        self.overrides = overrides if isinstance(overrides, Mapping) else list(overrides)
        self.use_base_config = use_base_config

    def build(self) -> "ExperimentContext":
        merged = merge_config(self.overrides, registry=self.registry, paths=self.paths,
                              use_base_config=self.use_base_config, resolve_parent=self._resolve_parent)
        ident = identity(merged)
        eid = experiment_id(ident)
        return ExperimentContext(eid, merged, ident, self.paths, self.registry)

    def _resolve_parent(self, ref: str) -> str:
        """``init_from``'s experiment: a prefix becomes the full ID (so both hash alike); a full ID
        is kept as is, because its folder may be gone when a child is restored."""
        return ref if len(ref) >= ID_LENGTH else resolve_id(self.paths, ref)


@dataclass
class ExperimentContext:
    """Everything one experiment needs; heavy parts are built lazily."""

    experiment_id: str
    merged: MergedConfig
    identity: dict[str, Any]
    paths: ProjectPaths
    registry: Registry

    # -- cheap facts ---------------------------------------------------------------------------
    @property
    def all_params(self) -> dict[str, Any]:
        return self.merged.params

    @property
    def selection(self) -> Selection:
        return self.merged.selection

    @property
    def sources(self) -> dict[str, str]:
        """Where each parameter's value came from (layer, config.yaml or override)."""
        return self.merged.sources

    @property
    def identity_values(self) -> dict[str, Any]:
        """Every identity parameter's value, defaults included."""
        return {k: self.all_params[k] for k in self.merged.identity_keys}

    @property
    def exp(self) -> ExperimentPaths:
        return self.paths.experiment(self.experiment_id)

    @property
    def entries(self) -> dict[str, Entry]:
        s = self.selection
        return {
            "dataset": self.registry.dataset(s.dataset),
            "adapter": self.registry.adapter(s.model, s.adapter, s.dataset),
            "model": self.registry.model(s.model),
        }

    @property
    def metric_modes(self) -> dict[str, str]:
        """Declared metric directions: the layers' ``metric_modes`` and ``best_mode`` (``utils.metric_mode``)."""
        return declared_modes(self.merged.layer_classes.values(), self.all_params)

    def fingerprint(self) -> dict[str, str]:
        """Hashes of the definition files used (recorded; a change on resume is a warning)."""
        return {f"{layer}:{e.name}": e.fingerprint() for layer, e in self.entries.items()}

    def decide(self, max_epochs: int | None = None, *, verify: bool = False) -> Decision:
        """New / resume / extend / complete, from ``state.json`` (no torch; ``verify``: check the
        checkpoint's integrity and fall back to an older one)."""
        return decide(self.exp, int(max_epochs or self.all_params["max_epochs"]), verify=verify)

    def nearest(self, neighbours: "Neighbours | None" = None) -> dict[str, Any] | None:
        """The existing experiment closest to this one: ``{"experiment_id", "differs": [...], "text"}``
        (``differs`` as ``["lr: 0.003 -> 0.01"]``); None when no experiment shares dataset and model.
        ``neighbours``: a prepared listing to reuse (a sweep lists the experiments once)."""
        near = nearest_experiment(self.paths, self.identity, self.identity_values, exclude=self.experiment_id,
                                  neighbours=neighbours)
        if not near:
            return None
        return {"experiment_id": near[0], "differs": near[1], "text": self._explain(*near)}

    def explain_new(self) -> str:
        """Why this is a new experiment although similar ones exist (empty if none)."""
        near = self.nearest()
        return near["text"] if near else ""

    def _explain(self, other: str, diff: list[str]) -> str:
        if diff:
            return f"nearest existing {other} differs in " + ", ".join(diff)
        # Same values, other ID: the identity leaves out values equal to their default, so a
        # changed default separates a value set explicitly then from the same value now.
        record = read_record(self.paths.experiment(other))
        theirs = (record.identity if record else {}).get("params", {})
        explicit = sorted(set(theirs) - set(self.identity["params"]))
        why = f"{', '.join(explicit)} had another default when it was created" if explicit else "its definitions changed"
        return f"nearest existing {other} has the same values, but {why} (IDs leave out default values)"

    # -- heavy parts, built on first use ---------------------------------------------------------
    @cached_property
    def adapter(self):
        return self.entries["adapter"].impl_class()(self.all_params)

    @cached_property
    def datamodule(self):
        return self.entries["dataset"].impl_class()(self.all_params, self.adapter)

    @cached_property
    def model(self):
        build_args = self.adapter.build_args(self.datamodule)
        return self.entries["model"].impl_class()(self.all_params, **build_args)


_SCALARS = (str, int, float, bool)


def _differs(v: Any, w: Any) -> bool:
    # Scalars of one type compare with `==`; the canonical form is only needed across types
    # (2 vs 2.0) or for containers.
    if type(v) is type(w) and isinstance(v, _SCALARS):
        return v != w
    return not same_value(v, w)


class Neighbours:
    """The experiments on disk, prepared once for many "nearest" questions (every combination of a
    sweep asks one): candidates grouped by dataset and model, newest first.

    ``varying`` (the keys a sweep varies; every other identity value is the same in all its
    questions) lets each candidate's differences in the other keys be counted once per sweep.
    """

    def __init__(self, summaries: list[ExperimentSummary], varying: Iterable[str] | None = None,
                 index: ExperimentIndexDB | None = None):
        self.varying = None if varying is None else frozenset(varying)
        self._by_pair: dict[tuple[Any, Any], list[tuple[str, tuple, dict[str, Any], dict[str, Any]]]] = {}
        self._fixed_counts: dict[tuple, list[int]] = {}
        self._index = index  # candidates of a dataset/model pair are read from it when first asked for
        for summary in summaries:
            other = summary.record.identity
            params = {**other.get("params", {}), **summary.record.identity_values}
            selection = tuple(other.get(k) for k in SELECTION_KEYS)
            self._by_pair.setdefault((other.get("dataset"), other.get("model")), []).append(
                (summary.id, selection, other, params))

    @classmethod
    def from_index(cls, paths: ProjectPaths, varying: Iterable[str] | None = None) -> "Neighbours":
        """Candidates from the experiments' query index (fresh), one dataset/model pair at a time:
        100,000 experiments are never all loaded."""
        return cls([], varying, index=index_for_hints(paths))

    def _candidates(self, dataset: Any, model: Any) -> list[tuple[str, tuple, dict[str, Any], dict[str, Any]]]:
        pair = (dataset, model)
        if pair not in self._by_pair and self._index is not None:
            self._by_pair[pair] = [(eid, tuple(sel.get(k) for k in SELECTION_KEYS), sel, params)
                                   for eid, sel, params, _ in self._index.candidates(dataset, model)]
        return self._by_pair.get(pair, [])

    def _count(self, theirs: dict[str, Any], identity_values: dict[str, Any], keys: Iterable[str] | None) -> int:
        items = theirs.items() if keys is None else ((k, theirs[k]) for k in keys if k in theirs)
        return sum(1 for k, v in items if k in identity_values and _differs(v, identity_values[k]))

    def nearest(self, ident: dict[str, Any], identity_values: dict[str, Any],
                exclude: str | None = None) -> tuple[str, list[str]] | None:
        """See :func:`nearest_experiment`."""
        candidates = self._candidates(ident.get("dataset"), ident.get("model"))
        fixed = None
        if self.varying is not None:
            # The same selection has the same fields, so the keys a sweep does not vary hold the
            # same values in all its questions: their differences are counted once.
            key = (tuple(ident.get(k) for k in SELECTION_KEYS), self.varying)
            fixed = self._fixed_counts.get(key)
            if fixed is None:
                fixed_keys = [k for k in identity_values if k not in self.varying]
                fixed = self._fixed_counts[key] = [self._count(t, identity_values, fixed_keys)
                                                   for _, _, _, t in candidates]
            varying = [k for k in self.varying if k in identity_values]
        mine = tuple(ident.get(k) for k in SELECTION_KEYS)
        best: tuple[int, str, dict[str, Any], dict[str, Any]] | None = None
        for i, (eid, selection, other, theirs) in enumerate(candidates):
            if eid == exclude:
                continue
            # The readable diff is built for the winner only.
            n = 0 if selection == mine else sum(a != b for a, b in zip(selection, mine))
            if fixed is None:
                n += self._count(theirs, identity_values, None)
            else:
                n += fixed[i]
                for k in varying:
                    if k in theirs and _differs(theirs[k], identity_values[k]):
                        n += 1
            if best is None or n < best[0]:
                best = (n, eid, other, theirs)
        if best is None:
            return None
        _, eid, other, theirs = best
        return eid, diff_params({**other, "params": {**identity_values, **theirs}}, {**ident, "params": identity_values})


def nearest_experiment(paths: ProjectPaths, ident: dict[str, Any], identity_values: dict[str, Any],
                       exclude: str | None = None, neighbours: Neighbours | None = None) -> tuple[str, list[str]] | None:
    """The existing experiment whose identity differs least from ``ident``, and the differences
    (``lr: 0.001 -> 0.01``). Candidates share dataset and model; ties go to the most recent.
    ``neighbours``: the prepared listing to reuse (default: list the experiments now).
    """
    return (neighbours or Neighbours.from_index(paths)).nearest(ident, identity_values, exclude)
