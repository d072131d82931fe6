"""Typed records of an experiment folder: ``experiment.json`` (:class:`ExperimentRecord`) and
``state.json`` (:class:`TrainingState`), plus the vocabularies they use.

These are plain data: reading and writing the files is :mod:`MLSystem.experiment_store`'s job,
and every other module reads experiments through these classes (no ``dict.get("…")`` on raw
JSON). Unknown keys are kept in ``extra`` and written back, so a newer MLSystem's or a user's
additions survive a rewrite. A file without ``version`` is version 1.
"""

from __future__ import annotations

from dataclasses import MISSING, dataclass, field, fields
from enum import Enum
from typing import Any, Mapping

SCHEMA_VERSION = 1
STATE_KEY = "mlsystem"  # where the training state lives inside a Lightning checkpoint
# Keys that select definitions instead of setting a parameter (the one definition of them).
SELECTION_KEYS = ("dataset", "model", "adapter", "init_from")


class StrEnum(str, Enum):
    """A string enum that formats and hashes as its value (``f"{Status.PENDING}"`` == ``"pending"``,
    and a dict keyed by members finds plain strings)."""

    __str__ = str.__str__
    __format__ = str.__format__
    __hash__ = str.__hash__


class ExperimentStatus(StrEnum):
    """``experiment.json`` "status"."""

    NEW = "new"  # created, never trained
    RUNNING = "running"  # a process holds the lease and trains it
    STOPPED = "stopped"  # stopped on request; resumable
    FAILED = "failed"  # the training code raised
    COMPLETE = "complete"  # trained to its max_epochs
    # Derived on read, never written:
    INTERRUPTED = "interrupted"  # recorded as running, but no process holds its lease (killed)
    DAMAGED = "damaged"  # experiment.json cannot be parsed


class Action(StrEnum):
    """What a run of an experiment does (``execute_train``'s decision; a job's ``action``)."""

    NEW = "new"
    RESUME = "resume"
    EXTEND = "extend"
    COMPLETE = "complete"  # nothing to train
    PLOT = "plot"  # a plot job (never a training decision)


_KNOWN: dict[type, tuple[frozenset[str], dict[str, Any], dict[str, Any]]] = {}


def _schema(cls: type) -> tuple[frozenset[str], dict[str, Any], dict[str, Any]]:
    """Field names, plain defaults and default factories of a record class (``fields()`` is slow,
    and a listing converts 10,000 records)."""
    schema = _KNOWN.get(cls)
    if schema is None:
        plain, factories = {}, {}
        for f in fields(cls):
            if f.default is not MISSING:
                plain[f.name] = f.default
            elif f.default_factory is not MISSING:
                factories[f.name] = f.default_factory
        schema = _KNOWN[cls] = (frozenset(f.name for f in fields(cls)) - {"extra", "missing"}, plain, factories)
    return schema


class _Record:
    """``from_dict`` / ``to_dict`` for the record dataclasses below (tolerant of old files)."""

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], **defaults: Any):
        names, plain, factories = _schema(cls)
        if names.issuperset(data):
            known, extra = dict(data), {}
        else:
            known = {k: v for k, v in data.items() if k in names}
            extra = {k: v for k, v in data.items() if k not in names}
        version = known.get("version", 1)
        if not isinstance(version, int) or version > SCHEMA_VERSION:
            raise ValueError(f"version {version!r} is newer than this MLSystem reads ({SCHEMA_VERSION}); upgrade it")
        for k, v in defaults.items():
            known.setdefault(k, v)
        missing = names.difference(known)
        # Filled like the dataclass __init__ would (these records have no __post_init__), without
        # its per-call argument handling: same object, a fraction of the cost.
        obj = cls.__new__(cls)
        obj.__dict__.update(plain)
        obj.__dict__.update({k: factories[k]() for k in missing if k in factories})
        obj.__dict__.update(known)
        obj.extra = extra
        obj.missing = names.difference(data)
        required = missing - plain.keys() - factories.keys()
        if required:
            raise ValueError(f"missing field(s) {', '.join(sorted(required))}")
        return obj

    def to_dict(self) -> dict[str, Any]:
        out = {f.name: getattr(self, f.name) for f in fields(self) if f.name not in ("extra", "missing")}
        out.update(self.extra)
        return out


