"""``configs/registry.json``: the explicit list of datasets, models and per-model adapters.

Nothing is discovered by magic. Each entry names a folder and the classes in it::

    "datasets": {"digits": {"path": "definitions/datasets/digits",
                            "config": "DigitsConfig", "class": "DigitsDataModule"}}
    "models":   {"cnn": {"path": ..., "config": ..., "class": ...,
                         "adapters": {"digits": {"path": ..., "config": ..., "class": ...}}}}

A folder holds ``config.py`` plus ``datamodule.py`` (dataset), ``model.py`` (model) or
``adapter.py`` (adapter). Config modules are imported on their own, so reading configs never
imports torch; implementation modules are imported only when something is built.
"""

from __future__ import annotations

import hashlib
import importlib
import json
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from MLSystem.base.adapter import BaseAdapter
from MLSystem.errors import RegistryError, suggest
from MLSystem.paths import ProjectPaths
from MLSystem.utils.config_base import ConfigBase

DATASET, MODEL, ADAPTER = "dataset", "model", "adapter"
IMPL_MODULE = {DATASET: "datamodule", MODEL: "model", ADAPTER: "adapter"}
PLOT_MODULE = "plots"  # the plot module of every layer: plots.py
LEGACY_PLOT_MODULE = "plot"  # adapters' old name, still read (with a warning) until MLSystem 0.3


class PlotModuleNameWarning(FutureWarning):
    """A definition folder still uses the old plot-module name ``plot.py``."""


def _impl_base(kind: str) -> type:
    if kind == DATASET:
        from MLSystem.base.datamodule import BaseDataModule  # lazy: Lightning, only when something is built

        return BaseDataModule
    if kind == MODEL:
        from MLSystem.base.model import BaseModel  # lazy: Lightning, only when something is built

        return BaseModel
    return BaseAdapter


# definition file -> the module object already checked to come from it
_VERIFIED: dict[str, Any] = {}


@dataclass(frozen=True)
class Entry:
    """One registered definition: where its files are and which classes to use."""

    kind: str
    name: str
    folder: Path
    module_base: str  # dotted package of the folder, e.g. "definitions.datasets.digits"
    config_name: str
    class_name: str
    where: str  # "registry.json: models.cnn.adapters.digits", for messages
    description: str = ""

    def _import(self, module: str) -> Any:
        dotted = f"{self.module_base}.{module}"
        file = self.folder / f"{module}.py"
        if not file.is_file():
            raise RegistryError(f"{self.where}: {file} does not exist (a {self.kind} needs {module}.py)")
        try:
            mod = importlib.import_module(dotted)
        except Exception as exc:  # report the user's import error on one line
            raise RegistryError(f"{self.where}: importing {file} failed: {type(exc).__name__}: {exc}") from exc
        if _VERIFIED.get(str(file)) is mod:  # resolving paths costs more than the merge itself
            return mod
        loaded = Path(getattr(mod, "__file__", "") or "").resolve()
        if loaded != file.resolve():
            raise RegistryError(
                f"{self.where}: {dotted} was already imported from {loaded}, not {file}; "
                "run one project per process (set MLSYSTEM_ROOT)"
            )
        _VERIFIED[str(file)] = mod
        return mod

    def _get(self, module: str, name: str, base: type) -> type:
        mod = self._import(module)
        cls = getattr(mod, name, None)
        if cls is None:
            found = [k for k, v in vars(mod).items() if isinstance(v, type) and issubclass(v, base) and v is not base]
            raise RegistryError(
                f"{self.where}: class {name!r} not found in {self.folder / (module + '.py')}"
                + suggest(name, found)
            )
        if not (isinstance(cls, type) and issubclass(cls, base)):
            raise RegistryError(
                f"{self.where}: {name} in {self.folder / (module + '.py')} must subclass "
                f"{base.__module__}.{base.__qualname__}"
            )
        return cls

    def config_class(self) -> type[ConfigBase]:
        """The entry's config dataclass (imports ``config.py`` only)."""
        return self._get("config", self.config_name, ConfigBase)

    def impl_class(self) -> type:
        """The DataModule, LightningModule or Adapter class (may import torch)."""
        return self._get(IMPL_MODULE[self.kind], self.class_name, _impl_base(self.kind))

    def plot_module_file(self) -> Path:
        """``plots.py`` of the folder (an old ``plot.py`` is used when there is no ``plots.py``,
        with a deprecation warning)."""
        current = self.folder / f"{PLOT_MODULE}.py"
        legacy = self.folder / f"{LEGACY_PLOT_MODULE}.py"
        if not current.is_file() and legacy.is_file():
            warnings.warn(f"{legacy}: rename it to {PLOT_MODULE}.py, the plot-module name of every layer "
                          f"({LEGACY_PLOT_MODULE}.py is read until MLSystem 0.3)", PlotModuleNameWarning, stacklevel=2)
            return legacy
        return current

    def source_files(self) -> list[Path]:
        """The Python files that define this entry (a model's adapters are not part of it)."""
        return sorted(p for p in self.folder.glob("*.py") if p.is_file())

    def fingerprint(self) -> str:
        h = hashlib.sha256()
        for p in self.source_files():
            h.update(p.name.encode())
            h.update(p.read_bytes())
        return h.hexdigest()[:16]


