"""Fan-out of one :class:`~MLSystem.events.source.EventSource` to many asyncio clients.

No per-client queues: the broker keeps the last ``RING`` events in memory and every client keeps
only its cursor (the last seq it was sent). A client's sender reads from the ring, or from the
journal on disk when it is further behind (a reconnect with ``since``, or a slow reader), so a
slow client costs nothing to the others and misses nothing still on disk; events no longer on
disk are reported once with a ``gap`` message. A client whose socket accepts nothing for
``SEND_TIMEOUT_S`` is dropped by its transport (``routes.py``), never waited for by anyone else.
"""

from __future__ import annotations

import asyncio
import itertools
from collections import deque
from typing import Any, AsyncIterator, Callable

from MLSystem.events import schema
from MLSystem.events.journal import Journal
from MLSystem.events.source import EventSource
from MLSystem.paths import ProjectPaths

RING = 10_000
DISK_BATCH = 2_000
SEND_TIMEOUT_S = 5.0
KEEPALIVE_S = 15.0


class Broker:
    """Started once per cockpit on its event loop; :meth:`stream` serves each client."""

    def __init__(self, paths: ProjectPaths):
        self.paths = paths
        self.journal = Journal(paths)
        self.ring: deque[dict[str, Any]] = deque(maxlen=RING)
        self.last = 0
        self.source: EventSource | None = None
        self._changed: asyncio.Event | None = None
        self.clients = 0
        # True once the server is shutting down: streams end (a server waits for open responses).
        self.closing: Callable[[], bool] = lambda: False

    async def start(self) -> None:
        loop = asyncio.get_running_loop()
        self._changed = asyncio.Event()
        self.last = await asyncio.to_thread(self.journal.last)
        self.source = EventSource(self.paths, lambda events: loop.call_soon_threadsafe(self._publish, events),
                                  since=self.last)
        self.source.start()

    async def stop(self) -> None:
        if self.source is not None:
            await asyncio.to_thread(self.source.stop)

    def _publish(self, events: list[dict[str, Any]]) -> None:
        self.ring.extend(events)
        self.last = events[-1]["seq"]
        changed, self._changed = self._changed, asyncio.Event()
        if changed is not None:
            changed.set()

    def _from_ring(self, cursor: int, limit: int = DISK_BATCH) -> list[dict[str, Any]] | None:
        """Events after ``cursor`` from memory (seqs in the ring are contiguous), None if not there."""
        if not self.ring or self.ring[0]["seq"] > cursor + 1:
            return None
        behind = self.ring[-1]["seq"] - cursor
        if behind <= len(self.ring) // 2:
            # A client at the live edge (the usual case): walk from the end, O(events it lacks)
            # rather than O(ring) per wake-up for each client.
            return list(itertools.islice(reversed(self.ring), max(behind, 0)))[::-1][:limit]
        start = len(self.ring) - behind
        return list(itertools.islice(self.ring, start, start + limit))

    async def stream(self, since: int | None = None, experiment: str | None = None, job: str | None = None,
                     follow: bool = True) -> AsyncIterator[dict[str, Any] | None]:
        """Events after ``since`` (default: from now) matching the filters, then live ones.
        Yields ``None`` every ``KEEPALIVE_S`` without events (transports send a keep-alive)."""
        assert self._changed is not None, "Broker.start() first"
        # A seq from the future (the journal was deleted since): from now on.
        cursor = self.last if since is None else min(since, self.last)
        self.clients += 1
        idle = 0.0
        try:
            while not self.closing():
                changed = self._changed
                if cursor >= self.last:
                    if not follow:
                        return
                    try:
                        await asyncio.wait_for(changed.wait(), 1.0)
                    except asyncio.TimeoutError:
                        idle += 1.0
                        if idle >= KEEPALIVE_S:
                            idle = 0.0
                            yield None
                    continue
                idle = 0.0
                batch = self._from_ring(cursor)
                if batch is None:
                    batch = await asyncio.to_thread(self.journal.read_since, cursor, DISK_BATCH)
                    first = batch[0]["seq"] if batch else (self.ring[0]["seq"] if self.ring else self.last + 1)
                    if first > cursor + 1:
                        yield {"type": schema.GAP, "seq": None,
                               "payload": {"missed_from": cursor + 1, "missed_to": first - 1,
                                           "reason": "no longer on disk"}}
                        cursor = first - 1
                    if not batch:
                        continue
                for event in batch:
                    cursor = event["seq"]
                    if schema.matches(event, experiment, job):
                        yield event
        finally:
            self.clients -= 1
