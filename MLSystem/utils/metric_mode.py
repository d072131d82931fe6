"""Which way is better for a metric: the one rule used by the cockpit, ``best.ckpt``, compare and studies.

A definition may declare modes explicitly (``metric_modes = {"val_ppl": "min"}`` on its config, or
``best_mode`` for its ``best_metric``); otherwise the name decides: losses, errors, perplexities
and error rates are lower-is-better, accuracies and F-scores higher-is-better. A name that matches
neither is treated as lower-is-better — the safer guess, since most unnamed training signals are
losses — and callers that show a "best" for it say that the direction was guessed.
"""

from __future__ import annotations

import re
from typing import Iterable, Literal, Mapping

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
