"""Where a study lives: ``output/studies/{name}/``.

* ``study.json`` — what the user asked for (base overrides, search space, metric, mode, trials,
  sampler, pruner, parallel): the runner's hook rebuilds the study from it, so no process has to
  stay alive between trials.
* ``journal.log`` — Optuna's own record (``JournalStorage`` on a ``JournalFileBackend``): every
  ask, report and tell, append-only, safe for several processes, no database server.
* ``.lock`` — held while trials are asked or told, so ``tune`` and the runner never over-ask.
"""

from __future__ import annotations

import contextlib
import re
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Iterator

from MLSystem.errors import BadInputError, ConfigError
from MLSystem.paths import ProjectPaths
from MLSystem.utils.atomic import atomic_write_json, read_json

NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
PRUNERS = ("none", "median", "percentile", "asha", "hyperband", "threshold")
SAMPLERS = ("tpe", "random", "gp", "cmaes", "qmc")
VALUES = ("best", "last")


class StudyNotFound(BadInputError):
    """No study of that name in the project."""


@dataclass
class StudySpec:
    """One study's settings (``study.json``)."""

    name: str
    overrides: list[str]  # fixed overrides + search space, as the user wrote them
    metric: str
    mode: str  # "min" / "max"
    trials: int
    sampler: str = "tpe"
    seed: int = 0
    pruner: str = "none"  # "median", "asha:min_resource=1", "threshold:upper=0.5", …
    parallel: int = 1  # trials queued at once
    value: str = "best"  # the trial's value: best epoch value of the metric, or the last one
    created: str = ""
    extra: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "StudySpec":
        known = {k: data[k] for k in cls.__dataclass_fields__ if k in data}
        return cls(**known)

    @property
    def direction(self) -> str:
        return "maximize" if self.mode == "max" else "minimize"


def check_name(name: str) -> str:
    if not NAME.match(name or ""):
        raise ConfigError(f"--name: {name!r} is not a study name (letters, digits, . _ -; at most 64 characters)")
    return name


class StudyStore:
    """The files of one study."""

    def __init__(self, paths: ProjectPaths, name: str):
        self.paths = paths
        self.name = check_name(name)
        self.dir = studies_dir(paths) / name

    @property
    def spec_file(self) -> Path:
        return self.dir / "study.json"

    @property
    def journal(self) -> Path:
        return self.dir / "journal.log"

    def exists(self) -> bool:
        return self.spec_file.is_file()

    def read_spec(self) -> StudySpec:
        data = read_json(self.spec_file)
        if not isinstance(data, dict):
            names = list_study_names(self.paths)
            raise StudyNotFound(f"study {self.name!r}: no such study in {studies_dir(self.paths)}"
                                + (f" (studies: {', '.join(names[:10])})" if names else " (none yet)"))
        return StudySpec.from_dict(data)

    def write_spec(self, spec: StudySpec) -> None:
        self.dir.mkdir(parents=True, exist_ok=True)
        atomic_write_json(self.spec_file, spec.to_dict())

    @contextlib.contextmanager
    def locked(self, timeout: float = 60.0) -> Iterator[None]:
        from filelock import FileLock

        self.dir.mkdir(parents=True, exist_ok=True)
        with FileLock(str(self.dir / ".lock"), timeout=timeout):
            yield

    def storage(self):
        """Optuna's journal storage on this study's file."""
        from optuna.storages import JournalStorage
        from optuna.storages.journal import JournalFileBackend

        self.dir.mkdir(parents=True, exist_ok=True)
        return JournalStorage(JournalFileBackend(str(self.journal)))


def studies_dir(paths: ProjectPaths) -> Path:
    return paths.output / "studies"


def list_study_names(paths: ProjectPaths) -> list[str]:
    root = studies_dir(paths)
    if not root.is_dir():
        return []
    return sorted(d.name for d in root.iterdir() if (d / "study.json").is_file())


def parse_plugin(spec: str, valid: tuple[str, ...], what: str) -> tuple[str, dict[str, Any]]:
    """``"median:n_startup_trials=2,n_warmup_steps=1"`` -> ("median", {...}) with typed values."""
    name, _, rest = (spec or "none").partition(":")
    name = name.strip().lower()
    if name not in valid:
        raise ConfigError(f"--{what}: {name!r} is not one of {', '.join(valid)}")
    kwargs: dict[str, Any] = {}
    for part in filter(None, (p.strip() for p in rest.split(","))):
        key, eq, raw = part.partition("=")
        if not eq:
            raise ConfigError(f"--{what}: {part!r} should be key=value (e.g. {name}:n_startup_trials=2)")
        kwargs[key.strip()] = _typed(raw.strip())
    return name, kwargs


def _typed(raw: str) -> Any:
    for conv in (int, float):
        with contextlib.suppress(ValueError):
            return conv(raw)
    return {"true": True, "false": False, "none": None}.get(raw.lower(), raw)


def make_pruner(spec: str):
    """The Optuna pruner named by ``spec`` (``none`` -> NopPruner)."""
    import optuna

    name, kw = parse_plugin(spec, PRUNERS, "pruner")
    classes = {"none": optuna.pruners.NopPruner, "median": optuna.pruners.MedianPruner,
               "percentile": optuna.pruners.PercentilePruner, "asha": optuna.pruners.SuccessiveHalvingPruner,
               "hyperband": optuna.pruners.HyperbandPruner, "threshold": optuna.pruners.ThresholdPruner}
    try:
        return classes[name](**kw)
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"--pruner {spec}: {exc}") from None


def make_sampler(spec: str, seed: int):
    import optuna

    name, kw = parse_plugin(spec, SAMPLERS, "sampler")
    classes = {"tpe": optuna.samplers.TPESampler, "random": optuna.samplers.RandomSampler,
               "gp": optuna.samplers.GPSampler, "cmaes": optuna.samplers.CmaEsSampler,
               "qmc": optuna.samplers.QMCSampler}
    kw.setdefault("seed", seed)
    try:
        return classes[name](**kw)
    except (TypeError, ValueError, ImportError) as exc:
        raise ConfigError(f"--sampler {spec}: {exc}") from None