@dataclass
class Registry:
    """Parsed ``registry.json``."""

    paths: ProjectPaths
    datasets: dict[str, Entry] = field(default_factory=dict)
    models: dict[str, Entry] = field(default_factory=dict)
    adapters: dict[str, dict[str, Entry]] = field(default_factory=dict)  # model -> name -> entry

    @classmethod
    def load(cls, paths: ProjectPaths | None = None) -> "Registry":
        """Read and check the structure of ``configs/registry.json`` (imports nothing)."""
        paths = paths or ProjectPaths.discover()
        file = paths.registry_json
        if not file.is_file():
            raise RegistryError(f"{file}: registry not found (is MLSYSTEM_ROOT / the current directory the project root?)")
        try:
            raw = json.loads(file.read_text(encoding="utf-8"))
        except json.JSONDecodeError as exc:
            raise RegistryError(f"{file}: invalid JSON at line {exc.lineno} column {exc.colno}: {exc.msg}") from exc
        if not isinstance(raw, dict):
            raise RegistryError(f"{file}: top level must be an object with 'datasets' and 'models'")
        paths.ensure_importable()
        reg = cls(paths)
        problems: list[str] = []
        for key in raw:
            if key not in ("datasets", "models", "$comment"):
                problems.append(f"registry.json: unknown top-level key {key!r}" + suggest(key, ["datasets", "models"]))
        for name, spec in _section(raw, "datasets", "registry.json", problems).items():
            entry = _entry(paths, DATASET, name, spec, f"registry.json: datasets.{name}", problems)
            if entry:
                reg.datasets[name] = entry
        for name, spec in _section(raw, "models", "registry.json", problems).items():
            where = f"registry.json: models.{name}"
            entry = _entry(paths, MODEL, name, spec, where, problems)
            if entry:
                reg.models[name] = entry
            adapters = _section(spec if isinstance(spec, dict) else {}, "adapters", where, problems)
            reg.adapters[name] = {}
            for aname, aspec in adapters.items():
                a = _entry(paths, ADAPTER, aname, aspec, f"{where}.adapters.{aname}", problems)
                if a:
                    reg.adapters[name][aname] = a
        if problems:
            raise RegistryError(problems)
        return reg

    def dataset(self, name: str) -> Entry:
        if name not in self.datasets:
            raise RegistryError(f"dataset={name}: not in registry.json" + suggest(name, self.datasets))
        return self.datasets[name]

    def model(self, name: str) -> Entry:
        if name not in self.models:
            raise RegistryError(f"model={name}: not in registry.json" + suggest(name, self.models))
        return self.models[name]

    def adapter(self, model: str, name: str | None, dataset: str) -> Entry:
        """The named adapter of ``model``, or by default the one named after ``dataset``."""
        self.model(model)
        options = self.adapters.get(model, {})
        chosen = name or dataset
        if chosen not in options:
            if name is None:
                raise RegistryError(
                    f"adapter: model {model!r} has no adapter named after dataset {dataset!r}; "
                    f"choose one with adapter=NAME (model {model!r} has: {', '.join(sorted(options)) or 'none'})"
                )
            raise RegistryError(f"adapter={name}: model {model!r} has no such adapter" + suggest(name, options))
        return options[chosen]

    def all_entries(self) -> list[Entry]:
        out = list(self.datasets.values()) + list(self.models.values())
        for adapters in self.adapters.values():
            out.extend(adapters.values())
        return out


def _section(raw: dict, key: str, where: str, problems: list[str]) -> dict:
    value = raw.get(key, {})
    if not isinstance(value, dict):
        problems.append(f"{where}: {key!r} must be an object of name -> entry")
        return {}
    return value


def _entry(paths: ProjectPaths, kind: str, name: str, spec: Any, where: str, problems: list[str]) -> Entry | None:
    if not isinstance(spec, dict):
        problems.append(f"{where}: must be an object with 'path', 'config' and 'class'")
        return None
    missing = [k for k in ("path", "config", "class") if not isinstance(spec.get(k), str) or not spec.get(k)]
    if missing:
        problems.append(f"{where}: missing {', '.join(repr(k) for k in missing)}")
        return None
    allowed = {"path", "config", "class", "description"} | ({"adapters"} if kind == MODEL else set())
    for k in spec:
        if k not in allowed:
            problems.append(f"{where}: unknown key {k!r}" + suggest(k, allowed))
    rel = Path(spec["path"])
    folder = (paths.root / rel).resolve()
    if rel.is_absolute() or not folder.is_relative_to(paths.root):
        problems.append(f"{where}.path: {spec['path']!r} must be a folder inside the project root")
        return None
    if not folder.is_dir():
        problems.append(f"{where}.path: folder {spec['path']!r} does not exist")
        return None
    if not (folder / "config.py").is_file():
        problems.append(f"{where}.path: {spec['path']}/config.py does not exist")
        return None
    module_base = ".".join(folder.relative_to(paths.root).parts)
    return Entry(kind, name, folder, module_base, spec["config"], spec["class"], where,
                 str(spec.get("description") or ""))
