"""The cockpit refuses other websites: a real server (``python -m MLSystem.gui_start``) over real HTTP.

DNS rebinding (a foreign ``Host``) is refused on every route — pages, API, websocket —, a foreign
``Origin`` on any request, and the loopback names, the configured host and the token still work.
"""

from __future__ import annotations

import base64
import os
import re
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from conftest import cli_env, make_project, wait_for
from MLSystem.gui.auth import TOKEN_ENV
from MLSystem.queue_store import JobQueue
from MLSystem.paths import ProjectPaths

TOKEN = "guard-test-token"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_cockpit(root: Path, *args: str, env_extra: dict | None = None) -> tuple[subprocess.Popen, int, Path]:
    port = free_port()
    log = root / f"gui-{port}.log"
    env = cli_env(root, **(env_extra or {}))
    env.pop("PYTEST_CURRENT_TEST", None)  # NiceGUI would think it runs inside pytest
    with open(log, "w") as fh:
        proc = subprocess.Popen([sys.executable, "-m", "MLSystem.gui_start", "--port", str(port), *args], cwd=root,
                                env=env, stdout=fh, stderr=subprocess.STDOUT)

    def up() -> bool:
        if proc.poll() is not None:
            raise AssertionError(f"the cockpit exited: {log.read_text()}")
        with socket.socket() as s:
            return s.connect_ex(("127.0.0.1", port)) == 0

    wait_for(up, 90, "the cockpit to listen")
    return proc, port, log


def stop(proc: subprocess.Popen) -> None:
    proc.terminate()
    try:
        proc.wait(timeout=30)
    except subprocess.TimeoutExpired:
        proc.kill()


@pytest.fixture(scope="module")
def cockpit(tmp_path_factory):
    root = make_project(tmp_path_factory.mktemp("guard") / "proj")
    proc, port, log = start_cockpit(root, "--allow-host", "lab.example.org", env_extra={TOKEN_ENV: TOKEN})
    try:
        yield root, port, log
    finally:
        stop(proc)


def request(port: int, method: str, path: str, host: str, json: dict | None = None, **headers: str) -> httpx.Response:
    """A request to 127.0.0.1:port that claims to be for ``host`` (what a rebound DNS name makes a browser send)."""
    with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=30) as client:
        return client.request(method, path, headers={"Host": host, **headers}, json=json)


def websocket_status(port: int, host: str, origin: str | None = None, token: str | None = TOKEN) -> int:
    """HTTP status of a websocket handshake on NiceGUI's socket.io endpoint (101 = accepted)."""
    key = base64.b64encode(os.urandom(16)).decode()
    lines = [f"GET /_nicegui_ws/socket.io/?EIO=4&transport=websocket{'&token=' + token if token else ''} HTTP/1.1",
             f"Host: {host}", "Upgrade: websocket", "Connection: Upgrade", f"Sec-WebSocket-Key: {key}",
             "Sec-WebSocket-Version: 13"] + ([f"Origin: {origin}"] if origin else [])
    with socket.create_connection(("127.0.0.1", port), timeout=30) as s:
        s.sendall(("\r\n".join(lines) + "\r\n\r\n").encode())
        head = s.recv(4096).decode("latin-1")
    return int(head.split()[1])


def test_foreign_host_is_refused_on_every_kind_of_route(cockpit) -> None:
    root, port, _ = cockpit
    auth = {"Authorization": f"Bearer {TOKEN}"}
    evil = f"evil.example:{port}"
    for path in ("/", "/queue", "/inference", "/api/jobs", "/api/runner", "/docs", "/openapi.json"):
        r = request(port, "GET", path, evil, **auth)
        assert r.status_code == 403 and "Host" in r.json()["detail"], (path, r.status_code, r.text[:200])
    for method, path in (("POST", "/api/runner/start"), ("DELETE", "/api/jobs/job-00000000")):
        assert request(port, method, path, evil, **auth).status_code == 403
    assert websocket_status(port, evil) == 403
    assert JobQueue(ProjectPaths.discover(root)).active_runner() is None


def test_loopback_names_and_the_configured_host_still_work(cockpit) -> None:
    _, port, _ = cockpit
    auth = {"Authorization": f"Bearer {TOKEN}"}
    for host in (f"127.0.0.1:{port}", f"localhost:{port}", f"[::1]:{port}", f"LAB.example.org:{port}",
                 "localhost"):
        r = request(port, "GET", "/api/runner", host, **auth)
        assert r.status_code == 200, (host, r.text)
        assert request(port, "GET", "/queue", host, **auth).status_code == 200
    # The browser's own pages: same-origin requests carry an Origin equal to the Host.
    r = request(port, "POST", "/api/runner/drain", f"localhost:{port}", json={"cancel": True},
                Origin=f"http://localhost:{port}", **auth)
    assert r.status_code == 200, r.text
    assert websocket_status(port, f"127.0.0.1:{port}", origin=f"http://127.0.0.1:{port}") == 101


