"""Crash-safe file writes: a temp file in the same folder, fsync, then ``os.replace``.

A reader sees either the old or the new content, never a half-written file, even if the writer
is killed mid-write. The file gets the permissions a plain ``open(path, "w")`` would give it
(``0666`` less the umask, plus the folder's default ACL), not ``mkstemp``'s ``0600``: teammates
sharing a project folder through a group must be able to read results and job files.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
from pathlib import Path
from typing import Any, Callable, IO

from MLSystem.errors import CorruptFileError


def atomic_write(path: str | os.PathLike, write: Callable[[IO[bytes]], None]) -> None:
    """Call ``write(fileobj)`` on a temp file and move it over ``path`` atomically."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    # The name is chosen before the file exists, so cleanup knows it even if an interrupt
    # (Ctrl-C) arrives between creating the file and entering the try block.
    tmp = path.parent / f".{path.name}.{secrets.token_hex(6)}.tmp"
    opening = True
    try:
        # O_EXCL: never reuse someone else's file; mode 0o666 is reduced by the umask like open().
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0), 0o666)
        opening = False
        with os.fdopen(fd, "wb") as fh:
            write(fh)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException as exc:
        if not (opening and isinstance(exc, FileExistsError)):  # that file is not ours
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)
        if isinstance(exc, OSError) and exc.filename is None:
            exc.filename = str(path)  # "disk full" messages name the file being written
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
