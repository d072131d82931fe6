"""Reading one job file without trusting it (the queue store decides what to do with the result).

A job file may be a link (followed, it would copy another file's content into the queue's records),
a FIFO (opening it would hang every listing), another user's file this process may not read, or
garbage. Only a regular file that parses as a job is a :class:`~MLSystem.jobs.Job`.
"""

from __future__ import annotations

import json
import os
import stat
from dataclasses import dataclass

from MLSystem.jobs import Job, job_from_dict

_OPEN_FLAGS = os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_NONBLOCK", 0)


@dataclass(frozen=True)
class Invalid:
    """Not a job: quarantine it with this problem (and the text, when it was safe to read)."""

    problem: str
    text: str = ""


@dataclass(frozen=True)
class Unreadable:
    """Exists but this process may not read it (permissions): someone else's job, leave it alone."""

    reason: str


def read_job_file(path: str) -> Job | Invalid | Unreadable | None:
    """The job in ``path``; None when it vanished (moved by another process meanwhile)."""
    try:
        info = os.lstat(path)
    except FileNotFoundError:
        return None
    except OSError as exc:
        return Unreadable(exc.strerror or str(exc))
    if stat.S_ISLNK(info.st_mode) or not stat.S_ISREG(info.st_mode):
        what = "a symbolic link" if stat.S_ISLNK(info.st_mode) else "not a regular file"
        return Invalid(f"{what}; job files must be regular files (not read)")
    try:
        with open(os.open(path, _OPEN_FLAGS), encoding="utf-8") as fh:
            text = fh.read()
    except FileNotFoundError:
        return None
    except UnicodeDecodeError as exc:
        return Invalid(f"not UTF-8 text: {exc}")
    except OSError as exc:  # permission denied, or replaced by a link since lstat (ELOOP)
        return Unreadable(exc.strerror or str(exc))
    try:
        data = json.loads(text)
        if isinstance(data, dict) and "position" not in data:
            data["position"] = info.st_mtime  # a hand-written job queues by its file time
        return job_from_dict(data, expect_id=os.path.basename(path)[:-5])
    except ValueError as exc:  # JSONDecodeError is a ValueError
        return Invalid(str(exc), text)
