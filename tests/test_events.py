"""The event stream without training or a server: events derived from queue and training files,
one numbering across leaders, followers and restarts, replay from the journal by seq."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import pytest

from MLSystem.events import journal as journal_mod
from MLSystem.events import schema
from MLSystem.events.journal import Journal
from MLSystem.events.source import EventSource
from MLSystem.jobs import Job, Status, new_job_id
from MLSystem.queue_store import JobQueue
from MLSystem.utils.clock import now_iso
from MLSystem.paths import ProjectPaths

EID = "abcdef123456"


class Collect:
    def __init__(self):
        self.events: list[dict] = []

    def __call__(self, events):
        self.events.extend(events)

    def types(self, job: str | None = None) -> list[str]:
        return [e["type"] for e in self.events if job is None or e["job_id"] == job]


def fake_training(exp_dir: Path, steps: int, *, epochs: int = 1, t0: float | None = None, kind: str = "new") -> None:
    """What JobLoggingCallback writes: a run-start row, step rows, epoch rows, progress.json."""
    exp_dir.mkdir(parents=True, exist_ok=True)
    t = t0 or time.time()  # rows are stamped by the training process as it writes them
    rows = [{"event": kind, "step": 0, "epoch": 0, "max_epochs": epochs, "time": t}]
    per = steps // epochs
    for e in range(epochs):
        for s in range(e * per + 1, (e + 1) * per + 1):
            t += 0.0001
            rows.append({"step": s, "epoch": e, "loss": 1.0 / s, "lr": 0.1, "time": round(t, 3)})
        t += 0.0001
        rows.append({"step": (e + 1) * per, "epoch": e, "kind": "epoch", "epoch_time": 0.5, "val_loss": 0.5,
                     "val_acc": 0.9, "time": round(t, 3)})
    with open(exp_dir / "metrics.jsonl", "a") as fh:
        fh.writelines(json.dumps(r) + "\n" for r in rows)
    (exp_dir / "progress.json").write_text(json.dumps({"epoch": epochs, "max_epochs": epochs, "batch": per,
                                                        "batches": per, "step": steps, "loss": 0.1, "lr": 0.1,
                                                        "updated": t}))
    time.sleep(0.01)  # the runner files the job (its end time) after the last row


def run_job(q: JobQueue, job_id: str, status: Status = Status.FINISHED, **fields) -> Job:
    """Claim, start and file a job like the runner does (no process)."""
    job = q.claim_next({"pid": os.getpid(), "host": "test"})
    assert job is not None and job.id == job_id
    q.update_running(job.id, pid=os.getpid(), started=now_iso(), epochs_before=0)
    return job


@pytest.fixture
def paths(tmp_path) -> ProjectPaths:
    p = ProjectPaths(tmp_path / "proj")
    (p.root / "output").mkdir(parents=True)
    return p


def add(q: JobQueue, **kw) -> str:
    jid = new_job_id()
    q.add(Job(id=jid, kind="train", args=["dataset=digits", "model=cnn"], experiment_id=EID, created=now_iso(), **kw))
    return jid


def source_after_one_run(paths: ProjectPaths) -> tuple[JobQueue, Collect, EventSource, str]:
    """An event source that has seen one job queued, started and finished (and the job's id)."""
    q, got = JobQueue(paths), Collect()
    s = EventSource(paths, got)
    s.step()
    jid = add(q)
    run_job(q, jid)
    s.step()
    return q, got, s, jid


def test_a_job_run_yields_queue_and_training_events_in_order(paths):
    q, got = JobQueue(paths), Collect()
    source = EventSource(paths, got)
    source.step()  # first leader: a baseline, nothing announced
    assert got.events == []
    jid = add(q)
    source.step()
    run_job(q, jid)
    source.step()
    fake_training(paths.experiment(EID).dir, steps=8, epochs=2)
    source.step()
    q.complete(q.running(jid), Status.FINISHED, ended=now_iso(), exit_code=0, note="trained", epochs_done=2)
    fail = add(q)
    source.step()
    run_job(q, fail)
    q.complete(q.running(fail), Status.FAILED, ended=now_iso(), exit_code=2,
               error="exit 2 (bad input): === attempt 1\nerror: model: 'nope' is not registered", note="exit 2")
    source.step()
    types = got.types(jid)
    assert types[:4] == ["queued", "started", "log", "log"]
    assert types[4:] == ["progress"] * 4 + ["validation_result"] + ["progress"] * 4 + ["validation_result"] + [
        "status", "finished"]
    events = [e for e in got.events if e["job_id"] == jid]
    assert [e["payload"]["epoch"] for e in events if e["type"] == "validation_result"] == [1, 2]
    assert events[-2]["payload"]["status"] == "completed"
    assert got.types(fail) == ["queued", "started", "log", "error", "failed"]
    err = [e for e in got.events if e["type"] == "error"][0]
    assert err["payload"]["message"] == "error: model: 'nope' is not registered"
    assert [e["seq"] for e in got.events] == list(range(1, len(got.events) + 1))
    assert all(e["experiment_id"] == EID and e["timestamp"] and isinstance(e["time"], float) for e in got.events)
    # The journal holds the same events, and the follower view reads them back by seq.
    assert Journal(paths).read_since(0) == got.events
    assert Journal(paths).read_since(5)[0]["seq"] == 6
    source.stop()


def test_numbering_continues_across_leaders_and_followers(paths):
    """Leader A derives; follower B sees A's numbers; A exits, B takes over and catches up what
    happened meanwhile; a restart (C) goes on from the journal — no number twice, none skipped."""
    q, a_got, b_got = JobQueue(paths), Collect(), Collect()
    a = EventSource(paths, a_got)
    a.step()
    b = EventSource(paths, b_got)
    j1 = add(q)
    a.step()
    b.step()
    assert not b.leader and b_got.events == a_got.events and a_got.types() == ["queued"]
    run_job(q, j1)
    a.step()
    a.stop()  # the cockpit exits mid-run
    fake_training(paths.experiment(EID).dir, steps=4)  # ... while nobody derives
    q.complete(q.running(j1), Status.FINISHED, ended=now_iso(), exit_code=0, note="ok")
    b.step()  # B: reads A's last lines, becomes leader, derives what happened since
    assert b.leader
    seqs = [e["seq"] for e in b_got.events]
    assert seqs == list(range(1, len(seqs) + 1))
    assert b_got.types(j1) == ["queued", "started", "log", "log", "progress", "progress", "progress", "progress",
                               "validation_result", "status", "finished"]
    b.stop()
    c_got = Collect()
    c = EventSource(paths, c_got)
    j2 = add(q)
    c.step()
    assert [e["seq"] for e in c_got.events] == [seqs[-1] + 1] and c_got.types() == ["queued"]
    c.stop()


def test_a_leader_killed_between_append_and_snapshot_does_not_repeat_events(paths):
    q, got = JobQueue(paths), Collect()
    a = EventSource(paths, got)
    a.step()
    jid = add(q)
    a.step()
    run_job(q, jid)
    a.step()
    fake_training(paths.experiment(EID).dir, steps=4)
    a.step()
    n = len(got.events)
    a._lock.release()  # killed: no final snapshot (the last one predates most events)
    a.deriver = None
    with open(Journal(paths).paths.journal, "ab") as fh:
        fh.write(b'{"seq":999,"type":"pro')  # torn last line
    b_got = Collect()
    b = EventSource(paths, b_got, since=n)
    q.complete(q.running(jid), Status.FINISHED, ended=now_iso(), exit_code=0, note="ok")
    b.step()
    assert [e["type"] for e in b_got.events] == ["status", "finished"]
    assert [e["seq"] for e in b_got.events] == [n + 1, n + 2]
    assert [e["seq"] for e in Journal(paths).read_since(0)] == list(range(1, n + 3))
    b.stop()


def test_a_first_leader_announces_only_what_comes_after_it(paths):
    q, got = JobQueue(paths), Collect()
    done = add(q)
    run_job(q, done)
    q.complete(q.running(done), Status.FINISHED, ended=now_iso(), exit_code=0, note="old")
    jid = add(q)
    run_job(q, jid)
    fake_training(paths.experiment(EID).dir, steps=4)  # before anyone watched
    s = EventSource(paths, got)
    s.step()
    assert got.events == []
    with open(paths.experiment(EID).metrics, "a") as fh:
        fh.write(json.dumps({"step": 5, "epoch": 0, "loss": 0.2, "lr": 0.1, "time": time.time()}) + "\n")
    s.step()
    q.complete(q.running(jid), Status.FINISHED, ended=now_iso(), exit_code=0, note="ok")
    s.step()
    assert got.types() == ["progress", "status", "finished"] and got.events[0]["payload"]["step"] == 5
    s.stop()


def test_a_job_caught_between_its_move_and_its_rewrite_is_announced_once(paths):
    """The queue files a job by renaming it into failed/ and then rewriting it: a poll between the
    two sees the old record there, and must wait for the real one."""
    q, got, s, jid = source_after_one_run(paths)
    running = q.paths.job_file(Status.RUNNING, jid)
    failed = q.paths.job_file(Status.FAILED, jid)
    os.replace(running, failed)  # the move ...
    s.step()
    record = json.loads(failed.read_text())
    record.update(status="failed", exit_code=2, error="exit 2 (bad input): ===\nerror: nope", ended=now_iso(),
                  history=[{"attempt": 1, "outcome": "failed"}])
    failed.write_text(json.dumps(record))  # ... then the rewrite
    s.step()
    s.step()
    assert got.types(jid) == ["queued", "started", "log", "error", "failed"]
    assert got.events[-2]["payload"]["message"] == "error: nope"
    s.stop()


def test_resume_rewrites_do_not_repeat_rows(paths):
    """A resume truncates metrics.jsonl (a new inode): rows already sent are not sent again."""
    q, got, s, jid = source_after_one_run(paths)
    exp = paths.experiment(EID).dir
    fake_training(exp, steps=6, epochs=2)
    s.step()
    before = got.types(jid).count("progress")
    rows = [json.loads(x) for x in (exp / "metrics.jsonl").read_text().splitlines()]
    kept = [r for r in rows if r.get("step", 0) <= 3 and not (r.get("kind") == "epoch" and r["step"] > 3)]
    (exp / "metrics.jsonl").unlink()
    (exp / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in kept))
    t = time.time() + 1
    with open(exp / "metrics.jsonl", "a") as fh:
        fh.write(json.dumps({"event": "resume", "step": 3, "epoch": 1, "max_epochs": 2, "time": t}) + "\n")
        fh.write(json.dumps({"step": 4, "epoch": 1, "loss": 0.3, "lr": 0.1, "time": t + 0.01}) + "\n")
    s.step()
    after = [e for e in got.events if e["job_id"] == jid][-2:]
    assert [e["type"] for e in after] == ["log", "progress"] and after[0]["payload"]["run_kind"] == "resume"
    assert got.types(jid).count("progress") == before + 1
    s.stop()


