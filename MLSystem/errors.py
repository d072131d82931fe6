"""Errors a user can cause, and the exit codes of the entry points.

Every message names the key or file at fault, the bad value and what would be valid, on one
line; tracebacks go to log files, not to the terminal.
"""

from __future__ import annotations

import difflib
from enum import IntEnum
from typing import Iterable


class ExitCode(IntEnum):
    """Exit statuses of ``execute_train`` (the runner files jobs by them)."""

    OK = 0  # trained, or already complete
    FAILED = 1  # the code failed
    BAD_INPUT = 2  # configuration / registry / override error: nothing was run
    STOPPED = 3  # stopped on request; a checkpoint was saved and the run is resumable
    BUSY = 4  # another process holds this experiment's lease


class MLSystemError(Exception):
    """Base of all errors caused by user input; ``str()`` is a complete one-line message."""

    exit_code = ExitCode.FAILED


class ConfigError(MLSystemError):
    """One or more problems in a configuration; all are reported together."""

    exit_code = ExitCode.BAD_INPUT

    def __init__(self, problems: str | Iterable[str]):
        self.problems = [problems] if isinstance(problems, str) else list(problems)
        super().__init__("; ".join(self.problems))


class RegistryError(ConfigError):
    """``configs/registry.json`` or a definition it points to is wrong."""


class BadInputError(MLSystemError):
    """A name, ID or file given by the user that does not exist or is not valid."""

    exit_code = ExitCode.BAD_INPUT


class UnknownExperimentError(BadInputError):
    """An experiment ID or prefix that matches no experiment, or more than one."""


class ExperimentBusyError(MLSystemError):
    exit_code = ExitCode.BUSY


def suggest(word: str, options: Iterable[str], n: int = 3) -> str:
    """' (did you mean a, b?)' for the closest options, or a list of valid ones if few."""
    options = sorted(set(options))
    close = difflib.get_close_matches(word, options, n=n, cutoff=0.5)
    if close:
        return f" (did you mean {', '.join(close)}?)"
    if len(options) <= 12:
        return f" (valid: {', '.join(options) or 'none'})"
    return ""
