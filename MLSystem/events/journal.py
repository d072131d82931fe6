"""The event journal: ``output/events/``, where sequence numbers are made and kept.

Why a journal: events are *derived* from files that training already writes, and several
processes may want them at once (the cockpit, ``python -m MLSystem.events`` in a terminal, a
second cockpit). If each derived its own numbering, ``?since=42`` would mean different things in
each, and a restart would start again at 1. So exactly one process at a time — the *leader*, the
holder of ``leader.lock`` (a ``flock``, released by the kernel when its holder dies) — derives
events, numbers them ``last + 1`` and appends them to ``journal.jsonl``. Every other process
follows that file. When the leader exits or dies, the next process to poll takes the lock,
reloads the derivation state (``state.json`` plus the journal lines written after it) and goes on
numbering from the last line, so numbers never repeat or go back, across processes and restarts.

Layout::

    output/events/
      journal.jsonl       one event per line, seq ascending ("seq" is the first key)
      journal.1.jsonl     the previous segment (rotated at SEGMENT_BYTES; older ones are deleted)
      state.json          the leader's cursors as of some seq (rewritten at most every STATE_EVERY_S)
      leader.lock         flock of the current leader

``?since=SEQ`` is served from the journal (binary search by seq), so a client that reconnects gets
every event still on disk; older ones are reported as a gap.
"""

from __future__ import annotations

import contextlib
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

from MLSystem.events.schema import dumps
from MLSystem.paths import ProjectPaths

SEGMENT_BYTES = 32 << 20  # two segments are kept: 32-64 MiB of history (~150k-300k events)
SEARCH_LINEAR_BYTES = 64 << 10


@dataclass(frozen=True)
class EventPaths:
    dir: Path

    @classmethod
    def of(cls, paths: ProjectPaths) -> "EventPaths":
        return cls(paths.output / "events")

    @property
    def journal(self) -> Path:
        return self.dir / "journal.jsonl"

    @property
    def previous(self) -> Path:
        return self.dir / "journal.1.jsonl"

    @property
    def state(self) -> Path:
        return self.dir / "state.json"

    @property
    def lock(self) -> Path:
        return self.dir / "leader.lock"


def seq_of(line: bytes) -> int | None:
    """The ``seq`` of a complete journal line, read from its prefix without parsing the rest."""
    if not line.startswith(b'{"seq":') or not line.endswith(b"\n"):
        return None
    end = line.find(b",", 7)
    try:
        return int(line[7:end])
    except ValueError:
        return None


def _parse(line: bytes) -> dict[str, Any] | None:
    if seq_of(line) is None:
        return None  # a torn last line (the leader was killed mid-write) or a foreign one
    try:
        event = json.loads(line)
    except ValueError:
        return None
    return event if isinstance(event, dict) else None


def _start_after(fh, size: int, since: int) -> int:
    """Byte offset of the first line with seq > ``since`` (lines are in seq order)."""
    lo, hi = 0, size  # every line starting before lo has seq <= since
    while hi - lo > SEARCH_LINEAR_BYTES:
        mid = (lo + hi) // 2
        fh.seek(mid)
        fh.readline()  # to the next line start
        line = fh.readline()
        s = seq_of(line)
        if s is not None and s <= since:
            lo = fh.tell()
        else:
            hi = mid
    fh.seek(lo)
    while True:
        pos = fh.tell()
        line = fh.readline()
        s = seq_of(line)
        if not line or s is None or s > since:
            return pos


def _read_file(path: Path, since: int, limit: int) -> Iterator[dict[str, Any]]:
    try:
        fh = open(path, "rb")
    except FileNotFoundError:
        return
    with fh:
        size = os.fstat(fh.fileno()).st_size
        fh.seek(_start_after(fh, size, since))
        n = 0
        for line in fh:
            event = _parse(line)
            if event is None:
                continue
            if event["seq"] > since:
                yield event
                n += 1
                if n >= limit:
                    return


def first_seq(path: Path) -> int | None:
    try:
        with open(path, "rb") as fh:
            return seq_of(fh.readline())
    except FileNotFoundError:
        return None