def test_replay_by_seq_across_rotated_segments(paths, monkeypatch):
    monkeypatch.setattr(journal_mod, "SEGMENT_BYTES", 20_000)
    monkeypatch.setattr(journal_mod, "SEARCH_LINEAR_BYTES", 512)
    j = Journal(paths)
    events = [{**schema.make("log", time.time(), {"message": "x" * 50}), "seq": i} for i in range(1, 401)]
    for i in range(0, 400, 7):
        j.append(events[i:i + 7])
    oldest = j.oldest()
    assert oldest and oldest > 1, "older segments are dropped"
    assert j.last() == 400
    for since in (0, oldest - 1, oldest, 200, 399, 400):
        got = j.read_since(since)
        start = max(since, oldest - 1)
        assert [e["seq"] for e in got] == list(range(start + 1, 401)), since
    assert [e["seq"] for e in j.read_since(100, limit=5)] == ([101, 102, 103, 104, 105] if oldest <= 101 else
                                                              list(range(oldest, oldest + 5)))


def test_filters_and_cli_no_follow(paths, monkeypatch, capsys):
    from MLSystem.events.__main__ import main

    q, got = JobQueue(paths), Collect()
    s = EventSource(paths, got)
    s.step()
    jid = add(q)
    other = new_job_id()
    q.add(Job(id=other, kind="train", args=["x=1"], experiment_id="ffff00001111", created=now_iso()))
    s.step()
    s.stop()
    assert schema.matches(got.events[0], experiment=EID[:6]) != schema.matches(got.events[1], experiment=EID[:6])
    monkeypatch.setenv("MLSYSTEM_ROOT", str(paths.root))
    (paths.root / "queue").mkdir(exist_ok=True)
    assert main(["--since", "0", "--no-follow", "--json", "--experiment", "ffff"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert [json.loads(x)["job_id"] for x in lines] == [other]
    assert main(["--since", "0", "--no-follow", "--job", jid[4:]]) == 0
    out = capsys.readouterr().out
    assert "queued" in out and jid in out and other not in out


def test_a_progress_file_read_before_its_metrics_row_does_not_hide_the_row(paths):
    """The callback writes a step's metrics row, then progress.json: a poll that lands between
    the two reads of the deriver sees the progress file first. The row still becomes an event
    (the live chart draws every metrics row from these events)."""
    q, got, s, jid = source_after_one_run(paths)
    exp = paths.experiment(EID).dir
    exp.mkdir(parents=True)
    t = time.time()
    rows = [{"event": "new", "step": 0, "epoch": 0, "max_epochs": 1, "time": t}] + [
        {"step": i, "epoch": 0, "loss": 1.0, "lr": 0.1, "time": round(t + i / 100, 3)} for i in (1, 2)]
    (exp / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    s.step()
    (exp / "progress.json").write_text(json.dumps({"epoch": 1, "max_epochs": 1, "batch": 3, "batches": 10, "step": 3,
                                                   "loss": 0.9, "lr": 0.1, "updated": t + 0.035}))
    s.step()
    with open(exp / "metrics.jsonl", "a") as fh:
        fh.write(json.dumps({"step": 3, "epoch": 0, "loss": 0.9, "lr": 0.1, "time": round(t + 0.03, 3)}) + "\n")
    s.step()
    progress = [(e["source"], e["payload"]["step"]) for e in got.events if e["type"] == "progress"]
    assert progress == [("metrics", 1), ("metrics", 2), ("progress", 3), ("metrics", 3)]
    s.stop()


def test_broker_ring_serves_every_event_after_a_cursor(paths):
    """Clients read the in-memory ring from their cursor: near its end (the live edge) or far back."""
    from MLSystem.events.broker import Broker

    broker = Broker(paths)
    broker.ring.extend({"seq": s} for s in range(5, 105))

    def seqs(cursor: int, limit: int = 1000):
        got = broker._from_ring(cursor, limit)
        return None if got is None else [e["seq"] for e in got]
    assert seqs(3) is None  # older than the ring: read from disk
    assert seqs(4) == list(range(5, 105)) and seqs(4, 10) == list(range(5, 15))
    assert seqs(30, 5) == list(range(31, 36)) and seqs(100) == [101, 102, 103, 104]
    assert seqs(97, 2) == [98, 99] and seqs(104) == [] and seqs(200) == []