def test_foreign_origin_is_refused_even_for_bodiless_form_posts(cockpit) -> None:
    root, port, _ = cockpit
    host = f"127.0.0.1:{port}"
    form = {"Content-Type": "application/x-www-form-urlencoded"}
    # What a page on another site can send without a CORS preflight (the probe's reproduction);
    # the token's cookie would ride along with it, so the token alone does not stop it.
    for path in ("/api/runner/start", "/api/jobs/job-00000000/stop", "/api/jobs/job-00000000/requeue",
                 "/api/experiments/abc/plots"):
        for origin in ("http://evil.example", f"http://127.0.0.1:{port + 1}", "null"):
            r = request(port, "POST", path, host, Origin=origin, Cookie=f"mlsystem_token_{port}={TOKEN}", **form)
            assert r.status_code == 403 and "cross-origin" in r.json()["detail"], (path, origin, r.text)
    r = request(port, "GET", "/api/jobs", host, Origin="http://evil.example", Authorization=f"Bearer {TOKEN}")
    assert r.status_code == 403
    assert websocket_status(port, host, origin="http://evil.example") == 403
    assert JobQueue(ProjectPaths.discover(root)).active_runner() is None


def test_loopback_needs_the_token_printed_at_start(tmp_path) -> None:
    """Default: a random token per start (any local user can connect to 127.0.0.1), printed in the URL."""
    root = make_project(tmp_path / "proj")
    proc, port, log = start_cockpit(root)
    try:
        url = wait_for(lambda: re.search(r"http://127\.0\.0\.1:\d+/\?token=(\S+)", log.read_text()), 30,
                       "the start URL")
        token = url.group(1)
        host = f"127.0.0.1:{port}"
        assert request(port, "GET", "/api/runner", host).status_code == 401
        assert request(port, "GET", "/", host).status_code == 401
        assert websocket_status(port, host, token=None) == 403
        r = request(port, "GET", f"/?token={token}", host)
        assert r.status_code == 200
        cookie = r.headers["set-cookie"].split(";")[0]
        assert cookie == f"mlsystem_token_{port}={token}"
        assert request(port, "GET", "/api/runner", host, Cookie=cookie).status_code == 200
    finally:
        stop(proc)


def test_no_token_only_on_loopback(monkeypatch, capsys) -> None:
    from MLSystem.gui_start import parse_args

    monkeypatch.delenv(TOKEN_ENV, raising=False)
    a, b = parse_args([]), parse_args([])
    assert a.token and b.token and a.token != b.token and len(a.token) >= 24
    assert parse_args(["--no-token"]).token is None
    with pytest.raises(SystemExit):
        parse_args(["--host", "0.0.0.0", "--no-token"])
    assert "needs a token" in capsys.readouterr().err


def _upload_head(port: int, *, length: int | None) -> bytes:
    framing = f"Content-Length: {length}" if length is not None else "Transfer-Encoding: chunked"
    return (f"POST /api/inference HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nAuthorization: Bearer {TOKEN}\r\n"
            f"Content-Type: multipart/form-data; boundary=BOUNDARY\r\n{framing}\r\n\r\n").encode()


PART = (b"--BOUNDARY\r\nContent-Disposition: form-data; name=\"experiment\"\r\n\r\nabc\r\n"
        b"--BOUNDARY\r\nContent-Disposition: form-data; name=\"file\"; filename=\"big.wav\"\r\n"
        b"Content-Type: audio/wav\r\n\r\n")


def _status(head: bytes) -> int:
    return int(head.split(b" ", 2)[1])


def test_declared_oversized_upload_is_refused_before_reading_it(cockpit) -> None:
    _, port, _ = cockpit
    with socket.create_connection(("127.0.0.1", port), timeout=30) as s:
        s.sendall(_upload_head(port, length=3_000_000_000) + PART)
        assert _status(s.recv(4096)) == 413


def test_streamed_oversized_upload_is_cut_off_at_the_limit(cockpit) -> None:
    """A chunked 200 MiB upload (no length declared): refused once it passes the cap, unread beyond it."""
    import threading

    from MLSystem.gui.inference import MAX_UPLOAD_BYTES

    _, port, _ = cockpit
    total, chunk = 200 << 20, b"\0" * (256 << 10)
    sent = [0]

    def sender(s: socket.socket) -> None:
        try:
            s.sendall(_upload_head(port, length=None) + f"{len(PART):x}\r\n".encode() + PART + b"\r\n")
            while sent[0] < total:
                s.sendall(f"{len(chunk):x}\r\n".encode() + chunk + b"\r\n")
                sent[0] += len(chunk)
            s.sendall(b"0\r\n\r\n")
        except OSError:  # the server closed the connection: what we want
            pass

    with socket.create_connection(("127.0.0.1", port), timeout=60) as s:
        thread = threading.Thread(target=sender, args=(s,), daemon=True)
        thread.start()
        head = s.recv(4096)
        at_answer = sent[0]
        s.shutdown(socket.SHUT_RDWR)
        thread.join(30)
    assert _status(head) == 413, head[:200]
    # Socket buffers hold a few MiB; the server itself stopped reading at the limit.
    assert at_answer < MAX_UPLOAD_BYTES + (32 << 20) < total, f"{at_answer >> 20} MiB were sent before the answer"
