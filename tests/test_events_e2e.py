"""The event stream end to end: a real cockpit server, the real runner, real sockets.

* ``/api/ws`` sees jobs in order (queued -> started -> log -> progress… -> validation_result per
  epoch -> status -> finished; error + failed; status stopped), the terminal follower numbers them
  the same, and a client that drops mid-run and reconnects with ``since`` misses nothing.
* 20 clients (ws and SSE), one of them never reading: the others keep <= 1 s latency and the
  stuck one is dropped (a stuck SSE client too); without the token nothing is served.
"""

from __future__ import annotations

import base64
import json
import os
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import pytest
from conftest import FAST, cli_env, run_cli, wait_for

from MLSystem.events import schema
from MLSystem.events.journal import Journal
from MLSystem.jobs import Job, new_job_id
from MLSystem.queue_store import JobQueue
from MLSystem.utils.clock import now_iso
from MLSystem.paths import ProjectPaths
from MLSystem.submit import submit

pytestmark = pytest.mark.slow

TOKEN = "s3cret-events"
LONGER = ["n_train=4096", "n_val=64", "batch_size=32"]  # 128 steps per epoch: time to stop it mid-run


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Cockpit:
    def __init__(self, root: Path, token: str | None = None):
        self.port = free_port()
        self.root = root
        args = ["--port", str(self.port)] + (["--token", token] if token else [])
        env = cli_env(root)
        env.pop("PYTEST_CURRENT_TEST", None)
        self.log = open(root / "gui.log", "w")
        self.proc = subprocess.Popen([sys.executable, "-m", "MLSystem.gui_start", *args], cwd=root, env=env,
                                     stdout=self.log, stderr=subprocess.STDOUT)

        def up() -> bool:
            with socket.socket() as s:
                return s.connect_ex(("127.0.0.1", self.port)) == 0
        wait_for(up, 90, "the cockpit to listen")

    def ws(self, query: str = "") -> str:
        return f"ws://127.0.0.1:{self.port}/api/ws" + (f"?{query}" if query else "")

    def close(self) -> bool:
        """Stop it like Ctrl-C would; False if it did not exit within 30 s (open streams must end)."""
        self.proc.terminate()
        try:
            self.proc.wait(timeout=30)
            return True
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            return False
        finally:
            self.log.close()


class Client(threading.Thread):
    """A websocket reader that records (receive time, event) until closed."""

    def __init__(self, url: str, headers: dict | None = None, stop_when=None):
        super().__init__(daemon=True)
        from websockets.sync.client import connect

        self.ws = connect(url, additional_headers=headers or {}, open_timeout=30)
        self.got: list[tuple[float, dict]] = []
        self.stop_when = stop_when
        self.closed = threading.Event()
        self.start()

    def run(self) -> None:
        try:
            for message in self.ws:
                event = json.loads(message)
                self.got.append((time.time(), event))
                if self.stop_when and self.stop_when(event):
                    break
        except Exception:
            pass
        finally:
            self.ws.close()
            self.closed.set()

    def events(self) -> list[dict]:
        return [e for _, e in self.got]

    def saw(self, etype: str, job: str | None = None) -> bool:
        return any(e["type"] == etype and (job is None or e["job_id"] == job) for e in self.events())


def start_runner(root: Path) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "MLSystem.runner"], cwd=root, env=cli_env(root),
                            stdout=open(root / "runner-out.txt", "ab"), stderr=subprocess.STDOUT)


def order_of(events: list[dict], job: str) -> list[str]:
    return [e["type"] for e in events if e["job_id"] == job]


AUTH = {"Authorization": f"Bearer {TOKEN}"}


