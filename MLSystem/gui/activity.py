"""When the cockpit last served a request: background work (the warm-up) waits for a quiet moment.

The cockpit is one Python process: a CPU-bound thread (computing ETAs, importing Optuna) holds
the GIL and makes the event loop wait for it at every step of serving a page and its assets.
The warm-up therefore runs its heavy steps only after no HTTP request has been seen for a while
(:meth:`Activity.wait_quiet`); a visitor then waits behind one step at most, never behind all.
"""

from __future__ import annotations

import threading
import time

from starlette.types import ASGIApp, Receive, Scope, Send

QUIET_S = 1.0  # no request for this long (a page's assets and its scripts' start-up) = quiet
# Long-lived connections, counted when they start only: NiceGUI's socket.io (websocket or long
# polling) and the event stream (Server-Sent Events); websockets of any path are too.
LONG_LIVED = ("/_nicegui_ws", "/api/events")


class Activity:
    """Requests in flight and the time the last one started or ended (thread-safe)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._in_flight = 0
        self._last = time.monotonic()  # startup counts as activity: a first visitor is on its way

    def started(self, *, long_lived: bool = False) -> None:
        with self._lock:
            self._last = time.monotonic()
            if not long_lived:
                self._in_flight += 1

    def ended(self) -> None:
        with self._lock:
            self._in_flight -= 1
            self._last = time.monotonic()

    def quiet_for(self) -> float:
        """Seconds since the last request started or ended; 0 while one is in flight."""
        with self._lock:
            return 0.0 if self._in_flight else time.monotonic() - self._last

    def wait_quiet(self, quiet: float = QUIET_S, at_most: float = 30.0, poll: float = 0.05) -> None:
        """Block until no request for ``quiet`` seconds (or ``at_most`` seconds have passed:
        a cockpit polled without pause still gets its warm-up)."""
        deadline = time.monotonic() + at_most
        while (waited := self.quiet_for()) < quiet and time.monotonic() < deadline:
            time.sleep(max(poll, quiet - waited))


class ActivityMiddleware:
    """Pure ASGI: tells :class:`Activity` about every HTTP request and websocket start."""

    def __init__(self, app: ASGIApp, activity: Activity) -> None:
        self.app = app
        self.activity = activity

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        if scope["type"] == "websocket" or scope.get("path", "").startswith(LONG_LIVED):
            self.activity.started(long_lived=True)
            await self.app(scope, receive, send)
            return
        self.activity.started()
        try:
            await self.app(scope, receive, send)
        finally:
            self.activity.ended()
