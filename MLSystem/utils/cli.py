"""What every command-line entry point does when the world around it fails, in one line each.

* The reader of our output went away (``submit --list --json | head -1``): stop quietly.
* Ctrl-C: ``interrupted`` (exit 130), no traceback.
* The disk is full: ``disk full: cannot write FILE (N free on MOUNT); free some space and run again``.
"""

from __future__ import annotations

import errno
import os
import shutil
import sys
from typing import Callable

DISK_FULL = (errno.ENOSPC, getattr(errno, "EDQUOT", errno.ENOSPC))
EXIT_INTERRUPTED = 130
EXIT_BROKEN_PIPE = 141  # what a shell reports for a process ended by SIGPIPE


def _mount_point(path: str) -> str:
    path = os.path.abspath(path)
    while not os.path.ismount(path) and os.path.dirname(path) != path:
        path = os.path.dirname(path)
    return path


def disk_full_message(exc: BaseException) -> str | None:
    """The one-line message for an error caused by a full disk or quota (also wrapped in another error)."""
    seen = set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        if isinstance(exc, OSError) and exc.errno in DISK_FULL:
            where = exc.filename or ""
            free = ""
            if where:
                mount = _mount_point(os.path.dirname(os.path.abspath(str(where))))
                try:
                    free = f" ({shutil.disk_usage(mount).free / 1e6:.1f} MB free on {mount})"
                except OSError:
                    pass
            what = "quota exceeded" if exc.errno != errno.ENOSPC else "disk full"
            return f"{what}: cannot write {where or 'a file'}{free}; free some space and run again"
        exc = exc.__cause__ or exc.__context__
    return None


def quiet_broken_pipe() -> int:
    """After a BrokenPipeError on stdout: point stdout at /dev/null so the exit-time flush is silent."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError):
        pass
    return EXIT_BROKEN_PIPE


def run_main(main: Callable[[], int]) -> int:
    """Run an entry point's ``main`` and turn a closed pipe, Ctrl-C or a full disk into one line."""
    try:
        code = main()
        sys.stdout.flush()  # a closed pipe shows here, not in the interpreter's exit-time flush
        return code
    except BrokenPipeError:
        return quiet_broken_pipe()
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except OSError as exc:
        message = disk_full_message(exc)
        if message is None:
            raise
        print(message, file=sys.stderr)
        return 1


class DeferredInterrupt:
    """``with DeferredInterrupt() as d:`` — Ctrl-C / SIGTERM inside the block are held until it ends
    (``d.signal`` names the one that came), so a step that must not be cut in half (queueing a
    sweep and printing its ids) completes. Outside the main thread it does nothing."""

    def __init__(self) -> None:
        self.signal: str | None = None
        self._previous: dict = {}

    def __enter__(self) -> "DeferredInterrupt":
        import signal
        import threading

        if threading.current_thread() is threading.main_thread():
            def hold(signum, frame):
                self.signal = self.signal or signal.Signals(signum).name

            for sig in (signal.SIGINT, signal.SIGTERM):
                self._previous[sig] = signal.signal(sig, hold)
        return self

    def __exit__(self, *exc_info) -> None:
        import signal

        for sig, handler in self._previous.items():
            signal.signal(sig, handler)
