"""Job files the queue must not trust: links in pending/ and a teammate's unreadable jobs."""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path

import pytest

from conftest import make_project, run_cli
from os_users import peer_user, run_as
from MLSystem.jobs import Job, Kind, Status, new_job_id
from MLSystem.paths import ProjectPaths
from MLSystem.queue_store import JobQueue


def test_a_symlink_in_pending_is_refused_without_reading_its_target(project, tmp_path):
    secret = tmp_path / "secret.json"
    secret.write_text(json.dumps({"id": "job-5ec2e700", "kind": "train", "args": ["TOP-SECRET-CONTENT"]}))
    JobQueue()  # creates queue/
    link = project / "queue/pending/job-5ec2e700.json"
    link.symlink_to(secret)
    proc = run_cli(project, "MLSystem.submit", "--list", "--json", check=True)
    jobs = {j["id"]: j for j in json.loads(proc.stdout)["jobs"]}
    bad = jobs["job-5ec2e700"]
    assert bad["status"] == Status.FAILED and bad["kind"] == Kind.INVALID
    assert "symbolic link" in bad["error"] and "pending/job-5ec2e700.json" in bad["error"]
    assert "TOP-SECRET" not in proc.stdout  # the target's content is never copied anywhere
    assert not os.path.lexists(link) and secret.read_text().count("TOP-SECRET") == 1  # link gone, target intact
    failed = (project / "queue/failed/job-5ec2e700.json")
    assert not failed.is_symlink() and "TOP-SECRET" not in failed.read_text()


def test_a_fifo_in_pending_does_not_hang_a_listing(project):
    JobQueue()
    os.mkfifo(project / "queue/pending/job-0000f1f0.json")
    proc = run_cli(project, "MLSystem.submit", "--list", "--json", timeout=60, check=True)
    [bad] = json.loads(proc.stdout)["jobs"]
    assert bad["kind"] == Kind.INVALID and "not a regular file" in bad["error"]


@pytest.fixture
def shared_project(monkeypatch):
    """A project both users may enter and write (a group folder in real life; pytest's own
    temporary folders are private to root)."""
    base = Path(tempfile.mkdtemp(prefix="mlsystem-shared-", dir="/tmp"))
    base.chmod(0o777)
    root = make_project(base / "proj")
    monkeypatch.setenv("MLSYSTEM_ROOT", str(root))
    yield root
    shutil.rmtree(base, ignore_errors=True)


def test_a_teammates_unreadable_job_is_skipped_with_a_warning_not_quarantined(shared_project):
    """User A's job file that user B may not read: B's listing must leave it alone."""
    peer = peer_user()
    project = shared_project
    queue = JobQueue()
    for d in [project, *(p for p in project.rglob("*") if p.is_dir())]:
        d.chmod(0o777)
    mine = queue.add(Job(id=new_job_id(), kind="train", args=["dataset=digits", "model=mlp"]))
    theirs = queue.add(Job(id=new_job_id(), kind="train", args=["dataset=digits", "model=cnn"]))
    for job in (mine, theirs):
        queue.paths.job_file(Status.PENDING, job.id).chmod(0o644)
    queue.paths.lock.chmod(0o666)  # the shared lock file (its mode on creation is the umask item's concern)
    private = queue.paths.job_file(Status.PENDING, theirs.id)
    private.chmod(0o600)  # A's umask 077: B cannot read it

    def list_as_peer():
        import io
        import logging

        from MLSystem.queue_store import JobQueue as Q

        buf = io.StringIO()
        logging.getLogger("MLSystem.queue").addHandler(logging.StreamHandler(buf))
        q = Q(ProjectPaths.discover(project))
        listed = [(j.id, j.status) for j in q.list()]
        try:
            q.get(theirs.id)
            refused = ""
        except Exception as exc:  # noqa: BLE001 - the message is what the test checks
            refused = f"{type(exc).__name__}: {exc}"
        return {"listed": listed, "warnings": buf.getvalue(), "refused": refused}

    seen = run_as(peer, list_as_peer)
    assert seen["listed"] == [[mine.id, "pending"]]
    assert f"{private}: cannot be read" in seen["warnings"] and "skipped" in seen["warnings"]
    assert "cannot be read by this user" in seen["refused"]
    assert private.is_file() and not list((project / "queue/failed").iterdir())  # untouched, not quarantined
    assert [j.id for j in JobQueue().pending()] == [mine.id, theirs.id]  # its owner still sees both