def test_ws_follows_jobs_through_the_runner_in_order(project):
    cockpit = Cockpit(project, token=TOKEN)
    try:
        q = JobQueue()
        watcher = Client(cockpit.ws(), AUTH, stop_when=lambda e: e["type"] == "drained")
        dropper = Client(cockpit.ws(), AUTH, stop_when=lambda e: e["type"] == "progress")  # drops mid-run
        ok = submit(["dataset=digits", "model=cnn", "max_epochs=2", "log_every_n_steps=2", *FAST], priority=3)
        ok_job = ok.queued[0]["job"]
        bad = q.add(Job(id=new_job_id(), kind="train", args=["dataset=digits", "model=nope"], priority=2,
                        created=now_iso())).id
        long = submit(["dataset=digits", "model=mlp", "max_epochs=3", *LONGER], priority=1).queued[0]["job"]
        runner = start_runner(project)
        wait_for(lambda: watcher.saw("progress", long), 240, "the long job to train")
        q.request_stop(long)
        assert runner.wait(timeout=240) == 0
        wait_for(watcher.closed.is_set, 60, "the drained event")
        assert dropper.closed.wait(5)
        since = dropper.events()[-1]["seq"]
        again = Client(cockpit.ws(f"since={since}"), AUTH, stop_when=lambda e: e["type"] == "drained")
        assert again.closed.wait(60)
    finally:
        exited = cockpit.close()
    assert exited, "the cockpit did not exit on SIGTERM"

    events = watcher.events()
    seqs = [e["seq"] for e in events]
    assert seqs == list(range(seqs[0], seqs[0] + len(seqs))), "sequence numbers: each once, none skipped"
    ok_types = order_of(events, ok_job)
    assert ok_types[:4] == ["queued", "started", "log", "log"], ok_types
    middle = ok_types[4:-2]
    assert middle.count("progress") >= 4 and middle.count("validation_result") == 2, middle
    assert middle[-1] == "validation_result" and ok_types[-2:] == ["status", "finished"]
    first_val = middle.index("validation_result")
    assert "progress" in middle[:first_val] and "progress" in middle[first_val + 1:]
    ok_events = [e for e in events if e["job_id"] == ok_job]
    assert [e["payload"]["epoch"] for e in ok_events if e["type"] == "validation_result"] == [1, 2]
    assert ok_events[-2]["payload"]["status"] == "completed"
    assert ok_events[2]["payload"]["message"].startswith("preparing training")
    assert ok_events[3]["payload"]["message"] == "training started: new run, 2 epochs"
    assert order_of(events, bad) == ["queued", "started", "log", "error", "failed"]
    error = [e for e in events if e["type"] == "error"][0]["payload"]
    assert error["exit_code"] == 2 and "nope" in error["message"]
    long_types = order_of(events, long)
    assert long_types[:4] == ["queued", "started", "log", "log"] and long_types[-2:] == ["status", "stopped"]
    assert [e for e in events if e["job_id"] == long][-2]["payload"]["status"] == "stopped"
    assert events[-1]["type"] == "drained"

    # The dropped client and its reconnection together: every event once.
    union = [e["seq"] for e in dropper.events()] + [e["seq"] for e in again.events()]
    assert union == seqs, "reconnecting with since= lost or repeated events"
    # The terminal follower reads the same numbers (one numbering for every process).
    cli = run_cli(project, "MLSystem.events", "--since", "0", "--no-follow", "--json", check=True).stdout
    by_seq = {e["seq"]: e for e in map(json.loads, cli.splitlines())}
    assert all(by_seq[e["seq"]] == e for e in events)


def _raw_stuck_client(port: int, query: str) -> socket.socket:
    """A websocket client that completes the handshake and then never reads (tiny receive buffer)."""
    s = socket.socket()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    s.connect(("127.0.0.1", port))
    key = base64.b64encode(os.urandom(16)).decode()
    s.sendall((f"GET /api/ws?{query} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUpgrade: websocket\r\n"
               f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n"
               f"Authorization: Bearer {TOKEN}\r\n\r\n").encode())
    return s


class SseClient(threading.Thread):
    def __init__(self, url: str):
        super().__init__(daemon=True)
        self.url, self.got, self.stop = url, [], threading.Event()
        self.ready = threading.Event()  # the response began: the stream counts from the request's arrival
        self.start()

    def run(self) -> None:
        with httpx.stream("GET", self.url, headers={"Authorization": f"Bearer {TOKEN}"}, timeout=None) as r:
            self.ready.set()
            for line in r.iter_lines():
                if line.startswith("data: "):
                    self.got.append((time.time(), json.loads(line[6:])))
                if self.stop.is_set():
                    return