def last_seq(path: Path) -> int | None:
    """Seq of the last complete line of a segment (None if it has none)."""
    try:
        with open(path, "rb") as fh:
            size = os.fstat(fh.fileno()).st_size
            back = 4096
            while True:
                start = max(0, size - back)
                fh.seek(start)
                lines = fh.read(size - start).split(b"\n")
                complete = [ln + b"\n" for ln in lines[:-1]]  # the last piece has no newline
                for line in reversed(complete if start == 0 else complete[1:]):
                    s = seq_of(line)
                    if s is not None:
                        return s
                if start == 0:
                    return None
                back *= 4
    except FileNotFoundError:
        return None


class Journal:
    """Reading (any process) and appending (the leader only) the event journal."""

    def __init__(self, paths: ProjectPaths):
        self.paths = EventPaths.of(paths)

    def read_since(self, since: int, limit: int = 10_000) -> list[dict[str, Any]]:
        """Events with seq > ``since`` still on disk, oldest first (at most ``limit``)."""
        out: list[dict[str, Any]] = []
        for path in (self.paths.previous, self.paths.journal):
            out.extend(_read_file(path, out[-1]["seq"] if out else since, limit - len(out)))
            if len(out) >= limit:
                break
        return out

    def oldest(self) -> int | None:
        """Seq of the oldest event still on disk."""
        return first_seq(self.paths.previous) or first_seq(self.paths.journal)

    def last(self) -> int:
        """Seq of the newest event on disk (0 for none)."""
        return last_seq(self.paths.journal) or last_seq(self.paths.previous) or 0

    # -- leader only --------------------------------------------------------------------------------
    def append(self, events: list[dict[str, Any]]) -> None:
        """Append numbered events in one write (a reader sees whole lines or a torn last one)."""
        if not events:
            return
        data = "".join(dumps(e) + "\n" for e in events).encode("utf-8")
        self.paths.dir.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.paths.journal, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            os.write(fd, data)
            size = os.fstat(fd).st_size
        finally:
            os.close(fd)
        if size >= SEGMENT_BYTES:
            os.replace(self.paths.journal, self.paths.previous)

    def repair(self) -> None:
        """Cut a torn last line left by a leader killed mid-write (so appends start on a line)."""
        with contextlib.suppress(FileNotFoundError), open(self.paths.journal, "rb+") as fh:
            size = os.fstat(fh.fileno()).st_size
            if size == 0:
                return
            fh.seek(max(0, size - 65536))
            tail = fh.read()
            if tail.endswith(b"\n"):
                return
            cut = tail.rfind(b"\n")
            fh.truncate(size - len(tail) + cut + 1 if cut >= 0 else max(0, size - len(tail)))


class JournalTail:
    """A follower's cursor: each :meth:`poll` returns the events appended since the last one."""

    def __init__(self, journal: Journal, since: int):
        self.journal = journal
        self.seq = since
        self._inode: int | None = None
        self._offset = 0
        self._partial = b""

    def _resume_offset(self) -> int:
        """Start of the first line after ``self.seq`` in the current segment (a torn line is re-read)."""
        try:
            with open(self.journal.paths.journal, "rb") as fh:
                return _start_after(fh, os.fstat(fh.fileno()).st_size, self.seq)
        except FileNotFoundError:
            return 0

    def poll(self, limit: int = 10_000) -> list[dict[str, Any]]:
        try:
            st = os.stat(self.journal.paths.journal)
        except FileNotFoundError:
            return []
        if st.st_ino != self._inode or st.st_size < self._offset:
            # First poll or a rotation: find our place by seq (the old segment may hold the rest).
            events = self.journal.read_since(self.seq, limit)
            if events:
                self.seq = events[-1]["seq"]
            self._inode, self._offset, self._partial = st.st_ino, self._resume_offset(), b""
            if len(events) >= limit:
                self._inode = None  # more to read: search again next time
            return events
        if st.st_size == self._offset:
            return []
        with open(self.journal.paths.journal, "rb") as fh:
            fh.seek(self._offset)
            data = fh.read(8 << 20)
        self._offset += len(data)
        data = self._partial + data
        cut = data.rfind(b"\n") + 1
        self._partial = data[cut:]
        out = []
        for line in data[:cut].splitlines(keepends=True):
            event = _parse(line)
            if event is not None and event["seq"] > self.seq:
                out.append(event)
                self.seq = event["seq"]
        return out