@dataclass
class ExperimentRecord(_Record):
    """``experiment.json``: what the experiment is and what happened to it."""

    id: str
    dataset: str = ""
    model: str = ""
    adapter: str = ""
    identity: dict = field(default_factory=dict)  # the hashed dict: selection + non-default identity params
    identity_values: dict = field(default_factory=dict)  # every identity param, defaults included (for diffs)
    parent: str | None = None  # warm-start parent experiment
    created: str = ""
    updated: str = ""
    fingerprint: dict = field(default_factory=dict)  # "layer:name" -> hash of the definition's files
    status: str = ExperimentStatus.NEW.value
    segments: list = field(default_factory=list)  # one dict per training run (kind, epochs, steps, status)
    max_epochs: int | None = None  # target of the latest run
    epochs_done: int | None = None
    global_step: int | None = None
    epoch_seconds: float | None = None  # mean measured epoch duration (queue ETAs)
    error: str | None = None  # last failure, one line
    metric_modes: dict = field(default_factory=dict)  # declared metric directions (utils.metric_mode)
    best_metric: str | None = None  # the metric best.ckpt keeps (common layer's best_metric)
    version: int = SCHEMA_VERSION
    extra: dict = field(default_factory=dict)  # unknown keys, kept on rewrite
    # Known keys absent from the file (e.g. ``epoch_seconds`` in records older than it); not written.
    missing: frozenset = field(default=frozenset(), compare=False, repr=False)

    @classmethod
    def from_json(cls, data: Any, experiment_id: str) -> "ExperimentRecord":
        """A record from parsed ``experiment.json``; ``ValueError`` names the first problem."""
        if not isinstance(data, dict):
            raise ValueError(f"expected a JSON object, got {type(data).__name__}")
        return cls.from_dict(data, id=experiment_id)

    @classmethod
    def damaged(cls, experiment_id: str, problem: str) -> "ExperimentRecord":
        """Stand-in for an unreadable ``experiment.json`` (listed, never written)."""
        return cls(id=experiment_id, status=ExperimentStatus.DAMAGED.value, error=problem)

    @property
    def selection(self) -> dict[str, Any]:
        """dataset / model / adapter / init_from as recorded in the identity."""
        return {k: self.identity[k] for k in SELECTION_KEYS if self.identity.get(k)}

    def runs(self) -> list["Segment"]:
        """The training runs, typed (``segments`` stays as stored, so listings convert nothing)."""
        return [Segment.from_dict(s) for s in self.segments if isinstance(s, dict)]


@dataclass
class Segment(_Record):
    """One training run of an experiment (an entry of ``experiment.json`` "segments")."""

    kind: str = Action.NEW.value  # new / resume / extend
    from_epoch: int = 0
    to_epoch: int = 0  # the run's target (max_epochs)
    from_step: int = 0
    started: str = ""
    pid: int | None = None
    status: str = ExperimentStatus.RUNNING.value
    ended: str | None = None
    to_step: int | None = None
    reached_epoch: int | None = None
    extra: dict = field(default_factory=dict)
    missing: frozenset = field(default=frozenset(), compare=False, repr=False)


@dataclass
class TrainingState(_Record):
    """``state.json`` (and the ``STATE_KEY`` entry of a checkpoint): where training stands."""

    epochs_completed: int = 0
    global_step: int = 0
    mid_epoch: bool = False
    max_epochs: int | None = None  # the target of the run that saved it
    checkpoint: str | None = None
    version: int = SCHEMA_VERSION
    extra: dict = field(default_factory=dict)
    missing: frozenset = field(default=frozenset(), compare=False, repr=False)

    @classmethod
    def from_json(cls, data: Any) -> "TrainingState":
        if not isinstance(data, dict):
            raise ValueError(f"expected a JSON object, got {type(data).__name__}")
        state = cls.from_dict(data)
        state.epochs_completed, state.global_step = int(state.epochs_completed), int(state.global_step)
        state.mid_epoch = bool(state.mid_epoch)
        return state