def test_twenty_clients_one_never_reading_keep_low_latency(project):
    paths = ProjectPaths.discover(project)
    # 12 MB of history for the stuck client to choke on.
    history = [{**schema.make("log", time.time(), {"message": "x" * 500}), "seq": i} for i in range(1, 20_001)]
    Journal(paths).append(history)
    cockpit = Cockpit(project, token=TOKEN)
    try:
        from websockets.exceptions import InvalidStatus
        from websockets.sync.client import connect

        with pytest.raises(InvalidStatus):
            connect(cockpit.ws(), open_timeout=10)  # no token: refused like every other route
        with pytest.raises(InvalidStatus):  # a foreign page's script: refused by the Origin check
            connect(cockpit.ws(), additional_headers={**AUTH, "Origin": "http://evil.example"}, open_timeout=10)
        assert httpx.get(f"http://127.0.0.1:{cockpit.port}/api/events?follow=false").status_code == 401

        stuck = _raw_stuck_client(cockpit.port, "since=0")
        stuck_sse = socket.socket()  # the same over SSE
        stuck_sse.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        stuck_sse.connect(("127.0.0.1", cockpit.port))
        stuck_sse.sendall(f"GET /api/events?since=0 HTTP/1.1\r\nHost: 127.0.0.1:{cockpit.port}\r\n"
                          f"Authorization: Bearer {TOKEN}\r\n\r\n".encode())
        readers = [Client(cockpit.ws(), AUTH) for _ in range(18)]
        sse = SseClient(f"http://127.0.0.1:{cockpit.port}/api/events")
        # Every stream is subscribed before the job exists (a ws reader is once its handshake is done).
        assert sse.ready.wait(60), "the SSE response did not begin"
        # A running job on a fake experiment: the test writes its metrics rows like training does.
        q = JobQueue(paths)
        eid = "feedc0ffee00"
        jid = q.add(Job(id=new_job_id(), kind="train", args=["x=1"], experiment_id=eid, created=now_iso())).id
        q.claim_next({"pid": os.getpid(), "host": "test"})
        q.update_running(jid, pid=os.getpid(), started=now_iso(), epochs_before=0)
        wait_for(lambda: all(r.saw("started", jid) for r in readers) and any(
            e["type"] == "started" and e["job_id"] == jid for _, e in sse.got), 30, "every reader to see the job start")
        metrics = paths.experiment(eid).metrics
        metrics.parent.mkdir(parents=True, exist_ok=True)
        n = 300
        with open(metrics, "a") as fh:
            fh.write(json.dumps({"event": "new", "step": 0, "epoch": 0, "max_epochs": 1, "time": time.time()}) + "\n")
            for step in range(1, n + 1):  # 30 s of "training" at 10 logged steps/s
                fh.write(json.dumps({"step": step, "epoch": 0, "loss": 1.0, "lr": 0.1,
                                     "time": round(time.time(), 3)}) + "\n")
                fh.flush()
                time.sleep(0.1 if step < 60 else 0.02)
        everyone = readers + [sse]

        def counts() -> list[int]:
            return [sum(e["type"] == "progress" for _, e in r.got) for r in everyone]
        try:
            wait_for(lambda: min(counts()) >= n, 60, "every reader to receive every step")
        except AssertionError:
            closed = [r.closed.is_set() for r in readers]
            raise AssertionError(f"progress events per reader (last is SSE): {counts()}, ws closed: {closed}, "
                                 f"last types: {[[e['type'] for _, e in r.got][-3:] for r in everyone]}; "
                                 f"cockpit log: {(project / 'gui.log').read_text()[-3000:]}")
        # The stuck clients were dropped: their sockets reach EOF when read now.
        for sock in (stuck, stuck_sse):
            sock.settimeout(60)
            while sock.recv(1 << 20):
                pass
    finally:
        exited = cockpit.close()
    assert exited, "the cockpit did not exit on SIGTERM with clients attached"
    # (latency, step) per reader: a stall shared by every reader at the same steps is the server's
    worst = [max((t - e["time"], e["payload"]["step"]) for t, e in r.got if e["type"] == "progress") for r in everyone]
    for r in everyone:
        lat = sorted(t - e["time"] for t, e in r.got if e["type"] == "progress")
        assert len(lat) == n and lat[-1] <= 1.0, (
            f"latency max {lat[-1]:.2f}s median {lat[len(lat) // 2]:.2f}s; "
            f"worst (s, step) of every reader: {[(round(w, 2), s) for w, s in worst]}")
