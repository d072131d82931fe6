"""Crash-safe file writes: a temp file in the same folder, fsync, then ``os.replace``.

A reader sees either the old or the new content, never a half-written file, even if the writer
is killed mid-write.
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
from pathlib import Path
from typing import Any, Callable, IO

from MLSystem.errors import CorruptFileError


def atomic_write(path: str | os.PathLike, write: Callable[[IO[bytes]], None]) -> None:
    """Call ``write(fileobj)`` on a temp file and move it over ``path`` atomically."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            write(fh)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def atomic_write_text(path: str | os.PathLike, text: str) -> None:
    atomic_write(path, lambda fh: fh.write(text.encode("utf-8")))


def atomic_write_json(path: str | os.PathLike, data: Any) -> None:
    atomic_write_text(path, json.dumps(data, indent=2, sort_keys=True, default=str) + "\n")


def read_json(path: str | os.PathLike, default: Any = None, *, advice: str = "fix or remove it") -> Any:
    """Parsed JSON, or ``default`` when the file does not exist.

    Unparsable content (truncated, binary, not UTF-8) raises :class:`CorruptFileError` naming the
    file and ``advice`` (it is also a ``ValueError``).
    """
    try:
        with open(path, encoding="utf-8") as fh:
            return json.load(fh)
    except FileNotFoundError:
        return default
    except json.JSONDecodeError as exc:
        raise CorruptFileError(path, f"not valid JSON (line {exc.lineno} column {exc.colno}: {exc.msg})",
                               advice) from None
    except UnicodeDecodeError as exc:
        raise CorruptFileError(path, f"not UTF-8 text (byte {exc.start}: {exc.reason})", advice) from None
