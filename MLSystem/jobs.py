"""The job schema: one queued command (:class:`Job`), its vocabularies and where it lives.

A job file is ``queue/{status}/{job-id}.json`` (:class:`QueuePaths`); the folder it is in *is*
its status. Reading and writing those files is :mod:`MLSystem.queue_store`'s job alone.
"""

from __future__ import annotations

import json
import math
import re
import uuid
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

from MLSystem.errors import BadInputError, ConflictError, NotFoundError
from MLSystem.records import Action, StrEnum

__all__ = ["VERSION", "DEFAULT_MAX_ATTEMPTS", "Status", "Kind", "Action", "Job", "QueuePaths", "QueueError",
           "JobNotFoundError", "QueueInputError", "JOB_FIELDS", "job_from_dict", "new_job_id", "valid_job_id"]

VERSION = 1
DEFAULT_MAX_ATTEMPTS = 5
_ID = re.compile(r"job-[0-9a-f]{8}$")


class Status(StrEnum):
    """Where a job is (its folder)."""

    PENDING = "pending"
    RUNNING = "running"
    FINISHED = "finished"
    FAILED = "failed"
    STOPPED = "stopped"


class Kind(StrEnum):
    TRAIN = "train"
    PLOT = "plot"
    INVALID = "invalid"  # a file that could not be read as a job (kept in failed/ for inspection)


class QueueError(ConflictError):
    """A queue operation that cannot be done in the job's current state (HTTP 409)."""


class JobNotFoundError(QueueError, NotFoundError):
    """No job with that id (HTTP 404)."""


class QueueInputError(QueueError, BadInputError):
    """A malformed queue request: empty or ambiguous id, a field that cannot be edited (HTTP 400)."""


def new_job_id() -> str:
    return "job-" + uuid.uuid4().hex[:8]


def valid_job_id(text: str) -> bool:
    """True for ids this MLSystem creates (``job-`` + 8 hex digits)."""
    return bool(_ID.match(text))


@dataclass
class Job:
    """One queued command (schema version 1). Only ``id``, ``kind`` and ``args`` are required in a
    file; everything else has a default, so a hand-written job is easy to drop into pending/."""

    id: str
    kind: str  # Kind.TRAIN: args are execute_train overrides; Kind.PLOT: args == [experiment_id]
    args: list[str]
    version: int = VERSION
    status: str = Status.PENDING.value
    experiment_id: str | None = None
    action: str | None = None  # an Action: new / resume / extend / complete (decided at submit time), plot
    dataset: str | None = None
    model: str | None = None
    adapter: str | None = None
    max_epochs: int | None = None
    priority: int = 0  # higher runs first
    position: float = 0.0  # order within a priority (smaller first); creation time by default
    created: str = ""
    held: bool = False
    attempts: int = 0  # runs started
    max_attempts: int = DEFAULT_MAX_ATTEMPTS
    not_before: float | None = None  # epoch seconds: the experiment was busy, retry after this
    note: str = ""  # last thing that happened to the job, one line
    stop_requested: str | None = None
    runner: dict | None = None  # {"pid", "host"} of the runner that ran it last
    pid: int | None = None  # the job's own process
    host: str | None = None
    started: str | None = None
    ended: str | None = None
    exit_code: int | None = None
    signal: str | None = None
    error: str | None = None
    epochs_before: int | None = None  # trained epochs of the experiment when the run started
    epochs_done: int | None = None  # ... and when it ended
    log: str | None = None  # relative to the project root
    placement: dict | None = None  # where it runs: {"slot", "gpus", "threads"} (set by the runner)
    engine: dict | None = None  # cluster executors: {"executor", "tag", "job_id", "state", "folder"} of this attempt
    history: list = field(default_factory=list)  # one dict per attempt
    extra: dict = field(default_factory=dict)  # unknown keys, kept on rewrite

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d.update(d.pop("extra"))
        return d

    @property
    def runnable(self) -> bool:
        return self.status == Status.PENDING.value and not self.held

    def order_key(self) -> tuple:
        """Run order: priority (high first), then queue position, then age."""
        return (-self.priority, self.position, self.created, self.id)


