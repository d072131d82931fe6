"""Which pending job starts in which slot: a pure function of the pool, what runs and the queue order.

The runner owns a :class:`Pool` (``--slots``, ``--gpus``, ``--slots-per-gpu``). Every job takes one
slot (``MLSYSTEM_SLOT`` = its index); in GPU mode a job also takes one share on each of ``need.gpus``
distinct GPUs (``--slots-per-gpu K`` gives each GPU K shares). Without ``--gpus`` nothing is placed:
jobs see the machine's devices as they are (``--slots 2`` on one GPU shares it).

A scheduling *round* (:class:`Round`) walks the runnable pending jobs in queue order (priority,
position, age) and offers each one; the first that fits gets the lowest free slot and the least
loaded GPUs (ties: lowest index), so jobs spread over GPUs before they share one.

**Policy for big jobs: reservation for the first blocked GPU job (backfill without time limits).**
When a job needs more GPUs than are free, it reserves the GPUs it will run on (the ones with the
most free shares, ties lowest index) and waits. Jobs behind it may still start, but never on a
reserved GPU. The reserved GPUs only lose jobs (as those finish), so the big job starts after the
jobs running there end: it is never starved by a stream of small jobs, while small jobs keep the
other GPUs and CPU slots busy. Classic EASY backfill would also let a small job use a reserved GPU
if it surely ends before the big job could start — that needs trustworthy run-time limits, which
ETAs from past epochs are not, so no job may use a reserved GPU. Only the first blocked job
reserves (when it starts, the next blocked one becomes first), which is enough for no job to wait
forever and keeps the rest of the machine usable.

GPUs busy with processes outside the queue (``busy``) are neither given out nor reserved. A job that
needs more GPUs than the pool has at all can never run here: the round says so (``Impossible``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Iterable


@dataclass(frozen=True)
class Need:
    """What one job takes: always one slot, plus ``gpus`` GPUs in GPU mode."""

    gpus: int = 0


@dataclass(frozen=True)
class Placement:
    """Where a job runs: its slot index, its GPUs (ids as the runner sees them) and CPU threads."""

    slot: int
    gpus: tuple[str, ...] = ()
    threads: int | None = None

    def to_dict(self) -> dict:
        return {"slot": self.slot, "gpus": list(self.gpus), "threads": self.threads}

    def describe(self) -> str:
        """``slot 1 · GPU 0,2`` (how lists and the cockpit show where a job runs)."""
        return f"slot {self.slot}" + (f" · GPU {','.join(self.gpus)}" if self.gpus else "")

    @classmethod
    def from_dict(cls, data: dict | None) -> "Placement | None":
        if not isinstance(data, dict) or not isinstance(data.get("slot"), int):
            return None
        return cls(int(data["slot"]), tuple(str(g) for g in data.get("gpus") or ()), data.get("threads"))


@dataclass(frozen=True)
class Pool:
    """The runner's resources. ``gpus`` empty = CPU mode (no GPU placement)."""

    slots: int
    gpus: tuple[str, ...] = ()
    per_gpu: int = 1
    threads: int | None = None  # CPU threads per job (None: leave the job's default)

    def __post_init__(self) -> None:
        if self.slots < 1:
            raise ValueError(f"slots: must be >= 1, got {self.slots}")
        if self.per_gpu < 1:
            raise ValueError(f"slots per GPU: must be >= 1, got {self.per_gpu}")
        if len(set(self.gpus)) != len(self.gpus):
            raise ValueError(f"gpus: listed twice in {','.join(self.gpus)}")

    @property
    def gpu_mode(self) -> bool:
        return bool(self.gpus)


def describe_runner(info: dict | None) -> str:
    """``2 slots · GPUs 0,1 (2 per GPU)`` from a runner's ``runner.json`` ("" for an older runner)."""
    if not info or not info.get("slots"):
        return ""
    slots = int(info["slots"])
    text = f"{slots} slot{'s' if slots != 1 else ''}"
    if info.get("gpus"):
        per = int(info.get("slots_per_gpu") or 1)
        text += f" · GPUs {','.join(map(str, info['gpus']))}" + (f" ({per} per GPU)" if per > 1 else "")
    if info.get("threads"):
        text += f" · {info['threads']} thread{'s' if info['threads'] != 1 else ''} per job"
    return text


@dataclass(frozen=True)
class Waiting:
    """The job fits later: why it waits now (shown as its note)."""

    reason: str


@dataclass(frozen=True)
class Impossible:
    """The job can never run in this pool (it needs more GPUs than the runner has)."""

    reason: str


@dataclass
class Round:
    """One pass over the queue: offer jobs in order; each accepted offer takes its resources."""

    pool: Pool
    running: Iterable[Placement] = ()
    busy: Iterable[str] = ()  # GPUs used by processes outside the queue
    _slots: set[int] = field(init=False)
    _load: dict[str, int] = field(init=False)
    _busy: set[str] = field(init=False)
    _reserved: set[str] = field(init=False, default_factory=set)
    _reserved_for: bool = field(init=False, default=False)

    def __post_init__(self) -> None:
        self._slots = {p.slot for p in self.running}
        self._load = {g: 0 for g in self.pool.gpus}
        for p in self.running:
            for g in p.gpus:
                if g in self._load:
                    self._load[g] += 1
        self._busy = {g for g in self.busy if g in self._load}

    @property
    def free_slots(self) -> int:
        return self.pool.slots - len(self._slots)

    def _free_gpus(self) -> list[str]:
        """GPUs with a free share, least loaded first (ties: pool order)."""
        order = {g: i for i, g in enumerate(self.pool.gpus)}
        free = [g for g in self.pool.gpus
                if g not in self._busy and g not in self._reserved and self._load[g] < self.pool.per_gpu]
        return sorted(free, key=lambda g: (self._load[g], order[g]))

    def offer(self, need: Need) -> Placement | Waiting | Impossible:
        """Place the job now, or say why it waits (reserving GPUs for the first blocked one)."""
        if self.pool.gpu_mode and need.gpus > len(self.pool.gpus):
            return Impossible(f"needs {need.gpus} GPUs; this runner has {len(self.pool.gpus)} "
                              f"(--gpus {','.join(self.pool.gpus)})")
        if self.free_slots <= 0:
            return Waiting(f"all {self.pool.slots} slots are busy")
        gpus: tuple[str, ...] = ()
        if self.pool.gpu_mode and need.gpus:
            free = self._free_gpus()
            if len(free) < need.gpus:
                return Waiting(self._reserve(need, len(free)))
            gpus = tuple(sorted(free[:need.gpus], key=self.pool.gpus.index))
        slot = min(set(range(self.pool.slots)) - self._slots)
        self._slots.add(slot)
        for g in gpus:
            self._load[g] += 1
        return Placement(slot, gpus, self.pool.threads)

    def _reserve(self, need: Need, free: int) -> str:
        what = f"needs {need.gpus} GPU{'s' if need.gpus > 1 else ''}, {free} free"
        if self._busy:
            what += f" (busy outside the queue: {','.join(sorted(self._busy, key=self.pool.gpus.index))})"
        if self._reserved_for:
            return what
        order = {g: i for i, g in enumerate(self.pool.gpus)}
        usable = [g for g in self.pool.gpus if g not in self._busy]
        usable.sort(key=lambda g: (self._load[g], order[g]))
        self._reserved = set(usable[:need.gpus])
        self._reserved_for = True
        names = ",".join(sorted(self._reserved, key=order.get))
        return what + f"; GPU{'s' if len(self._reserved) > 1 else ''} {names} reserved for it"
