"""The runner's own record: ``queue/runner.lock`` (held by the one active runner) and
``queue/runner.json`` (who it is). This module is their only reader and writer."""

from __future__ import annotations

import contextlib
import os
import socket
from typing import Any

from MLSystem.jobs import QueuePaths
from MLSystem.utils.atomic import atomic_write_json, read_json
from MLSystem.utils.clock import now_iso
from MLSystem.utils.procs import pid_alive


def runner_info() -> dict[str, Any]:
    """This process as a runner: ``{"pid", "host", "since"}``."""
    return {"pid": os.getpid(), "host": socket.gethostname(), "since": now_iso()}


def _read(paths: QueuePaths) -> dict[str, Any]:
    try:
        info = read_json(paths.runner_info)
    except (OSError, ValueError):  # half-visible or garbled: treat as unknown
        return {}
    return info if isinstance(info, dict) else {}


def active_runner(paths: QueuePaths) -> dict[str, Any] | None:
    """``runner.json`` of a live runner (None when none runs). A record left by a runner on this
    host whose pid is gone is ignored; one from another host is trusted."""
    info = _read(paths) or None
    if info and (info.get("host") != socket.gethostname() or pid_alive(info.get("pid"))):
        return info
    return None


class RunnerLock:
    """The one-runner-per-queue lock. The kernel releases it if the runner is killed."""

    def __init__(self, paths: QueuePaths, info: dict[str, Any] | None = None):
        from filelock import FileLock  # the queue store imports this module on paths that never run jobs

        self.paths = paths
        self.info = info or runner_info()
        self._lock = FileLock(str(paths.runner_lock), timeout=0)

    def acquire(self) -> bool:
        """Become the active runner (writes ``runner.json``); False when another runner is."""
        from filelock import Timeout

        try:
            self._lock.acquire()
        except Timeout:
            return False
        atomic_write_json(self.paths.runner_info, self.info)
        return True

    def holder(self) -> dict[str, Any]:
        """What ``runner.json`` says about the runner holding the lock (may be empty)."""
        return _read(self.paths)

    def release(self) -> None:
        with contextlib.suppress(FileNotFoundError):
            self.paths.runner_info.unlink()
        self._lock.release()
