"""Host and Origin checks for the cockpit: other websites cannot drive it through the user's browser.

* **Host** (every HTTP request and websocket, pages and API alike): only the names the cockpit
  was started for — loopback names and addresses, the ``--host`` it binds to (for ``0.0.0.0``:
  this machine's name and addresses) and ``--allow-host`` names. This defeats DNS rebinding, where
  ``evil.example`` re-resolves to 127.0.0.1 and the browser sends ``Host: evil.example``.
* **Origin** (any request that carries one, websockets included): it must be the cockpit's own
  origin (the ``Host`` the request was sent to). Browsers add ``Origin`` to every cross-origin
  request and to every POST, so a form or ``fetch`` from another site is refused, while
  ``curl`` and scripts (no ``Origin``) are unaffected. All methods are checked, not only state
  changes: NiceGUI's socket.io endpoint allows any origin to read its polling responses.

Jupyter Server makes the same two checks (``allow_remote_access``, ``allow_origin``).

:class:`BodyLimitMiddleware` caps every request body (uploads included, NiceGUI's upload route
too): a declared ``Content-Length`` over the cap is refused before any byte is read, a streamed
body is refused as soon as it passes the cap, so a 3 GB POST never reaches the disk.
"""

from __future__ import annotations

import contextlib
import ipaddress
import json
import socket
from typing import Any, Awaitable, Callable, Iterable
from urllib.parse import urlsplit

from starlette.exceptions import HTTPException

Scope = dict[str, Any]
Receive = Callable[[], Awaitable[dict]]
Send = Callable[[dict], Awaitable[None]]

LOOPBACK_NAMES = ("localhost", "127.0.0.1", "::1")
WILDCARD_BINDS = ("0.0.0.0", "::", "")


def split_host(value: str) -> tuple[str, int | None]:
    """``"Name:8080"`` / ``"[::1]:8080"`` / ``"name"`` -> (lower-case name without brackets, port)."""
    value = value.strip().lower()
    try:
        parts = urlsplit(f"//{value}")
        name, port = parts.hostname or "", parts.port
    except ValueError:  # a malformed port
        return "", None
    return name.rstrip("."), port


def is_loopback(name: str) -> bool:
    if name in ("localhost",) or name.endswith(".localhost"):
        return True
    with contextlib.suppress(ValueError):
        return ipaddress.ip_address(name).is_loopback
    return False


def machine_names() -> set[str]:
    """This machine's host name, FQDN and the addresses they resolve to (for a ``0.0.0.0`` bind)."""
    names = set()
    with contextlib.suppress(OSError):
        names |= {socket.gethostname(), socket.getfqdn()}
    for name in list(names):
        with contextlib.suppress(OSError, UnicodeError):
            names |= {str(info[4][0]) for info in socket.getaddrinfo(name, None)}
    return {n.lower() for n in names if n}


def allowed_hosts(bind: str, extra: Iterable[str] = ()) -> frozenset[str]:
    """The Host names a cockpit bound to ``bind`` answers to (loopback names are always allowed)."""
    names = {*LOOPBACK_NAMES, *(split_host(e)[0] or e.lower() for e in extra)}
    if bind in WILDCARD_BINDS:
        names |= machine_names()
    else:
        names.add(split_host(bind)[0] or bind.lower())
    return frozenset(names)


def _headers(scope: Scope) -> dict[str, str]:
    return {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope.get("headers", [])}


def _same_origin(origin: str, host_header: str, scheme: str) -> bool:
    """Whether ``Origin`` names the very host and port the request was sent to."""
    try:
        parts = urlsplit(origin.strip().lower())
        origin_port = parts.port or {"http": 80, "https": 443}.get(parts.scheme)
    except ValueError:
        return False
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return False
    name, port = split_host(host_header)
    port = port or {"http": 80, "ws": 80, "https": 443, "wss": 443}.get(scheme)
    return (parts.hostname.rstrip("."), origin_port) == (name, port)


def refusal(scope: Scope, hosts: frozenset[str]) -> str | None:
    """Why a request must be refused, or None when its Host and Origin are acceptable."""
    headers = _headers(scope)
    host_header = headers.get("host", "")
    name, _ = split_host(host_header)
    if not name:
        return "request without a valid Host header"
    if name not in hosts and not is_loopback(name):
        return (f"Host {host_header!r} is not a name this cockpit was started for; open it as "
                "http://127.0.0.1:PORT/ or start it with --allow-host NAME")
    origin = headers.get("origin")
    if origin is not None and not _same_origin(origin, host_header, scope.get("scheme", "http")):
        return f"cross-origin request from {origin!r} refused (only the cockpit's own pages may call it)"
    return None


class HostOriginMiddleware:
    """Pure ASGI middleware (it must also see websockets, which HTTP middleware does not)."""

    def __init__(self, app: Callable, hosts: Iterable[str]):
        self.app = app
        self.hosts = frozenset(hosts)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] in ("http", "websocket") and (why := refusal(scope, self.hosts)):
            if scope["type"] == "websocket":
                await send({"type": "websocket.close", "code": 4403, "reason": why[:120]})
                return
            body = json.dumps({"detail": why}).encode()
            await send({"type": "http.response.start", "status": 403,
                        "headers": [(b"content-type", b"application/json"),
                                    (b"content-length", str(len(body)).encode())]})
            await send({"type": "http.response.body", "body": body})
            return
        await self.app(scope, receive, send)


class BodyTooLarge(HTTPException):
    """Raised from ``receive`` once a body passes the cap; FastAPI and Starlette answer it as 413."""

    def __init__(self, limit: int):
        super().__init__(413, f"request body over the {limit // (1024 * 1024)} MiB limit")


class BodyLimitMiddleware:
    """Refuse HTTP request bodies larger than ``limit`` bytes, reading at most ``limit`` of them."""

    def __init__(self, app: Callable, limit: int):
        self.app = app
        self.limit = limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = _headers(scope).get("content-length")
        if declared is not None and (not declared.strip().isdigit() or int(declared) > self.limit):
            await self._refuse(send, BodyTooLarge(self.limit))
            return
        seen, started = 0, False

        async def limited_receive() -> dict:
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.limit:
                    raise BodyTooLarge(self.limit)
            return message

        async def tracking_send(message: dict) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, limited_receive, tracking_send)
        except BodyTooLarge as exc:  # an app that let it through instead of answering 413
            if not started:
                await self._refuse(send, exc)

    @staticmethod
    async def _refuse(send: Send, exc: BodyTooLarge) -> None:
        body = json.dumps({"detail": exc.detail}).encode()
        await send({"type": "http.response.start", "status": 413,
                    "headers": [(b"content-type", b"application/json"), (b"connection", b"close"),
                                (b"content-length", str(len(body)).encode())]})
        await send({"type": "http.response.body", "body": body})
