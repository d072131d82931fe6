"""Webhooks sent by the runner, against a local HTTP receiver: one POST per finished/failed job
(and one when the queue drains) with a Slack-style ``text``; secrets in URLs are never printed;
a receiver that fails or hangs never delays the next job."""

from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from conftest import FAST, cli_env, run_cli, wait_for

from MLSystem.events.notify import Webhook, load_webhooks, redact
from MLSystem.jobs import Job, new_job_id
from MLSystem.queue_store import JobQueue
from MLSystem.utils.clock import now_iso, parse_iso
from MLSystem.paths import ProjectPaths
from MLSystem.submit import submit


class Receiver:
    """A local webhook receiver; ``behaviour(path)`` -> "ok" | "fail" | "hang"."""

    def __init__(self, behaviour=lambda path: "ok", hang_s: float = 20.0):
        self.posts: list[tuple[float, str, dict]] = []
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                outer.posts.append((time.time(), self.path.split("?")[0], body))
                how = behaviour(self.path)
                if how == "hang":
                    time.sleep(hang_s)
                self.send_response(500 if how == "fail" else 200)
                self.end_headers()

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def bodies(self, path: str) -> list[dict]:
        return [b for _, p, b in self.posts if p == path]

    def close(self) -> None:
        self.server.shutdown()


def bad_job(q: JobQueue, priority: int = 0) -> str:
    return q.add(Job(id=new_job_id(), kind="train", args=["dataset=digits", "model=nope"], priority=priority,
                     created=now_iso())).id


@pytest.mark.slow
def test_one_post_per_finished_and_failed_job_and_secrets_stay_secret(project: Path):
    rx = Receiver()
    try:
        (project / "configs/notify.yaml").write_text(
            "webhooks:\n  - url: ${HOOK_URL}\n    headers: {Authorization: 'Bearer ${HOOK_TOKEN}'}\n")
        env = cli_env(project, HOOK_URL=f"{rx.url}/yaml?token=SECRET123", HOOK_TOKEN="HEADERSECRET")
        ok = submit(["dataset=digits", "model=mlp", "max_epochs=1", *FAST], priority=1).queued[0]["job"]
        bad = bad_job(JobQueue())
        out = run_cli(project, "MLSystem.runner", "--notify", f"{rx.url}/flag?key=FLAGSECRET", env=env, check=True)
        for path in ("/yaml", "/flag"):
            wait_for(lambda: len(rx.bodies(path)) >= 3, 60, f"3 notifications on {path}")
        time.sleep(1.0)  # nothing more may come
        for path in ("/yaml", "/flag"):
            bodies = rx.bodies(path)
            assert sorted(b["event"] for b in bodies) == ["drained", "failed", "finished"], bodies
            by = {b["event"]: b for b in bodies}
            assert by["finished"]["job_id"] == ok and by["failed"]["job_id"] == bad
            assert f"{ok} finished (digits/mlp" in by["finished"]["text"]
            assert f"{bad} FAILED" in by["failed"]["text"] and "nope" in by["failed"]["text"]
            assert by["drained"]["counts"]["finished"] == 1 and "queue drained" in by["drained"]["text"]
        printed = out.stdout + out.stderr + (project / "queue/logs/notify.log").read_text()
        assert "delivered" in printed and "127.0.0.1" in printed
        for secret in ("SECRET123", "HEADERSECRET", "FLAGSECRET"):
            assert secret not in printed
    finally:
        rx.close()


def test_a_failing_or_hanging_receiver_never_delays_the_next_job(project: Path):
    rx = Receiver(lambda path: "hang" if path.startswith("/hang") else "fail", hang_s=30)
    try:
        (project / "configs/notify.yaml").write_text(
            f"webhooks:\n  - url: {rx.url}/hang\n    timeout: 3\n    retries: 1\n"
            f"  - url: {rx.url}/fail\n    retries: 2\n    events: [failed]\n")
        q = JobQueue()
        jobs = [bad_job(q, priority=-i) for i in range(3)]
        t0 = time.monotonic()
        run_cli(project, "MLSystem.runner", check=True)
        runner_s = time.monotonic() - t0
        records = [q.get(j) for j in jobs]
        assert all(r.status == "failed" for r in records)
        gaps = [parse_iso(b.started) - parse_iso(a.ended) for a, b in zip(records, records[1:])]
        assert max(gaps) < 1.0, f"the runner waited for a receiver between jobs: {gaps}"
        assert len(rx.bodies("/hang")) >= 1 and runner_s < 30, "the runner waited for the hanging receiver"
        # The failing receiver is retried in the background (after the runner is gone).
        wait_for(lambda: len(rx.bodies("/fail")) >= 2 * len(jobs), 30, "retries to the failing receiver")
        log = (project / "queue/logs/notify.log").read_text()
        assert "HTTP 500; retry in" in log
    finally:
        rx.close()


def test_config_errors_name_the_entry_never_the_url(tmp_path, monkeypatch):
    paths = ProjectPaths(tmp_path)
    (tmp_path / "configs").mkdir()
    config = tmp_path / "configs/notify.yaml"
    config.write_text("webhooks:\n  - url: https://hooks.example.com/services/T0/B0/TOPSECRET\n    events: [done]\n")
    with pytest.raises(ValueError) as err:
        load_webhooks(paths)
    assert "webhooks[0].events" in str(err.value) and "TOPSECRET" not in str(err.value)
    config.write_text("webhooks:\n  - url: ${NOT_SET_ANYWHERE}\n")
    monkeypatch.delenv("NOT_SET_ANYWHERE", raising=False)
    with pytest.raises(ValueError, match=r"\$\{NOT_SET_ANYWHERE\} is not set"):
        load_webhooks(paths)
    hook = Webhook("https://hooks.example.com/services/T0/B0/TOPSECRET")
    assert "TOPSECRET" not in repr(hook) and redact(hook.url) == "https://hooks.example.com/…"
    config.unlink()
    assert load_webhooks(paths) == []
