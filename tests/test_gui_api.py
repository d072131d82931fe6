"""The REST API, driven by its own OpenAPI schema: every operation is exercised, bad IDs and path
traversal are refused, a token (when set) guards every route, oversized uploads are rejected."""

from __future__ import annotations

import json
import os
from typing import Any

import httpx
import pytest
from nicegui.testing import User

from conftest import FAST, wait_for, wait_for_async
from gui_fixtures import experiment_ids
from MLSystem.gui.auth import TOKEN_ENV
from MLSystem.gui.inference import MAX_UPLOAD_BYTES
from MLSystem.jobs import Status
from MLSystem.paths import ProjectPaths
from MLSystem.queue_store import JobQueue

BAD_IDS = ["..%2F..%2Fconfigs", "x%20y", "%2Eenv", "a" * 200]
MLP = ["dataset=digits", "model=mlp", "max_epochs=1", *FAST]


def api_operations(schema: dict[str, Any]) -> set[tuple[str, str]]:
    return {(method.upper(), path) for path, ops in schema["paths"].items() if path.startswith("/api")
            for method in ops}


async def _all_operations(client: httpx.AsyncClient, root, ids: dict[str, str]) -> dict[tuple[str, str], int]:
    """Call every operation once with valid input; returns the status code of each."""
    q = JobQueue(ProjectPaths.discover(root))
    cnn, echo = ids["cnn"], ids["echo"]
    got: dict[tuple[str, str], int] = {}

    async def call(method: str, template: str, url: str, **kw: Any) -> httpx.Response:
        response = await client.request(method, url, **kw)
        got[(method, template)] = response.status_code
        assert response.status_code < 400, (method, url, response.text)
        return response

    r = await call("POST", "/api/jobs", "/api/jobs", json={"overrides": [*MLP, "lr=0.1,0.2"]})
    a, b = [x["job"] for x in r.json()["queued"]]
    await call("POST", "/api/jobs/preview", "/api/jobs/preview", json={"overrides": MLP})
    assert (await call("GET", "/api/jobs", "/api/jobs")).json()["total"] == 2
    await call("GET", "/api/jobs/{job_id}", f"/api/jobs/{a}")
    r = await call("PATCH", "/api/jobs/{job_id}", f"/api/jobs/{a}", json={"overrides": [*MLP, "lr=0.3"], "priority": 2})
    assert "lr=0.3" in r.json()["args"] and r.json()["priority"] == 2
    await call("POST", "/api/jobs/{job_id}/move", f"/api/jobs/{b}/move", json={"before": a})
    assert [j.id for j in q.pending()] == [b, a]
    await call("GET", "/api/jobs/{job_id}/log", f"/api/jobs/{a}/log")
    await call("POST", "/api/jobs/{job_id}/stop", f"/api/jobs/{a}/stop")  # pending: moved to stopped/
    await call("POST", "/api/jobs/{job_id}/requeue", f"/api/jobs/{a}/requeue")
    await call("DELETE", "/api/jobs/{job_id}", f"/api/jobs/{b}")
    assert (await call("GET", "/api/runner", "/api/runner")).json()["runner"] is None
    await call("POST", "/api/runner/drain", "/api/runner/drain", json={"cancel": True})
    await call("GET", "/api/experiments", "/api/experiments", params={"q": "echo"})
    r = await call("GET", "/api/experiments/{experiment_id}", f"/api/experiments/{cnn[:5]}")
    assert r.json()["id"] == cnn and "val_acc" in r.json()["best"]
    r = await call("GET", "/api/experiments/{experiment_id}/metrics", f"/api/experiments/{cnn}/metrics")
    assert r.json()["loss"] and r.json()["events"][0]["event"] == "new"
    await call("GET", "/api/experiments/{experiment_id}/checkpoints", f"/api/experiments/{cnn}/checkpoints")
    await call("GET", "/api/experiments/{experiment_id}/files/{path}", f"/api/experiments/{cnn}/files/config.yaml")
    r = await call("POST", "/api/experiments/{experiment_id}/epochs", f"/api/experiments/{cnn}/epochs",
                   json={"max_epochs": 3})
    assert r.json()["queued"][0]["action"] == "extend"
    await call("POST", "/api/experiments/{experiment_id}/plots", f"/api/experiments/{cnn}/plots")
    r = await call("GET", "/api/checkpoints", "/api/checkpoints", params={"model": "cnn"})
    assert {c["name"] for c in r.json()["checkpoints"]} == {"epoch-0001", "epoch-0002", "last"}
    r = await call("POST", "/api/checkpoints/warm-start", "/api/checkpoints/warm-start",
                   json={"experiment": cnn, "checkpoint": "epoch-0001", "max_epochs": 1, "limit_samples": 64})
    assert r.json()["queued"][0]["action"] == "new"
    assert "echo" in (await call("GET", "/api/inference/models", "/api/inference/models")).json()["models"]
    from test_gui_user import _wav

    r = await call("POST", "/api/inference", "/api/inference", data={"experiment": echo, "checkpoint": "last"},
                   files={"file": ("a.wav", _wav(0.25), "audio/wav")})
    assert r.json()["text"].startswith("echo 4000 samples at 16000 Hz") and r.json()["rtf"] >= 0
    r = await call("GET", "/api/compare", "/api/compare", params={"ids": f"{cnn},{echo[:6]}"})
    assert r.json()["ids"] == [cnn, echo] and "model" in r.json()["differing"]
    from MLSystem.tune.store import StudySpec, StudyStore

    StudyStore(q.project, "s1").write_spec(StudySpec("s1", ["lr=interval(0.01, 0.1)"], "val_acc", "max", 3))
    assert (await call("GET", "/api/studies", "/api/studies")).json()["studies"][0]["name"] == "s1"
    assert (await call("GET", "/api/studies/{name}", "/api/studies/s1")).json()["n_trials"] == 0
    r = await call("GET", "/api/events", "/api/events", params={"since": 0, "follow": "false"})
    assert r.headers["content-type"].startswith("text/event-stream")
    seen = [json.loads(line[6:]) for line in r.text.splitlines() if line.startswith("data: ")]
    # Events are derived from the job files: `b` was deleted a moment after it was queued, so a
    # poll may never have seen it pending (README, Events); `a` stays and must be announced.
    assert ("queued", a) in {(e["type"], e["job_id"]) for e in seen}
    # Last: the runner starts detached and drains what the calls above queued; drain it at once.
    r = await call("POST", "/api/runner/start", "/api/runner/start", json={"slots": 2})
    assert r.json()["options"]["slots"] == 2
    q.request_drain()
    return got


