"""The one place where configs are merged: ``Common < Dataset < Adapter < Model < config.yaml < overrides``.

Training, plots, the loader, ``submit`` and the GUI preview all call :func:`merge_config`.
Each layer contributes the fields its dataclass declares (with their defaults); a later layer
that redeclares a field wins, and its field type is the one values are coerced to. Values set
in ``configs/config.yaml`` (``params:``) and on the command line are typed by OmegaConf against
that merged schema, so ``lr=1`` and ``lr=1e-3`` arrive as floats. Parsing ``key=value`` strings
is :mod:`MLSystem.overrides`'s job.
"""

from __future__ import annotations

import copy
import dataclasses
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping

from MLSystem.common_config import CommonConfig
from MLSystem.errors import ConfigError, MLSystemError, first_line, suggest
from MLSystem.overrides import parse_overrides, range_problem
from MLSystem.paths import ProjectPaths
from MLSystem.records import SELECTION_KEYS
from MLSystem.registry import Registry
from MLSystem.utils.config_base import ConfigBase, FieldInfo
from MLSystem.utils.metric_mode import declared_modes

LAYERS = ("common", "dataset", "adapter", "model")
CONFIG_YAML, OVERRIDE = "config.yaml", "override"
# How the caller turns an ``init_from`` experiment reference into a full ID (the merge itself
# looks nothing up on disk; the builder passes the experiment store's resolver).
ParentResolver = Callable[[str], str]


@dataclass(frozen=True)
class Selection:
    """Which definitions an experiment uses. ``init_from`` names a parent checkpoint
    (``EXPERIMENT_ID`` or ``EXPERIMENT_ID/CHECKPOINT``) to warm-start from."""

    dataset: str
    model: str
    adapter: str
    init_from: str | None = None

    def as_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        if d["init_from"] is None:
            del d["init_from"]
        return d


@dataclass
class MergedConfig:
    """Result of the merge: typed ``params`` plus everything needed to explain them."""

    selection: Selection
    params: dict[str, Any]
    defaults: dict[str, Any]  # what the layers' dataclass defaults alone give
    sources: dict[str, str]  # key -> "common" | "dataset" | "adapter" | "model" | "config.yaml" | "override"
    fields: dict[str, FieldInfo]  # the winning declaration of each key
    layer_classes: dict[str, type[ConfigBase]] = field(default_factory=dict)

    @property
    def identity_keys(self) -> list[str]:
        return sorted(k for k, f in self.fields.items() if f.identity)



_BASE_CACHE: dict[str, tuple[tuple[int, int], dict[str, Any]]] = {}


def load_base_config(paths: ProjectPaths) -> dict[str, Any]:
    """``configs/config.yaml``: default selection and project-wide ``params``.

    Cached per file while its mtime and size are unchanged (a sweep submit merges once per job).
    """
    file = paths.config_yaml
    try:
        st = file.stat()
    except FileNotFoundError:
        return {}
    stamp = (st.st_mtime_ns, st.st_size)
    cached = _BASE_CACHE.get(str(file))
    if cached is None or cached[0] != stamp:
        cached = _BASE_CACHE[str(file)] = (stamp, _read_base_config(file))
    return copy.deepcopy(cached[1])


def _read_base_config(file: Path) -> dict[str, Any]:
    from omegaconf import OmegaConf

    try:
        raw = OmegaConf.to_container(OmegaConf.load(file), resolve=True)
    except Exception as exc:
        raise ConfigError(f"{file}: {str(exc).splitlines()[0]}") from None
    if raw is None:
        return {}
    if not isinstance(raw, dict):
        raise ConfigError(f"{file}: must be a mapping with dataset, model, adapter and params")
    allowed = set(SELECTION_KEYS) | {"params"}
    for k in raw:
        if k not in allowed:
            raise ConfigError(f"{file}: unknown key {k!r}" + suggest(str(k), allowed) + "; parameters go under 'params:'")
    return raw