# Accepted JSON types per field (bool is not an int here: ``priority: true`` is an error).
_TYPES: dict[str, tuple[type, ...]] = {
    "id": (str,), "kind": (str,), "args": (list,), "version": (int,), "status": (str,),
    "experiment_id": (str, type(None)), "action": (str, type(None)), "dataset": (str, type(None)),
    "model": (str, type(None)), "adapter": (str, type(None)), "max_epochs": (int, type(None)),
    "priority": (int,), "position": (int, float), "created": (str,), "held": (bool,), "attempts": (int,),
    "max_attempts": (int,), "not_before": (int, float, type(None)), "note": (str,),
    "stop_requested": (str, type(None)), "runner": (dict, type(None)), "pid": (int, type(None)),
    "host": (str, type(None)), "started": (str, type(None)), "ended": (str, type(None)),
    "exit_code": (int, type(None)), "signal": (str, type(None)), "error": (str, type(None)),
    "epochs_before": (int, type(None)), "epochs_done": (int, type(None)), "log": (str, type(None)),
    "placement": (dict, type(None)), "engine": (dict, type(None)), "history": (list,),
}
_REQUIRED = ("id", "kind", "args")
JOB_FIELDS = {f.name for f in fields(Job)} - {"extra"}
assert set(_TYPES) == JOB_FIELDS, "every Job field needs an entry in _TYPES"


_EXACT = {k: frozenset(v) for k, v in _TYPES.items()}  # exact types: True is not an int here
_KINDS = (Kind.TRAIN.value, Kind.PLOT.value, Kind.INVALID.value)


def job_from_dict(data: Any, *, expect_id: str | None = None) -> Job:
    """Validate a parsed job file; ``ValueError`` names the first problem."""
    if not isinstance(data, dict):
        raise ValueError(f"expected a JSON object, got {type(data).__name__}")
    version = data.get("version", VERSION)
    if version != VERSION:
        raise ValueError(f"version {version!r} is not supported (this MLSystem reads version {VERSION})")
    for key in _REQUIRED:
        if key not in data:
            raise ValueError(f"missing field {key!r} (required: {', '.join(_REQUIRED)})")
    known: dict[str, Any] = {}
    extra: dict[str, Any] = {}
    for key, value in data.items():  # one pass: this runs for every file of every listing
        allowed = _EXACT.get(key)
        if allowed is None:
            extra[key] = value
            continue
        if type(value) not in allowed:
            names = " or ".join("null" if t is type(None) else t.__name__ for t in _TYPES[key])
            raise ValueError(f"field {key!r}: expected {names}, got {json.dumps(value)[:60]}")
        known[key] = value
    if known["kind"] not in _KINDS:
        raise ValueError(f"field 'kind': {known['kind']!r} is not one of train, plot")
    if not all(type(a) is str for a in known["args"]):
        raise ValueError("field 'args': expected a list of strings such as ['dataset=digits', 'lr=0.1']")
    if known["kind"] == Kind.PLOT.value and len(known["args"]) != 1:
        raise ValueError("field 'args': a plot job takes exactly one experiment id")
    # An option such as --help would make the entry point print its usage and exit 0: "finished".
    if option := next((a for a in known["args"] if a.startswith("-")), None):
        raise ValueError(f"field 'args': {option!r} is not a key=value override or experiment id "
                         "(options are not allowed in a job)")
    for key in ("not_before", "position"):
        if isinstance(known.get(key), float) and not math.isfinite(known[key]):
            raise ValueError(f"field {key!r}: expected a finite number of seconds, got {known[key]}")
    if expect_id is not None and known["id"] != expect_id:
        raise ValueError(f"field 'id': {known['id']!r} does not match the file name {expect_id}.json")
    return Job(**known, extra=extra)


@dataclass(frozen=True)
class QueuePaths:
    """Where everything of the queue lives::

        queue/
          pending/{job}.json    waiting to run (``held`` jobs stay here, keeping their place)
          running/{job}.json    claimed by the runner
          finished/ failed/ stopped/{job}.json
          logs/{job}.log        stdout+stderr of every attempt; logs/{job}.metrics.jsonl
          control/{job}.stop    stop flag of a running job (``MLSYSTEM_STOP_FILE``)
          .lock                 the one lock around every read-modify-write (queue_store)
          runner.lock           held by the one active runner; runner.json says who it is (runner_record)
          DRAIN                 "finish the current job, then stop"
    """

    root: Path

    def dir(self, status: Status | str) -> Path:
        return self.root / Status(status).value

    def job_file(self, status: Status | str, job_id: str) -> Path:
        return self.dir(status) / f"{job_id}.json"

    @property
    def logs(self) -> Path:
        return self.root / "logs"

    def log(self, job_id: str) -> Path:
        return self.logs / f"{job_id}.log"

    def metrics(self, job_id: str) -> Path:
        return self.logs / f"{job_id}.metrics.jsonl"

    def stop_flag(self, job_id: str) -> Path:
        return self.root / "control" / f"{job_id}.stop"

    @property
    def lock(self) -> Path:
        return self.root / ".lock"

    @property
    def runner_lock(self) -> Path:
        return self.root / "runner.lock"

    @property
    def runner_info(self) -> Path:
        return self.root / "runner.json"

    @property
    def drain_flag(self) -> Path:
        return self.root / "DRAIN"
