"""Which way is better for a metric: the one rule used by the cockpit, ``best.ckpt``, compare and studies.

A definition may declare modes explicitly (``metric_modes: ClassVar[dict[str, str]] =
{"val_ppl": "min"}`` on any layer's config class, or ``best_mode`` for its ``best_metric``);
otherwise the name decides: losses, errors, perplexities and error rates are lower-is-better,
accuracies and F-scores higher-is-better. A name that matches neither is treated as
lower-is-better — the safer guess, since most unnamed training signals are losses — and callers
that show a "best" for it say that the direction was guessed (:func:`describe`).

Training records the declared modes of an experiment in its ``experiment.json``
(``"metric_modes"``), so readers that never import the definitions (cockpit, compare, studies)
pass ``metadata.get("metric_modes")`` as ``declared``.
"""

from __future__ import annotations

import re
from typing import Any, Iterable, Literal, Mapping

Mode = Literal["min", "max"]

_MIN = re.compile(r"loss|ppl|perplex|err|cer|wer|mse|mae|rmse|nll|distance|time|latency", re.I)
_MAX = re.compile(r"acc|f1|precision|recall|auc|bleu|rouge|iou|dice|map\b|score|reward|r2", re.I)


def metric_mode(name: str, declared: Mapping[str, str] | None = None) -> Mode:
    """``"min"`` or ``"max"`` for metric ``name``: a declared mode wins, then the naming rule."""
    if declared and name in declared:
        mode = str(declared[name]).lower()
        if mode not in ("min", "max"):
            raise ValueError(f"metric_modes[{name!r}]: {mode!r} is not 'min' or 'max'")
        return mode  # type: ignore[return-value]
    if _MIN.search(name):
        return "min"
    if _MAX.search(name):
        return "max"
    return "min"


def declared_modes(config_classes: Iterable[type], params: Mapping[str, Any]) -> dict[str, Mode]:
    """The modes a selection declares: each config class's ``metric_modes`` (in merge order, a
    later layer wins), then ``best_mode`` for ``best_metric`` unless it is ``"auto"``.

    Raises ``ValueError`` naming the class and metric for a mode that is not "min" or "max".
    """
    out: dict[str, Mode] = {}
    for cls in config_classes:
        modes = getattr(cls, "metric_modes", None) or {}
        if not isinstance(modes, Mapping):
            raise ValueError(f"{cls.__name__}.metric_modes: expected a dict such as {{'val_ppl': 'min'}}, "
                             f"got {type(modes).__name__}")
        for name, mode in modes.items():
            try:
                out[str(name)] = metric_mode(str(name), {str(name): mode})
            except ValueError:
                raise ValueError(f"{cls.__name__}.metric_modes[{name!r}]: {mode!r} is not 'min' or 'max'") from None
    best, mode = str(params.get("best_metric") or ""), str(params.get("best_mode") or "auto").lower()
    if best and mode != "auto":
        out[best] = metric_mode(best, {best: mode})
    return out


def describe(name: str, value: float, declared: Mapping[str, str] | None = None) -> str:
    """``"val_ppl 1.847"``, or ``"val_foo 0.5 (min?)"`` when the direction is a guess."""
    text = f"{name} {value:.4g}"
    return text if is_known(name, declared) else f"{text} ({metric_mode(name, declared)}?)"


def is_known(name: str, declared: Mapping[str, str] | None = None) -> bool:
    """Whether the direction of ``name`` is declared or follows from its name (not a guess)."""
    return bool((declared and name in declared) or _MIN.search(name) or _MAX.search(name))


def better(a: float, b: float, mode: Mode) -> bool:
    """True when ``a`` is strictly better than ``b`` under ``mode``."""
    return a < b if mode == "min" else a > b


def best_of(values: Iterable[float], mode: Mode) -> float | None:
    """The best value under ``mode`` (None for no values)."""
    vals = [v for v in values if v == v]  # drop NaN
    if not vals:
        return None
    return min(vals) if mode == "min" else max(vals)