async def test_every_documented_operation_works(user: User, gui_project) -> None:
    client = user.http_client
    schema = (await client.get("/openapi.json")).json()
    got = await _all_operations(client, gui_project, experiment_ids(gui_project))
    assert set(got) == api_operations(schema), "an /api operation without a test (or a test of an undocumented one)"
    _wait_runner_gone(gui_project)


def _wait_runner_gone(root) -> None:
    q = JobQueue(ProjectPaths.discover(root))
    wait_for(lambda: not q.active_runner() and not q.list([Status.RUNNING]), 120, "the runner to drain")


async def test_bad_ids_and_path_traversal_are_refused(user: User, gui_project) -> None:
    client = user.http_client
    cnn = experiment_ids(gui_project)["cnn"]
    schema = (await client.get("/openapi.json")).json()
    for method, path in sorted(api_operations(schema)):
        if "{" not in path:
            continue
        for bad in BAD_IDS:
            url = path.replace("{job_id}", bad).replace("{experiment_id}", bad).replace("{path}", "config.yaml")
            r = await client.request(method, url, json={"max_epochs": 1})
            assert r.status_code in (400, 404, 405, 422), (method, url, r.status_code, r.text)
    for rel in ("..%2F..%2F..%2Fconfigs%2Fregistry.json", "checkpoints/last.ckpt", "plots/..%2F..%2Fexperiment.json",
                "%2Fetc%2Fpasswd", ".lease", "plots/x/../../../../configs/registry.json"):
        r = await client.get(f"/api/experiments/{cnn}/files/{rel}")
        assert r.status_code in (400, 404), (rel, r.status_code)
        assert "registry" not in r.text or r.status_code != 200
    r = await client.post("/api/checkpoints/warm-start", json={"experiment": cnn, "checkpoint": "../x", "max_epochs": 1})
    assert r.status_code == 400 and "checkpoint" in r.json()["detail"]
    r = await client.post("/api/jobs", json={"overrides": ["dataset=digits", "model=cnn", "lr=fast"]})
    assert r.status_code == 400 and any(p.startswith("lr:") for p in r.json()["problems"])


async def test_status_codes_come_from_error_classes(user: User, gui_project) -> None:
    client = user.http_client
    cnn = experiment_ids(gui_project)["cnn"]
    r = await client.get("/api/jobs/job-00000000")
    assert r.status_code == 404 and "no such job" in r.json()["detail"]
    r = await client.get("/api/experiments/0123456789ab")
    assert r.status_code == 404 and "no such experiment" in r.json()["detail"]
    r = await client.get(f"/api/experiments/{cnn}/files/plots/none.png")
    assert r.status_code == 404
    r = await client.post("/api/runner/drain", json={})
    assert r.status_code == 409 and "no runner" in r.json()["detail"]


