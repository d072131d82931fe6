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
    """A name, ID or file given by the user that is not valid (HTTP 400)."""

    exit_code = ExitCode.BAD_INPUT


class NotFoundError(BadInputError):
    """A job, experiment, checkpoint or file that does not exist (HTTP 404)."""


class ConflictError(MLSystemError):
    """The request is valid but the thing is in the wrong state for it (HTTP 409): a running
    job cannot be deleted, a finished one cannot be requeued, an experiment is busy..."""

    exit_code = ExitCode.BAD_INPUT


class UnknownExperimentError(BadInputError):
    """An experiment ID or prefix that is malformed or matches more than one experiment."""


class ExperimentNotFoundError(UnknownExperimentError, NotFoundError):
    """An experiment ID or prefix that matches no experiment."""


class ExperimentBusyError(ConflictError):
    """Another process holds the experiment's lease."""

    exit_code = ExitCode.BUSY


class CorruptFileError(MLSystemError, ValueError):
    """A file MLSystem wrote that cannot be parsed any more (truncated, binary garbage, hand-edited).
    The message names the file, the problem and what to do. Also a ``ValueError``, so readers
    that skip unparsable files keep doing so."""

    def __init__(self, path: object, problem: str, advice: str = "fix or remove it"):
        self.path = str(path)
        self.problem = problem
        super().__init__(f"{path}: {problem}; {advice}")


def http_status(exc: BaseException) -> int:
    """The HTTP status of an error, by class (the API never looks at message text)."""
    if isinstance(exc, NotFoundError):
        return 404
    if isinstance(exc, (BadInputError, ConfigError)):
        return 400
    if isinstance(exc, ConflictError):
        return 409
    if isinstance(exc, CorruptFileError):
        return 500
    return 400


def suggest(word: str, options: Iterable[str], n: int = 3) -> str:
    """' (did you mean a, b?)' for the closest options, or a list of valid ones if few."""
    options = sorted(set(options))
    close = difflib.get_close_matches(word, options, n=n, cutoff=0.5)
    if close:
        return f" (did you mean {', '.join(close)}?)"
    if len(options) <= 12:
        return f" (valid: {', '.join(options) or 'none'})"
    return ""


def first_line(exc: BaseException) -> str:
    """The first line of an exception's message (its class name when it has none)."""
    return (str(exc).strip().splitlines() or [type(exc).__name__])[0]
