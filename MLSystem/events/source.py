"""One process's view of the event stream: derive (as leader) or follow the journal, in a thread.

:class:`EventSource` polls every ``POLL_S``; whatever it gets — events it derived and appended as
the leader, or lines another leader appended — goes to ``on_events`` in seq order, without gaps.
A follower tries to become the leader at every poll, so when the cockpit or a terminal follower
that was deriving exits, another one carries on within a poll.
"""

from __future__ import annotations

import contextlib
import json
import logging
import threading
import time
from typing import Any, Callable

from MLSystem.events.derive import DeriveState, Deriver
from MLSystem.events.journal import Journal, JournalTail
from MLSystem.paths import ProjectPaths
from MLSystem.utils.atomic import atomic_write_text, read_json

log = logging.getLogger("MLSystem.events")

POLL_S = 0.1  # derive/tail interval: half the latency budget of a metric row to a client
STATE_EVERY_S = 5.0  # the leader's state snapshot; what came after it is replayed from the journal


class EventSource:
    """Derives or follows events for ``paths``; ``on_events(list)`` is called from its thread."""

    def __init__(self, paths: ProjectPaths, on_events: Callable[[list[dict[str, Any]]], None], *,
                 since: int | None = None, poll_s: float = POLL_S, lead: bool = True):
        from filelock import FileLock

        self.paths = paths
        self.journal = Journal(paths)
        self.journal.paths.dir.mkdir(parents=True, exist_ok=True)
        self.on_events = on_events
        self.poll_s = poll_s
        self.lead = lead  # False: only follow (tests of the follower path)
        self.tail = JournalTail(self.journal, self.journal.last() if since is None else since)
        self._lock = FileLock(str(self.journal.paths.lock), timeout=0, thread_local=False)
        self.deriver: Deriver | None = None
        self._saved = 0.0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.errors = 0

    @property
    def seq(self) -> int:
        """Seq of the last event handed to ``on_events``."""
        return self.tail.seq

    @property
    def leader(self) -> bool:
        return self.deriver is not None

    # -- thread ----------------------------------------------------------------------------------
    def start(self) -> "EventSource":
        self._thread = threading.Thread(target=self._run, name="mlsystem-events", daemon=True)
        self._thread.start()
        return self

    def stop(self, timeout: float = 5.0) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)
        self._release()

    def _run(self) -> None:
        while not self._stop.is_set():
            started = time.monotonic()
            try:
                self.step()
            except Exception:  # a bad file must not end the stream; say it once per kind of failure
                self.errors += 1
                if self.errors <= 3:
                    log.exception("event source poll failed")
            self._stop.wait(max(0.0, self.poll_s - (time.monotonic() - started)))

    # -- one poll ----------------------------------------------------------------------------------
    def step(self) -> list[dict[str, Any]]:
        """One poll (public for tests and the CLI's --no-follow)."""
        events = self.tail.poll()  # what the previous leader (or nobody) appended
        if events:
            self.on_events(events)
        if self.deriver is None and self.lead and self._try_lead():
            events += self._catch_up()
        if self.deriver is not None:
            new = self.deriver.poll()
            if new:
                self._number(new)
                self.journal.append(new)
                self.tail.seq = new[-1]["seq"]
                self.on_events(new)
                events += new
            if self.deriver.dirty and time.monotonic() - self._saved > STATE_EVERY_S:
                self._save()
        return events

    def _number(self, events: list[dict[str, Any]]) -> None:
        seq = self.deriver.state.seq if self.deriver else self.tail.seq
        for e in events:
            seq += 1
            e["seq"] = seq
        if self.deriver:
            self.deriver.state.seq = seq

    def _try_lead(self) -> bool:
        from filelock import Timeout

        try:
            self._lock.acquire()
        except Timeout:
            return False
        return True

    def _catch_up(self) -> list[dict[str, Any]]:
        """Just became the leader: rebuild the deriver from the snapshot and the journal after it."""
        self.journal.repair()
        saved = read_json(self.journal.paths.state)
        deriver = Deriver(self.paths, DeriveState.from_json(saved) if isinstance(saved, dict) else None)
        last = self.journal.last()
        if saved is None and last == 0:
            deriver.baseline()  # a project's first leader: nothing of the past is announced
        else:
            replay = deriver.state.seq
            while replay < last:
                chunk = self.journal.read_since(replay, 10_000)
                if not chunk:
                    break
                for e in chunk:
                    deriver.apply(e)
                replay = chunk[-1]["seq"]
            deriver.state.seq = max(deriver.state.seq, last)
        # Events another leader appended after our tail's last poll: hand them on first.
        rest = self.tail.poll(limit=1 << 30)
        if rest:
            self.on_events(rest)
        self.deriver = deriver
        self._save()
        return rest

    def _save(self) -> None:
        if self.deriver is None:
            return
        # compact: with a long job history this is megabytes, rewritten every few seconds
        atomic_write_text(self.journal.paths.state, json.dumps(self.deriver.state.to_json(), separators=(",", ":")))
        self.deriver.dirty = False
        self._saved = time.monotonic()

    def _release(self) -> None:
        if self.deriver is not None:
            with contextlib.suppress(Exception):
                self._save()
            self.deriver = None
            with contextlib.suppress(Exception):
                self._lock.release()
