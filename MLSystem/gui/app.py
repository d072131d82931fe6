"""Wire the cockpit: pages, REST API, the Host/Origin check and (with a token) the access check."""

from __future__ import annotations

import threading
from typing import Any, Iterable

from nicegui import app

from MLSystem.events import routes as event_routes
from MLSystem.gui import api, api_compare
from MLSystem.gui.activity import ActivityMiddleware
from MLSystem.gui.auth import TokenMiddleware
from MLSystem.gui.context import Cockpit
from MLSystem.gui.guard import BodyLimitMiddleware, HostOriginMiddleware, allowed_hosts
from MLSystem.gui.inference import MAX_UPLOAD_BYTES
from MLSystem.gui.pages import add_job, checkpoints, compare, experiment_detail, experiments, inference, live, queue, studies
from MLSystem.paths import ProjectPaths

TITLE = "MLSystem cockpit"
MAX_REQUEST_BYTES = MAX_UPLOAD_BYTES + (1 << 20)
# ui.run options shared by gui_start and the tests' main file.
RUN_OPTIONS: dict[str, Any] = {
    "title": TITLE, "reload": False, "show": False, "fastapi_docs": True, "show_welcome_message": False,
    "reconnect_timeout": 10.0,
}


def build(paths: ProjectPaths, token: str | None = None, *, bind: str = "127.0.0.1",
          allow_hosts: Iterable[str] = ()) -> Cockpit:
    """Register every page and ``/api`` route; call once before ``ui.run``.

    Requests must name a Host the cockpit was started for (``bind``'s names, loopback names and
    ``allow_hosts``) and, when they carry an Origin, come from the cockpit's own pages.
    """
    # One event source per cockpit: /api/ws, /api/events and the live view all follow it.
    cockpit = Cockpit(paths, token, events=event_routes.register(app, paths))
    for page in (add_job, queue, live, experiments, experiment_detail, checkpoints, inference, compare, studies):
        page.register(cockpit)
    api.register(app, cockpit)
    api_compare.register(app, cockpit)
    # In a worker thread: the server answers at once while the listings fill.
    app.on_startup(lambda: threading.Thread(target=cockpit.warm_up, name="cockpit-warm-up", daemon=True).start())
    # No request to the cockpit is larger than an audio upload plus its multipart framing.
    app.add_middleware(BodyLimitMiddleware, limit=MAX_REQUEST_BYTES)
    app.add_middleware(ActivityMiddleware, activity=cockpit.activity)  # the warm-up waits for quiet moments
    if token:
        app.add_middleware(TokenMiddleware, token=token)
    # Added last, so it runs first: a foreign Host or Origin is refused before anything else.
    app.add_middleware(HostOriginMiddleware, hosts=allowed_hosts(bind, allow_hosts))
    return cockpit
