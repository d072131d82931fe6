"""``ConfigBase``: the dataclass base of every config in ``definitions/`` and of the common config.

A field's metadata carries its help text, whether it belongs to the experiment identity, and
optional choices. Use :func:`param` to declare fields::

    @dataclass
    class MyModelConfig(ConfigBase):
        hidden: int = param(128, "Width of the hidden layer")
        num_workers: int = param(0, "DataLoader workers", identity=False)
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, Sequence

HELP = "help"
_FIELD_CACHE: dict[type, list["FieldInfo"]] = {}  # classes are immutable once imported
IDENTITY = "identity"
CHOICES = "choices"


def param(
    default: Any,
    help: str = "",
    *,
    identity: bool = True,
    choices: Sequence[Any] | None = None,
) -> Any:
    """Declare a config field with a default, help text, identity flag and optional choices.

    ``identity=False`` marks runtime-only knobs (workers, device, log interval...) that do not
    change what is learned, so changing them keeps the same experiment ID.
    """
    meta = {HELP: help, IDENTITY: identity, CHOICES: tuple(choices) if choices else None}
    if isinstance(default, (list, dict, set)):
        return dataclasses.field(default_factory=lambda: type(default)(default), metadata=meta)
    return dataclasses.field(default=default, metadata=meta)


@dataclass(frozen=True)
class FieldInfo:
    """What the GUI, the inspector and the merger need to know about one field."""

    name: str
    type: Any
    default: Any
    help: str
    identity: bool
    choices: tuple | None


@dataclass
class ConfigBase:
    """Base of all config dataclasses.

    Checks that involve values go in ``__post_init__`` and raise ``ValueError("key: why")``:
    after the flat merge, each layer's config is instantiated with the merged values of its own
    fields, so the check sees what will really be used. A check that needs another layer's value
    (an adapter's feature settings against the dataset's sample rate) goes in
    :meth:`check_merged`, which gets every merged parameter.
    """

    def check_merged(self, params: dict[str, Any]) -> None:
        """Called after the merge with all merged parameters; raise ``ValueError("key: why")``."""

    @classmethod
    def field_infos(cls) -> list[FieldInfo]:
        """The fields this config declares, with their defaults and metadata (cached per class)."""
        cached = _FIELD_CACHE.get(cls)
        if cached is None:
            cached = _FIELD_CACHE[cls] = cls._collect_field_infos()
        return list(cached)

    @classmethod
    def _collect_field_infos(cls) -> list[FieldInfo]:
        infos = []
        for f in dataclasses.fields(cls):
            if f.default is not dataclasses.MISSING:
                default = f.default
            elif f.default_factory is not dataclasses.MISSING:
                default = f.default_factory()
            else:
                default = None
            infos.append(
                FieldInfo(
                    name=f.name,
                    type=f.type if not isinstance(f.type, str) else _resolve_type(cls, f.name),
                    default=default,
                    help=f.metadata.get(HELP, ""),
                    identity=f.metadata.get(IDENTITY, True),
                    choices=f.metadata.get(CHOICES),
                )
            )
        return infos


def _resolve_type(cls: type, name: str) -> Any:
    """Resolve string annotations (``from __future__ import annotations``) to real types."""
    import typing

    hints = typing.get_type_hints(cls)
    return hints[name]
