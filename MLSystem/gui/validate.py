"""Checks on identifiers and file names that come from a browser or an API client.

Nothing outside ``output/`` and ``queue/`` is ever opened: IDs are matched against strict
patterns before they become paths, and relative file paths are resolved and confined.
"""

from __future__ import annotations

import re
from pathlib import Path

from MLSystem.errors import BadInputError

_JOB = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")  # job-1a2b3c4d, a prefix, or a quarantined name
_EXPERIMENT = re.compile(r"[0-9a-f]{1,64}")
_CHECKPOINT = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,127}")
_REL_PART = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}")


class InvalidInput(BadInputError):
    """A malformed ID or file name (HTTP 400)."""


def job_ref(ref: str) -> str:
    if not _JOB.fullmatch(ref or "") or ".." in ref:
        raise InvalidInput(f"job id {ref!r}: expected e.g. job-1a2b3c4d (letters, digits, '-', '_', '.')")
    return ref


def experiment_ref(ref: str) -> str:
    if not _EXPERIMENT.fullmatch(ref or ""):
        raise InvalidInput(f"experiment id {ref!r}: expected hexadecimal characters")
    return ref


def checkpoint_name(name: str) -> str:
    if not _CHECKPOINT.fullmatch(name or "") or ".." in name:
        raise InvalidInput(f"checkpoint {name!r}: expected a file name such as epoch-0003 or last")
    return name


def confined(base: Path, relative: str) -> Path:
    """``base/relative`` when every part is a plain name and the result stays inside ``base``."""
    parts = relative.split("/")
    if not relative or any(not _REL_PART.fullmatch(p) or ".." in p for p in parts):
        raise InvalidInput(f"file {relative!r}: expected a relative path of plain names")
    path = (base / relative).resolve()
    if not path.is_relative_to(base.resolve()):
        raise InvalidInput(f"file {relative!r}: outside the experiment folder")
    return path