def resolve_selection(registry: Registry, base: Mapping[str, Any], overrides: Mapping[str, Any],
                      resolve_parent: ParentResolver | None = None) -> Selection:
    """Selection from overrides, else ``config.yaml``; the adapter defaults to the one named after the dataset."""

    def pick(key: str) -> Any:
        return overrides.get(key, base.get(key))

    dataset, model = pick("dataset"), pick("model")
    missing = [k for k, v in (("dataset", dataset), ("model", model)) if not v]
    if missing:
        raise ConfigError(
            f"{' and '.join(missing)}: not selected; pass e.g. dataset=NAME model=NAME "
            f"(datasets: {', '.join(sorted(registry.datasets))}; models: {', '.join(sorted(registry.models))})"
        )
    dataset, model = str(dataset), str(model)
    registry.dataset(dataset)
    adapter = registry.adapter(model, pick("adapter") and str(pick("adapter")), dataset)
    init_from = pick("init_from")
    return Selection(dataset, model, adapter.name, _normalize_init_from(init_from, resolve_parent))


def _normalize_init_from(value: Any, resolve_parent: ParentResolver | None) -> str | None:
    """``PREFIX[/CHECKPOINT]`` -> ``FULL_ID[/CHECKPOINT]``, so a prefix and the full ID hash alike."""
    if not value:
        return None
    ref, _, ckpt = str(value).partition("/")
    if resolve_parent is not None:
        try:
            ref = resolve_parent(ref)
        except MLSystemError as exc:
            raise ConfigError(f"init_from: {exc}") from None
    ckpt = ckpt.removesuffix(".ckpt")
    return f"{ref}/{ckpt}" if ckpt else ref


def merge_config(
    overrides: Mapping[str, Any] | Iterable[str] = (),
    *,
    registry: Registry | None = None,
    paths: ProjectPaths | None = None,
    use_base_config: bool = True,
    resolve_parent: ParentResolver | None = None,
) -> MergedConfig:
    """Merge the layers of the selected definitions and apply overrides.

    ``overrides`` is either ``key=value`` strings or an already typed mapping (e.g. from a
    saved experiment). ``resolve_parent`` turns an ``init_from`` prefix into a full ID (kept as
    given without it). Raises :class:`ConfigError` listing every problem at once.
    """
    paths = paths or (registry.paths if registry else ProjectPaths.discover())
    registry = registry or Registry.load(paths)
    if not isinstance(overrides, Mapping):
        overrides = parse_overrides(overrides)
    base = load_base_config(paths) if use_base_config else {}
    selection = resolve_selection(registry, base, overrides, resolve_parent)

    layer_classes: dict[str, type[ConfigBase]] = {
        "common": CommonConfig,
        "dataset": registry.dataset(selection.dataset).config_class(),
        "adapter": registry.adapter(selection.model, selection.adapter, selection.dataset).config_class(),
        "model": registry.model(selection.model).config_class(),
    }
    fields: dict[str, FieldInfo] = {}
    defaults: dict[str, Any] = {}
    sources: dict[str, str] = {}
    problems: list[str] = []
    for layer in LAYERS:
        for info in layer_classes[layer].field_infos():
            if info.name in SELECTION_KEYS or info.name == "params":
                problems.append(f"{layer} config {layer_classes[layer].__name__}: field name {info.name!r} is reserved")
                continue
            fields[info.name] = info
            defaults[info.name] = info.default
            sources[info.name] = layer
    if problems:
        raise ConfigError(problems)

    schema = _typed_schema(tuple(layer_classes[layer] for layer in LAYERS), fields, defaults)
    params = copy.deepcopy(schema.defaults)
    values: dict[str, tuple[Any, str]] = {}
    for key, value in (base.get("params") or {}).items():
        values[key] = (value, CONFIG_YAML)
    for key, value in overrides.items():
        if key not in SELECTION_KEYS:
            values[key] = (value, OVERRIDE)
    for key, (value, origin) in values.items():
        if key not in fields:
            where = "configs/config.yaml params" if origin == CONFIG_YAML else "override"
            problems.append(f"{key}: unknown parameter ({where})" + suggest(key, list(fields) + list(SELECTION_KEYS)))
            continue
        try:
            typed = schema.coerce(key, value)
        except Exception as exc:
            shown = repr(value) if len(repr(value)) <= 80 else f"{repr(value)[:40]}…"
            problems.append(f"{key}: {shown} is not a valid {_type_name(fields[key].type)} ({first_line(exc)[:200]})")
            continue
        if problem := range_problem(key, typed):
            problems.append(problem)
            continue
        params[key], sources[key] = typed, origin
    for key, info in fields.items():
        if info.choices and params[key] not in info.choices:
            problems.append(f"{key}: {params[key]!r} is not one of {', '.join(map(repr, info.choices))}")
    problems.extend(_layer_checks(layer_classes, params))
    try:  # a definition's metric_modes declaration is checked with its config, before anything runs
        declared_modes(layer_classes.values(), params)
    except ValueError as exc:
        problems.append(str(exc))
    if problems:
        raise ConfigError(problems)
    return MergedConfig(selection, params, defaults, sources, fields, layer_classes)


