"""The cockpit's event endpoints: WebSocket ``/api/ws`` and Server-Sent Events ``/api/events``.

Both are ordinary routes of the cockpit's app, so the same middleware (token, Host/Origin checks)
guards them as every other route. Query parameters: ``since`` (a seq: replay what is still on
disk after it; default: from now), ``experiment`` (an ID or prefix), ``job`` (a job id or its hex
part). SSE also honours ``Last-Event-ID`` (what a browser's ``EventSource`` sends when it
reconnects) and ``follow=false`` (send what is on disk, then end).
"""

from __future__ import annotations

import asyncio
import contextlib
import re

from fastapi import Query, Request, WebSocket, WebSocketDisconnect
from fastapi.responses import StreamingResponse

from MLSystem.events import schema
from MLSystem.events.broker import SEND_TIMEOUT_S, Broker
from MLSystem.paths import ProjectPaths

_FILTER = re.compile(r"[A-Za-z0-9_-]{1,64}$")
CLOSE_BAD_INPUT, CLOSE_TOO_SLOW = 4400, 4408


def _filter(name: str, value: str | None) -> str | None:
    if value is not None and not _FILTER.match(value):
        raise ValueError(f"{name}: expected letters, digits, '-' or '_' (an ID or a prefix), got {value[:40]!r}")
    return value or None


class EventStreamResponse(StreamingResponse):
    """SSE whose client is dropped when a chunk cannot be sent within ``SEND_TIMEOUT_S``."""

    async def stream_response(self, send) -> None:
        async def bounded(message: dict) -> None:
            await asyncio.wait_for(send(message), SEND_TIMEOUT_S)

        with contextlib.suppress(asyncio.TimeoutError):
            await super().stream_response(bounded)


def _server_exiting() -> bool:
    from nicegui.server import Server

    return bool(getattr(getattr(Server, "instance", None), "should_exit", False))


def register(app, paths: ProjectPaths) -> Broker:
    """Add the event routes to ``app`` and run one :class:`Broker` for its lifetime."""
    broker = Broker(paths)
    broker.closing = _server_exiting
    app.state.events = broker  # for in-process subscribers (the cockpit's live view, tests)
    app.on_startup(broker.start)  # NiceGUI's app: run on the server's event loop
    app.on_shutdown(broker.stop)

    @app.websocket("/api/ws")
    async def events_ws(websocket: WebSocket, since: int | None = None, experiment: str | None = None,
                        job: str | None = None) -> None:
        # "From now" is when the request arrived, not when the stream first runs: a client that
        # acts as soon as its handshake completes must not miss what its action causes.
        start = broker.last if since is None else since
        await websocket.accept()
        try:
            if since is not None and since < 0:
                raise ValueError("since: expected a sequence number >= 0")
            experiment, job = _filter("experiment", experiment), _filter("job", job)
        except ValueError as exc:
            await websocket.close(CLOSE_BAD_INPUT, str(exc))
            return

        async def pump() -> None:
            async for event in broker.stream(start, experiment, job):
                if event is not None:  # keep-alives are the websocket's own pings
                    await asyncio.wait_for(websocket.send_text(schema.dumps(event)), SEND_TIMEOUT_S)

        sender = asyncio.create_task(pump())
        try:
            while not sender.done():  # the client's messages are ignored; a close ends the stream
                receiver = asyncio.ensure_future(websocket.receive())
                await asyncio.wait({sender, receiver}, return_when=asyncio.FIRST_COMPLETED)
                if receiver.done():
                    if receiver.result().get("type") == "websocket.disconnect":
                        break
                else:
                    receiver.cancel()
            if sender.done() and isinstance(sender.exception(), asyncio.TimeoutError):
                with contextlib.suppress(Exception):  # the socket is stuck: closing may not get through
                    await asyncio.wait_for(websocket.close(CLOSE_TOO_SLOW, "too slow: reconnect with since="), 1)
        except (WebSocketDisconnect, RuntimeError):
            pass
        finally:
            sender.cancel()
            with contextlib.suppress(BaseException):
                await sender

    @app.get("/api/events", tags=["events"], summary="Server-Sent Events: the project's event stream",
             response_class=EventStreamResponse,
             responses={200: {"content": {"text/event-stream": {}},
                              "description": "`id: SEQ` + `data: {event JSON}` per event (schema: README, Events)"}})
    async def events_sse(request: Request, since: int | None = Query(None, ge=0, description="replay after this seq"),
                         experiment: str | None = Query(None, pattern=_FILTER.pattern),
                         job: str | None = Query(None, pattern=_FILTER.pattern),
                         follow: bool = Query(True, description="false: send the events on disk, then end")):
        last_id = request.headers.get("last-event-id", "")
        if since is None and last_id.isdigit():
            since = int(last_id)
        if since is None:  # from now: when the request arrived (see events_ws)
            since = broker.last if follow else 0

        async def body():
            yield ": MLSystem events\n\n"
            async for event in broker.stream(since, experiment, job, follow=follow):
                if event is None:
                    yield ": keep-alive\n\n"
                else:
                    seq = event.get("seq")
                    yield (f"id: {seq}\n" if seq is not None else "") + f"data: {schema.dumps(event)}\n\n"

        return EventStreamResponse(body(), media_type="text/event-stream",
                                   headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})

    return broker
