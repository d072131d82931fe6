"""Command-line overrides: ``key=value`` strings parsed with Hydra's override grammar, sweeps
(``a=1,2``) expanded into plain override lists, and typed values rendered back into overrides.

Every problem is a one-line :class:`ConfigError` naming the override: invisible or full-width
characters, syntax Hydra rejects, numbers no training can use (:func:`range_problem`).
"""

from __future__ import annotations

import itertools
import json
import math
import re
import unicodedata
from dataclasses import dataclass
from typing import Any, Iterable

from MLSystem.errors import ConfigError, first_line

_SAFE_UNQUOTED = re.compile(r"[A-Za-z_][A-Za-z0-9_./:+-]*")

# Keys whose value is a comma-separated list (``loggers=tensorboard,csv``), never a sweep.
COMMA_VALUE_KEYS = frozenset({"loggers"})


def parse_overrides(args: Iterable[str], *, allow_sweeps: bool = False) -> dict[str, Any]:
    """Parse ``key=value`` strings with Hydra's override grammar into typed Python values.

    Sweep values (``a=1,2``) are returned as :class:`Sweep` when ``allow_sweeps``.
    """
    from hydra.core.override_parser.overrides_parser import OverridesParser
    from hydra.core.override_parser.types import OverrideType
    from hydra.errors import HydraException

    args = list(args)
    out: dict[str, Any] = {}
    problems = [p for p in map(_character_problem, args) if p]
    if problems:
        raise ConfigError(problems)
    try:
        parsed = OverridesParser.create().parse_overrides(overrides=args)
    except (HydraException, ValueError) as exc:  # ValueError: an integer longer than Python converts
        raise ConfigError(_syntax_problem(args, exc)) from None
    for ov in parsed:
        key = ov.key_or_group
        if ov.type == OverrideType.DEL:
            problems.append(f"{key}: deleting keys (~{key}) is not supported")
            continue
        if ov.package:
            problems.append(f"{key}@{ov.package}: packages are not supported; use plain key=value")
            continue
        if ov.is_sweep_override() and key in COMMA_VALUE_KEYS and ov.is_choice_sweep() and ov.value().simple_form:
            out[key] = ",".join(str(v) for v in ov.sweep_iterator())  # loggers=tensorboard,csv: one value
            continue
        if ov.is_sweep_override():
            if not allow_sweeps:
                problems.append(f"{key}: sweeps ({ov.input_line}) are not allowed here; queue them with MLSystem.submit")
                continue
            out[key] = Sweep(list(ov.sweep_string_iterator()))
        else:
            out[key] = ov.value()
    if problems:
        raise ConfigError(problems)
    return out


def _character_problem(arg: str) -> str | None:
    """A one-line error for characters Hydra's grammar would reject cryptically (or accept wrongly):
    invisible format characters (zero-width space, BOM…) and full-width forms typed with an IME on."""
    def name(c: str) -> str:
        return f"{c!r} ({unicodedata.name(c, 'unnamed')}, U+{ord(c):04X})"

    for i, c in enumerate(arg):
        if unicodedata.category(c) == "Cf":
            return f"override {arg!r}: invisible character {name(c)} at position {i}; retype it without it"
    normal = unicodedata.normalize("NFKC", arg)
    if not arg.isascii() and normal.isascii():  # all of it ASCII once folded: typed in full-width mode
        bad = next(c for c in arg if not c.isascii())
        return f"override {arg!r}: full-width character {name(bad)}; type it in ASCII: {normal}"
    key, sep, _ = arg.partition("=")
    if sep and not key.isascii():
        bad = next(c for c in key if not c.isascii())
        return f"override {arg!r}: key {key!r} contains {name(bad)}; keys are ASCII names such as lr"
    return None


def _syntax_problem(args: list[str], exc: Exception) -> str:
    """Name the override Hydra's parser failed on (it reports only its own token stream)."""
    from hydra.core.override_parser.overrides_parser import OverridesParser

    parser = OverridesParser.create()
    for arg in args:
        try:
            parser.parse_overrides(overrides=[arg])
        except ValueError:  # Python's limit on converting long digit strings
            key = arg.partition("=")[0]
            return f"override {key}=…: a number of {sum(c.isdigit() for c in arg)} digits is too long to be a value"
        except Exception as err:
            what = first_line(err)
            what = "not valid key=value syntax" if "LexerNoViableAlt" in what or not what else what
            return f"override {arg!r}: {what} (expected key=value, e.g. lr=0.01 or name='a b')"
    return f"override: {first_line(exc)} (expected key=value)"


def range_problem(key: str, value: Any) -> str | None:
    """Numbers no training can use: NaN/infinity, integers beyond 64 bits."""
    if isinstance(value, float) and not math.isfinite(value):
        return f"{key}: {value} is not a finite number"
    if isinstance(value, int) and not isinstance(value, bool) and not -(2**63) <= value < 2**63:
        digits = len(str(abs(value)))
        return f"{key}: a {digits}-digit integer is out of range (at most 64-bit: ±9.2e18)"
    if isinstance(value, (list, tuple)):
        return next((p for v in value if (p := range_problem(key, v))), None)
    return None


@dataclass(frozen=True)
class Sweep:
    """The values of one swept key, as override strings (``lr=0.1,0.01`` -> ['0.1', '0.01'])."""

    values: list[str]


def expand_sweeps(args: Iterable[str]) -> list[list[str]]:
    """Expand a Hydra multirun command line into the cross product of plain override lists."""
    parsed = parse_overrides(args, allow_sweeps=True)
    keys, choices = [], []
    for key, value in parsed.items():
        keys.append(key)
        if isinstance(value, Sweep):
            choices.append([f"{key}={v}" for v in value.values])
        else:
            choices.append([to_override(key, value)])
    return [list(combo) for combo in itertools.product(*choices)] if keys else [[]]


def to_override(key: str, value: Any) -> str:
    """Render a typed value back into Hydra override syntax."""
    if value is None:
        return f"{key}=null"
    if isinstance(value, bool):
        return f"{key}={'true' if value else 'false'}"
    if isinstance(value, (list, dict)):
        return f"{key}={json.dumps(value, separators=(',', ':'))}"
    text = str(value)
    if isinstance(value, str) and not _SAFE_UNQUOTED.fullmatch(text):
        text = "'" + text.replace("\\", "\\\\").replace("'", "\\'") + "'"
    return f"{key}={text}"