class _TypedSchema:
    """The merged fields as an OmegaConf structured config, built once per combination of layers.

    Building it costs ~5 ms (``make_dataclass`` + ``OmegaConf.structured``), which dominated a
    validated sweep submit; values are instead typed one at a time against a copy of their field's
    node, so the cached schema itself is never mutated (safe for the cockpit's threads).
    """

    def __init__(self, fields: dict[str, FieldInfo], defaults: dict[str, Any]):
        from omegaconf import OmegaConf

        spec = []
        for name, info in fields.items():
            default = defaults[name]
            if isinstance(default, (list, dict)):
                spec.append((name, info.type, dataclasses.field(default_factory=lambda d=default: type(d)(d))))
            else:
                spec.append((name, info.type, dataclasses.field(default=default)))
        try:
            self._config = OmegaConf.structured(dataclasses.make_dataclass("AllParams", spec))
        except Exception as exc:
            raise ConfigError(f"config fields: a type OmegaConf cannot check ({first_line(exc)})") from None
        self.defaults: dict[str, Any] = OmegaConf.to_container(self._config, resolve=True)

    def coerce(self, key: str, value: Any) -> Any:
        """``value`` converted to ``key``'s declared type; raises OmegaConf's validation error."""
        from omegaconf import OmegaConf

        node = copy.deepcopy(self._config._get_node(key))
        try:
            node._set_value(value)
        except Exception:
            # The node-level message has unfilled $VALUE placeholders: redo it on a whole copy
            # (rare: only for invalid input) to raise OmegaConf's readable message.
            copy.deepcopy(self._config)[key] = value
            raise
        return OmegaConf.to_container(node, resolve=True) if OmegaConf.is_config(node) else node._value()


_SCHEMAS: dict[tuple[type, ...], _TypedSchema] = {}
_SCHEMAS_LOCK = threading.Lock()


def _typed_schema(key: tuple[type, ...], fields: dict[str, FieldInfo], defaults: dict[str, Any]) -> _TypedSchema:
    with _SCHEMAS_LOCK:
        schema = _SCHEMAS.get(key)
        if schema is None:
            schema = _SCHEMAS[key] = _TypedSchema(fields, defaults)
        return schema


def _layer_checks(layer_classes: dict[str, type[ConfigBase]], params: dict[str, Any]) -> list[str]:
    """Instantiate each layer's dataclass with the merged values so its ``__post_init__`` checks run,
    then its cross-layer ``check_merged``."""
    problems = []
    for layer, cls in layer_classes.items():
        names = [f.name for f in dataclasses.fields(cls)]
        try:
            cls(**{n: params[n] for n in names}).check_merged(params)
        except (ValueError, TypeError) as exc:
            problems.append(f"{str(exc)} ({layer} config {cls.__name__})")
    return problems


def _type_name(tp: Any) -> str:
    return getattr(tp, "__name__", None) or str(tp).replace("typing.", "")