async def test_a_damaged_experiment_is_listed_and_its_page_names_the_file(user: User, gui_project) -> None:
    client = user.http_client
    cnn = experiment_ids(gui_project)["cnn"]
    meta = ProjectPaths.discover(gui_project).experiment(cnn).metadata
    meta.write_bytes(b"\x00\x01binary\xff")

    async def damaged():
        r = await client.get("/api/experiments", params={"status": "damaged"})
        return r.json()["experiments"]

    [row] = await wait_for_async(damaged, 30, "the damaged experiment in the listing (cached a few seconds)")
    assert row["id"] == cnn and str(meta) in row["error"]
    r = await client.get(f"/api/experiments/{cnn}")
    assert r.status_code == 500 and str(meta) in r.json()["detail"] and "not UTF-8" in r.json()["detail"]


async def test_oversized_and_malformed_uploads(user: User, gui_project) -> None:
    client = user.http_client
    echo = experiment_ids(gui_project)["echo"]
    r = await client.post("/api/inference", data={"experiment": echo},
                          files={"file": ("big.wav", b"\0" * (MAX_UPLOAD_BYTES + 1), "audio/wav")})
    assert r.status_code == 413
    r = await client.post("/api/inference", data={"experiment": echo},
                          files={"file": ("a.wav", b"RIFF not audio", "audio/wav")})
    assert r.status_code == 400 and "not readable audio" in r.json()["detail"]
    r = await client.post("/api/inference", data={"experiment": echo}, files={"file": ("a.exe", b"MZ", "x")})
    assert r.status_code == 400 and "unsupported format" in r.json()["detail"]


@pytest.fixture
def token(gui_project, monkeypatch) -> str:
    monkeypatch.setenv(TOKEN_ENV, "s3cret-token")
    return "s3cret-token"


async def test_token_guards_every_page_and_operation(token: str, user: User) -> None:
    client = user.http_client
    schema = (await client.get("/openapi.json", headers={"Authorization": f"Bearer {token}"})).json()
    for method, path in sorted(api_operations(schema)):
        url = path.replace("{job_id}", "job-00000000").replace("{experiment_id}", "abc").replace("{path}", "x")
        for headers in ({}, {"Authorization": "Bearer wrong"}, {"X-MLSystem-Token": token + "x"}):
            r = await client.request(method, url, headers=headers)
            assert r.status_code == 401, (method, url, headers, r.status_code)
    for page in ("/", "/queue", "/live", "/experiments", "/checkpoints", "/inference", "/docs", "/openapi.json"):
        assert (await client.get(page)).status_code == 401
    assert (await client.get("/api/runner", headers={"X-MLSystem-Token": token})).status_code == 200
    r = await client.get(f"/queue?token={token}")
    assert r.status_code == 200 and "mlsystem_token" in r.headers.get("set-cookie", "")
    assert (await client.get("/api/jobs")).status_code == 200  # the cookie from ?token= carries on


def test_non_loopback_host_needs_a_token(monkeypatch, capsys) -> None:
    from MLSystem.gui_start import parse_args

    monkeypatch.delenv(TOKEN_ENV, raising=False)
    assert parse_args([]).host == "127.0.0.1"
    assert parse_args(["--host", "0.0.0.0"]).token  # a random one, printed at start
    with pytest.raises(SystemExit):
        parse_args(["--host", "0.0.0.0", "--no-token"])
    assert "needs a token" in capsys.readouterr().err
    assert parse_args(["--host", "0.0.0.0", "--token", "t"]).token == "t"
    monkeypatch.setenv(TOKEN_ENV, "from-env")
    assert parse_args(["--host", "192.168.1.5"]).token == "from-env"
    assert os.environ[TOKEN_ENV] == "from-env"


async def test_token_guards_the_websocket_too() -> None:
    """NiceGUI's live updates run over a websocket, which HTTP middleware never sees."""
    from MLSystem.gui.auth import COOKIE, TokenMiddleware

    reached, sent = [], []

    async def app(scope, receive, send):
        reached.append(scope["path"])

    async def send(message):
        sent.append(message)

    async def receive():
        return {"type": "websocket.connect"}

    guard = TokenMiddleware(app, "s3cret")
    socket = {"type": "websocket", "path": "/_nicegui_ws/socket.io/", "query_string": b"", "headers": []}
    await guard(socket, receive, send)
    await guard({**socket, "headers": [(b"cookie", f"{COOKIE}=wrong".encode())]}, receive, send)
    assert reached == [] and [m["code"] for m in sent] == [4401, 4401]
    await guard({**socket, "headers": [(b"cookie", f"{COOKIE}=s3cret".encode())]}, receive, send)
    await guard({**socket, "query_string": b"token=s3cret"}, receive, send)
    assert reached == [socket["path"]] * 2 and len(sent) == 2  # accepted: nothing sent by the guard
