"""The cockpit's warm-up waits for a quiet moment: a visitor's page never waits behind its heavy steps."""

from __future__ import annotations

import asyncio
import threading
import time

from conftest import wait_for
from MLSystem.gui import context
from MLSystem.gui.activity import Activity, ActivityMiddleware
from MLSystem.paths import ProjectPaths


def test_requests_in_flight_and_websockets_are_activity() -> None:
    activity = Activity()

    async def scenario() -> None:
        release = asyncio.Event()

        async def app(scope, receive, send) -> None:  # a request (or socket) that lasts until released
            await release.wait()

        middleware = ActivityMiddleware(app, activity)
        request = asyncio.create_task(middleware({"type": "http", "path": "/experiments"}, None, None))
        await asyncio.sleep(0.3)
        assert activity.quiet_for() == 0.0  # a request in flight is never quiet, however long it takes
        release.set()
        await request
        await asyncio.sleep(0.2)
        assert 0.15 < activity.quiet_for() < 5
        # The socket.io connection lives as long as the page, an event stream as long as its client:
        # their start counts, not their lifetime.
        release.clear()
        for scope in ({"type": "websocket", "path": "/_nicegui_ws/socket.io/"},
                      {"type": "http", "path": "/_nicegui_ws/socket.io/"},  # long polling
                      {"type": "http", "path": "/api/events"}):  # Server-Sent Events
            socket = asyncio.create_task(middleware(scope, None, None))
            await asyncio.sleep(0.05)
            assert activity.quiet_for() < 0.15
            await asyncio.sleep(0.2)
            assert activity.quiet_for() >= 0.15
            release.set()
            await socket
            release.clear()

    asyncio.run(scenario())


def test_wait_quiet_waits_for_the_last_request_to_end() -> None:
    activity = Activity()
    activity.started()
    done = threading.Event()
    waiter = threading.Thread(target=lambda: (activity.wait_quiet(quiet=0.2), done.set()), daemon=True)
    waiter.start()
    assert not done.wait(0.5)  # in flight: no quiet moment yet
    activity.ended()
    wait_for(done.is_set, 10, "wait_quiet to return after the request ended")
    busy = Activity()
    busy.started()
    t = time.monotonic()
    busy.wait_quiet(quiet=0.2, at_most=0.3)  # a cockpit never quiet still gets its warm-up
    assert time.monotonic() - t < 5


def test_warm_up_runs_its_heavy_steps_only_once_the_cockpit_is_quiet(tmp_path, monkeypatch) -> None:
    monkeypatch.setattr(context, "VERIFY_AFTER_S", 3600)
    cockpit = context.Cockpit(ProjectPaths(tmp_path))
    called = threading.Event()
    monkeypatch.setattr(context.Cockpit, "etas", lambda self, jobs: called.set() or {})
    cockpit.activity.started()  # a visitor's page is being served
    threading.Thread(target=cockpit.warm_up, daemon=True).start()
    assert not called.wait(2.0), "the ETAs were computed while a page was being served"
    cockpit.activity.ended()
    wait_for(called.is_set, 30, "the warm-up's ETAs once the cockpit is quiet")


def test_queue_page_etas_do_not_wait_for_their_computation(tmp_path, monkeypatch) -> None:
    from MLSystem.eta import Eta
    from MLSystem.jobs import Job

    cockpit = context.Cockpit(ProjectPaths(tmp_path))
    job = Job(id="j1", kind="train", args=[], status="pending")

    def slow_estimate(queue, jobs):
        time.sleep(1.0)
        return {j.id: Eta(0.0, 10.0) for j in jobs}

    monkeypatch.setattr(context, "estimate", slow_estimate)
    t = time.monotonic()
    assert cockpit.etas([job], wait=False) == {}  # nothing cached yet: the page shows its jobs now
    assert time.monotonic() - t < 0.5
    got = wait_for(lambda: cockpit.etas([job], wait=False), 30, "the ETAs computed in the background")
    assert got["j1"].duration == 10.0
    assert cockpit.etas([job])["j1"].duration == 10.0  # fresh: the waiting call does not recompute
