"""Experiment identity: canonical form of the identity params and the experiment ID.

The identity is the selection (dataset, model, adapter, warm-start parent) plus every identity
field whose merged value differs from its default. Values are already typed by the merge, so
``1e-3``/``0.001`` and ``1``/``1.0`` on a float field are the same; the canonical JSON has sorted
keys and no whitespace, and SHA-256 does not depend on ``PYTHONHASHSEED`` or the machine.
Because defaults are left out, adding a field with a default keeps existing IDs.
"""

from __future__ import annotations

import hashlib
import json
import math
from typing import TYPE_CHECKING, Any, Mapping

from MLSystem.records import SELECTION_KEYS

if TYPE_CHECKING:  # hints only: the merge sits above hashing
    from MLSystem.config_merge import MergedConfig

ID_LENGTH = 12


def identity(merged: "MergedConfig") -> dict[str, Any]:
    """The dict that is hashed (also stored in ``experiment.json`` to explain IDs)."""
    params = {
        k: merged.params[k]
        for k in merged.identity_keys
        if not same_value(merged.params[k], merged.defaults[k])
    }
    return {**merged.selection.as_dict(), "params": params}


def canonical(obj: Any) -> str:
    """Stable text of a JSON-like value (sorted keys, no spaces, no NaN)."""
    return json.dumps(_normalize(obj), sort_keys=True, separators=(",", ":"), allow_nan=False, ensure_ascii=True)


def experiment_id(ident: Mapping[str, Any]) -> str:
    return hashlib.sha256(canonical(ident).encode("ascii")).hexdigest()[:ID_LENGTH]


def diff_params(old: Mapping[str, Any], new: Mapping[str, Any]) -> list[str]:
    """Human-readable differences between two identities: ``['lr: 0.001 -> 0.01']``."""
    out = []
    for key in SELECTION_KEYS:
        if old.get(key) != new.get(key):
            out.append(f"{key}: {old.get(key)} -> {new.get(key)}")
    a, b = old.get("params", {}), new.get("params", {})
    for key in sorted(set(a) | set(b)):
        if key not in b:
            out.append(f"{key}: {a[key]!r} -> default")
        elif key not in a:
            out.append(f"{key}: default -> {b[key]!r}")
        elif not same_value(a[key], b[key]):
            out.append(f"{key}: {a[key]!r} -> {b[key]!r}")
    return out


def same_value(a: Any, b: Any) -> bool:
    """Equal as identity values (``2`` and ``2.0`` of a float field, key order of dicts...)."""
    if type(a) is type(b) and isinstance(a, (str, int, bool)):  # the common case, without JSON
        return a == b
    return canonical(a) == canonical(b)


def _normalize(obj: Any) -> Any:
    if isinstance(obj, Mapping):
        return {str(k): _normalize(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_normalize(v) for v in obj]
    if isinstance(obj, float):
        if not math.isfinite(obj):
            raise ValueError(f"non-finite value {obj!r} cannot be part of an experiment identity")
        # 2.0 and 2 must hash alike only when the field is typed float; typing happened in the
        # merge, so here a float stays a float (repr is the shortest round-trip form).
        return obj
    if hasattr(obj, "value") and hasattr(obj, "name"):  # Enum
        return obj.name
    return obj
