"""Token check for a cockpit reachable from other machines.

With a token, every HTTP request and websocket (pages, API, NiceGUI's own endpoints) must carry
it: ``Authorization: Bearer T``, ``X-MLSystem-Token: T``, ``?token=T`` or the cookie set when a
page was opened with ``?token=T`` (so links and the browser's websocket work after that). The
cookie is named after the server's port: cookies ignore ports, and two cockpits on one machine
must not overwrite each other's.
"""

from __future__ import annotations

import hmac
import json
from http.cookies import SimpleCookie
from typing import Any, Awaitable, Callable
from urllib.parse import parse_qs

TOKEN_ENV = "MLSYSTEM_GUI_TOKEN"
COOKIE = "mlsystem_token"
Scope = dict[str, Any]
Receive = Callable[[], Awaitable[dict]]
Send = Callable[[dict], Awaitable[None]]


def cookie_name(scope: Scope) -> str:
    server = scope.get("server") or (None, None)
    return f"{COOKIE}_{server[1]}" if server[1] else COOKIE


def _presented(scope: Scope) -> tuple[str | None, bool]:
    """The token a request carries and whether it came in the query string."""
    headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope.get("headers", [])}
    auth = headers.get("authorization", "")
    if auth.lower().startswith("bearer "):
        return auth[7:].strip(), False
    if "x-mlsystem-token" in headers:
        return headers["x-mlsystem-token"], False
    query = parse_qs(scope.get("query_string", b"").decode("latin-1"))
    if query.get("token"):
        return query["token"][0], True
    cookie = SimpleCookie()
    try:
        cookie.load(headers.get("cookie", ""))
    except Exception:  # a malformed cookie header is just no token
        return None, False
    name = cookie_name(scope)
    return (cookie[name].value if name in cookie else None), False


class TokenMiddleware:
    """Pure ASGI middleware (it must also guard websockets, which HTTP middleware does not see)."""

    def __init__(self, app: Callable, token: str):
        self.app = app
        self.token = token

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        token, from_query = _presented(scope)
        if token is None or not hmac.compare_digest(token.encode(), self.token.encode()):
            await self._deny(scope, receive, send, missing=token is None)
            return
        if not from_query or scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_with_cookie(message: dict) -> None:
            if message["type"] == "http.response.start":
                cookie = f"{cookie_name(scope)}={self.token}; Path=/; HttpOnly; SameSite=Strict"
                message = {**message, "headers": list(message.get("headers", [])) + [(b"set-cookie", cookie.encode())]}
            await send(message)

        await self.app(scope, receive, send_with_cookie)

    @staticmethod
    async def _deny(scope: Scope, receive: Receive, send: Send, *, missing: bool) -> None:
        if scope["type"] == "websocket":
            await send({"type": "websocket.close", "code": 4401})
            return
        detail = "token required: open the cockpit with ?token=... or send 'Authorization: Bearer ...'" \
            if missing else "wrong token"
        body = json.dumps({"detail": detail}).encode()
        await send({"type": "http.response.start", "status": 401,
                    "headers": [(b"content-type", b"application/json"), (b"www-authenticate", b"Bearer")]})
        await send({"type": "http.response.body", "body": body})
