"""What the deriver remembers between polls and across leaders (``state.json``).

It changes only through :meth:`MLSystem.events.derive.Deriver.apply` of an event, so a new
leader rebuilds it from the last snapshot plus the journal lines written after it.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields
from typing import Any


@dataclass
class Follow:
    """The training run of one running job, as far as events were emitted."""

    experiment_id: str
    since: float  # the job's start: rows before it belong to earlier runs
    until: float | None = None  # the job's end (set when it is filed)
    run_time: float = 0.0  # time of the last run-start row emitted
    step: int = -1  # last progress step emitted from metrics.jsonl
    # Last progress step emitted from progress.json: its own cursor, so that a progress.json
    # written right after a metrics row, and read first, does not hide that row's step.
    progress_step: int = -1
    val_epoch: int = 0  # last validation_result epoch emitted (1-based)
    samples_epoch: int = 0  # last samples epoch emitted (1-based)
    max_epochs: int | None = None

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> "Follow":
        known = {f.name for f in fields(cls)}  # a state written by another version of MLSystem
        return cls(**{k: v for k, v in data.items() if k in known})


@dataclass
class DeriveState:
    seq: int = 0
    jobs: dict[str, list] = field(default_factory=dict)  # id -> [status, run]
    follows: dict[str, Follow] = field(default_factory=dict)  # job id -> its run
    runner_pid: int | None = None

    def to_json(self) -> dict[str, Any]:
        return {"seq": self.seq, "jobs": self.jobs, "runner_pid": self.runner_pid,
                "follows": {k: asdict(v) for k, v in self.follows.items()}}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> "DeriveState":
        return cls(seq=int(data.get("seq", 0)), jobs=dict(data.get("jobs") or {}),
                   follows={k: Follow.from_json(v) for k, v in (data.get("follows") or {}).items()},
                   runner_pid=data.get("runner_pid"))
