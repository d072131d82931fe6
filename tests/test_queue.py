"""The queue module and the submit CLI without training: schema, order, edits, validation,
quarantine of bad files, stop/requeue, sweeps, duplicates and ETAs."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from conftest import FAST, run_cli
from MLSystem.eta import estimate
from MLSystem.jobs import VERSION, Job, Kind, QueueError, Status, job_from_dict, new_job_id
from MLSystem.queue_store import JobQueue
from MLSystem.submit import submit

CNN = ["dataset=digits", "model=cnn", "max_epochs=2", *FAST]


def qjob(queue: JobQueue, *args: str, priority: int = 0) -> Job:
    return queue.add(Job(id=new_job_id(), kind="train", args=list(args or ["dataset=digits", "model=mlp"]),
                         priority=priority))


def order(queue: JobQueue) -> list[str]:
    return [j.id for j in queue.pending()]


def files(root: Path, status: str) -> list[str]:
    return sorted(p.stem for p in (root / "queue" / status).glob("*.json"))


# -- schema ----------------------------------------------------------------------------------------
def test_job_round_trips_and_keeps_unknown_keys(project):
    data = {"id": "job-00000001", "kind": "train", "args": ["lr=0.1"], "future_field": {"x": 1}}
    job = job_from_dict(data)
    assert job.version == VERSION and job.priority == 0 and job.extra == {"future_field": {"x": 1}}
    assert job_from_dict(job.to_dict()).to_dict() == job.to_dict()


@pytest.mark.parametrize("data, message", [
    ({"id": "a", "kind": "train", "args": [], "version": 99}, "version 99 is not supported"),
    ({"id": "a", "kind": "train"}, "missing field 'args'"),
    ({"id": "a", "kind": "train", "args": [], "priority": "high"}, "field 'priority': expected int"),
    ({"id": "a", "kind": "train", "args": [], "priority": True}, "field 'priority': expected int"),
    ({"id": "a", "kind": "bake", "args": []}, "'bake' is not one of train, plot"),
    ({"id": "a", "kind": "train", "args": [1]}, "list of strings"),
    ([1, 2], "expected a JSON object"),
])
def test_invalid_jobs_are_named(data, message):
    with pytest.raises(ValueError, match=message):
        job_from_dict(data)


# -- order and edits --------------------------------------------------------------------------------
def test_order_is_priority_then_position_then_age(project):
    q = JobQueue()
    a, b = qjob(q), qjob(q)
    c = qjob(q, priority=5)
    d = qjob(q, priority=-1)
    assert order(q) == [c.id, a.id, b.id, d.id]
    q.move(b.id, before=a.id)
    assert order(q) == [c.id, b.id, a.id, d.id]
    q.move(c.id, after=d.id)  # takes d's priority, runs last
    assert order(q) == [b.id, a.id, d.id, c.id] and q.get(c.id).priority == -1
    q.run_next(d.id)
    assert order(q)[0] == d.id
    q.set_priority(a.id, 10)
    assert order(q)[0] == a.id
    q.delete(b.id)
    assert b.id not in order(q) and not (project / "queue/pending" / f"{b.id}.json").exists()


def test_claim_skips_held_and_busy_jobs(project):
    q = JobQueue()
    a, b, c = qjob(q), qjob(q), qjob(q)
    q.hold(a.id)
    claimed = q.claim_next({"pid": 1}, busy=lambda j: "busy" if j.id == b.id else None, backoff_s=60)
    assert claimed.id == c.id and claimed.status == "running" and claimed.attempts == 1
    assert files(project, "running") == [c.id]
    assert q.get(b.id).note == "waiting: busy" and q.get(b.id).not_before > time.time()
    assert q.claim_next({"pid": 1}) is None  # a held, b backing off
    assert 0 < q.next_wakeup() <= 60
    q.release(a.id)
    assert q.claim_next({"pid": 1}).id == a.id


def test_only_pending_jobs_can_be_edited(project):
    q = JobQueue()
    a = qjob(q)
    q.claim_next({"pid": 1})
    for action in (lambda: q.set_priority(a.id, 3), lambda: q.hold(a.id), lambda: q.delete(a.id)):
        with pytest.raises(QueueError, match=f"{a.id} is running"):
            action()


def test_stop_and_requeue(project):
    q = JobQueue()
    a, b = qjob(q), qjob(q)
    job, msg = q.request_stop(a.id)
    assert "moved to stopped/" in msg and files(project, "stopped") == [a.id]
    running = q.claim_next({"pid": 1})
    assert running.id == b.id
    job, msg = q.request_stop(b.id)
    assert "stop requested" in msg and q.paths.stop_flag(b.id).exists() and q.get(b.id).stop_requested
    q.complete(running, Status.FINISHED, exit_code=0)
    assert not q.paths.stop_flag(b.id).exists()
    with pytest.raises(QueueError, match="larger max_epochs"):
        q.requeue(b.id)
    q.requeue(a.id)
    assert order(q) == [a.id] and q.get(a.id).attempts == 0


def test_recover_requeues_orphans_without_spending_attempts_and_files_done_ones(project):
    """A runner's death is not the job's failure (issue 14 item 5): orphans go back to pending as
    often as the runner dies, and one whose work is complete is filed finished, not run again."""
    q = JobQueue()
    a = q.add(Job(id=new_job_id(), kind="train", args=[], max_attempts=2))
    for _ in range(5):
        assert q.claim_next({"pid": 999999}).attempts == 1
        [(job, status)] = q.recover()
        assert job.id == a.id and status == Status.PENDING and q.get(a.id).attempts == 0
    assert "not counted toward max_attempts" in q.get(a.id).note
    q.claim_next({"pid": 999999})
    [(job, status)] = q.recover(done=lambda j: "abc complete (2/2 epochs)")
    assert status == Status.FINISHED and q.get(a.id).note.startswith("abc complete (2/2 epochs) (filed at recovery")
    assert [h["outcome"] for h in q.get(a.id).history] == ["pending"] * 5 + ["finished"]


def test_job_ids_resolve_from_a_unique_prefix(project):
    q = JobQueue()
    a = qjob(q)
    assert q.resolve(a.id[:8]) == a.id and q.resolve(a.id[4:]) == a.id
    with pytest.raises(QueueError, match="no such job"):
        q.resolve("job-zzzz")


# -- bad files --------------------------------------------------------------------------------------
@pytest.mark.parametrize("content, problem", [
    ("{not json", "Expecting property name"),
    (json.dumps({"id": "x", "kind": "train", "args": [], "version": 2}), "version 2 is not supported"),
    (json.dumps({"id": "other", "kind": "train", "args": []}), "does not match the file name"),
])
def test_bad_files_are_moved_to_failed_with_the_error(project, content, problem):
    q = JobQueue()
    good = qjob(q)
    (project / "queue/pending/x.json").write_text(content)
    (project / "queue/pending/.x.json.123.tmp").write_text("{half")  # a write in progress: ignored
    assert [j.id for j in q.list()] == [good.id, "x"]
    bad = q.get("x")
    assert bad.status == "failed" and bad.kind == Kind.INVALID.value and problem in bad.error
    assert bad.extra["raw"] == content and "pending/x.json" in bad.error
    assert (project / "queue/pending/.x.json.123.tmp").exists()
    with pytest.raises(QueueError, match="unreadable file"):
        q.requeue("x")


# -- submit ---------------------------------------------------------------------------------------
def test_submit_prints_job_experiment_and_action(project):
    proc = run_cli(project, "MLSystem.submit", *CNN, "--priority", "5", check=True)
    job_id, eid = proc.stdout.split()[1], proc.stdout.split()[3]
    assert proc.stdout.startswith("queued job-") and f"new experiment {eid}" in proc.stdout
    job = JobQueue().get(job_id)
    assert (job.experiment_id, job.priority, job.action, job.max_epochs) == (eid, 5, "new", 2)
    listed = json.loads(run_cli(project, "MLSystem.submit", "--list", "--json", check=True).stdout)
    assert [(j["id"], j["status"], j["experiment_id"]) for j in listed["jobs"]] == [(job_id, "pending", eid)]
    again = run_cli(project, "MLSystem.submit", *CNN, "--json", check=True)
    report = json.loads(again.stdout)
    assert report["queued"] == [] and f"already pending as {job_id}" in report["skipped"][0]["reason"]
    forced = json.loads(run_cli(project, "MLSystem.submit", *CNN, "--force", "--json", check=True).stdout)
    assert forced["queued"][0]["experiment_id"] == eid and len(files(project, "pending")) == 2


@pytest.mark.parametrize("args, message", [
    (["dataset=digits", "model=nope"], "model=nope: not in registry.json"),
    (["dataset=digitz", "model=cnn"], "dataset=digitz"),
    (["dataset=digits", "model=cnn", "lrr=0.1"], "lrr: unknown parameter"),
    (["dataset=digits", "model=cnn", "lr=fast"], "lr: 'fast' is not a valid float"),
    (["dataset=digits", "model=cnn", "lr=0.1,oops"], "sweep combination"),
    (["dataset=digits", "model=cnn", "adapter=nope"], "adapter=nope"),
])
def test_submit_rejects_bad_input_and_writes_nothing(project, args, message):
    proc = run_cli(project, "MLSystem.submit", *args)
    assert proc.returncode == 2 and message in proc.stderr and proc.stderr.count("\n") == 1
    assert "Traceback" not in proc.stderr
    assert not any((project / "queue").rglob("*.json"))


def test_sweep_is_the_cross_product(project):
    report = submit(["dataset=digits", "model=mlp", "lr=0.1,0.01", "seed=range(1,4)", *FAST])
    assert len(report.queued) == 6 and len({q["experiment_id"] for q in report.queued}) == 6
    combos = {tuple(sorted(a for a in q["args"] if a.startswith(("lr=", "seed=")))) for q in report.queued}
    assert combos == {(f"lr={lr}", f"seed={s}") for lr in ("0.1", "0.01") for s in (1, 2, 3)}
    assert len(JobQueue().pending()) == 6
    # lr=0.1 and lr=1e-1 are one experiment: queued once
    report = submit(["dataset=digits", "model=mlp", "lr=0.5,5e-1", *FAST])
    assert len(report.queued) == 1 and "earlier combination" in report.skipped[0]["reason"]


def test_cli_controls(project):
    ids = [json.loads(run_cli(project, "MLSystem.submit", "dataset=digits", "model=mlp", f"lr=0.{i}", "--json",
                              check=True).stdout)["queued"][0]["job"] for i in (1, 2, 3)]
    run_cli(project, "MLSystem.submit", "--next", ids[2][4:], check=True)
    run_cli(project, "MLSystem.submit", "--hold", ids[0], check=True)
    run_cli(project, "MLSystem.submit", "--move", ids[1], "--before", ids[2], check=True)
    q = JobQueue()
    assert order(q) == [ids[1], ids[2], ids[0]] and q.get(ids[0]).held
    edited = run_cli(project, "MLSystem.submit", "--edit", ids[1], "lr=0.7", "max_epochs=4", check=True)
    job = q.get(ids[1])
    assert "lr=0.7" in job.args and "lr=0.2" not in job.args and job.max_epochs == 4
    assert job.experiment_id in edited.stdout
    bad = run_cli(project, "MLSystem.submit", "--edit", ids[1], "lr=abc")
    assert bad.returncode == 2 and "lr: 'abc'" in bad.stderr and q.get(ids[1]).args == job.args
    out = run_cli(project, "MLSystem.submit", "--list", check=True).stdout
    assert out.index(ids[1]) < out.index(ids[2]) < out.index(ids[0]) and "held" in out
    run_cli(project, "MLSystem.submit", "--stop", ids[2], check=True)
    run_cli(project, "MLSystem.submit", "--delete", ids[0], check=True)
    assert files(project, "stopped") == [ids[2]] and files(project, "pending") == [ids[1]]
    run_cli(project, "MLSystem.submit", "--requeue", ids[2], check=True)
    assert sorted(files(project, "pending")) == sorted([ids[1], ids[2]])
    missing = run_cli(project, "MLSystem.submit", "--stop", "job-ffffffff")
    assert missing.returncode == 2 and "no such job" in missing.stderr
    assert "no runner is active" in run_cli(project, "MLSystem.submit", "--drain", check=True).stdout


def test_plot_jobs_need_an_existing_experiment(project):
    proc = run_cli(project, "MLSystem.submit", "--plot", "abcdef")
    assert proc.returncode == 2 and "no such experiment" in proc.stderr
    exp = project / "output/experiments/abcdef123456"
    exp.mkdir(parents=True)
    proc = run_cli(project, "MLSystem.submit", "--plot", "abcdef", "--json", check=True)
    job = JobQueue().get(json.loads(proc.stdout)["queued"][0]["job"])
    assert (job.kind, job.args) == ("plot", ["abcdef123456"])


# -- ETA ------------------------------------------------------------------------------------------
def _fake_history(project: Path, eid: str, meta: dict, epoch_times: list[float], epochs_done: int) -> None:
    d = project / "output/experiments" / eid
    d.mkdir(parents=True)
    (d / "experiment.json").write_text(json.dumps({"id": eid, **meta}))
    (d / "metrics.jsonl").write_text("".join(json.dumps({"kind": "epoch", "step": i, "epoch_time": t}) + "\n"
                                             for i, t in enumerate(epoch_times)))
    (d / "state.json").write_text(json.dumps({"epochs_completed": epochs_done}))


def test_eta_uses_epoch_times_of_similar_runs(project):
    ident = {"dataset": "digits", "model": "mlp", "adapter": "digits"}
    _fake_history(project, "aaaaaaaaaaaa", {**ident, "identity_values": {"lr": 0.1, "hidden": 64}}, [2.0, 2.0], 2)
    _fake_history(project, "bbbbbbbbbbbb", {**ident, "identity_values": {"lr": 0.1, "hidden": 512}}, [9.0], 1)
    q = JobQueue()
    mk = lambda args, eid, epochs: q.add(Job(id=new_job_id(), kind="train", args=args, experiment_id=eid,
                                             max_epochs=epochs, **ident))
    resume = mk(["hidden=64"], "aaaaaaaaaaaa", 5)  # its own history: 3 more epochs of 2 s
    similar = mk(["hidden=64", "lr=0.3"], "cccccccccccc", 2)  # nearest: aaaa (differs in lr only)
    unknown = Job(id=new_job_id(), kind="train", args=[], dataset="digits", model="cnn", max_epochs=1)
    q.add(unknown)
    later = mk(["hidden=512"], "dddddddddddd", 1)
    nothing_alike = mk(["hidden=1024"], "eeeeeeeeeeee", 1)  # no run shares a value: the median of all
    eta = estimate(q)
    startup = 5.0
    assert eta[resume.id].start_in == pytest.approx(0, abs=0.01)
    assert eta[resume.id].duration == pytest.approx(startup + 3 * 2.0)
    assert eta[similar.id].duration == pytest.approx(startup + 2 * 2.0)
    assert eta[similar.id].start_in == pytest.approx(eta[resume.id].duration)
    assert eta[unknown.id].duration is None and not eta[unknown.id].lower_bound
    assert eta[later.id].duration == pytest.approx(startup + 9.0) and eta[later.id].lower_bound
    assert eta[nothing_alike.id].duration == pytest.approx(startup + (2.0 + 9.0) / 2)


def test_eta_counts_parallel_slots_and_one_experiment_at_a_time(project):
    ident = {"dataset": "digits", "model": "mlp", "adapter": "digits"}
    _fake_history(project, "aaaaaaaaaaaa", {**ident, "identity_values": {"lr": 0.1}}, [2.0], 1)
    q = JobQueue()
    mk = lambda eid, epochs: q.add(Job(id=new_job_id(), kind="train", args=["lr=0.1"], experiment_id=eid,
                                       max_epochs=epochs, **ident))
    first, same, other, last = mk("bbbbbbbbbbbb", 1), mk("bbbbbbbbbbbb", 2), mk("cccccccccccc", 1), mk("dddddddddddd", 1)
    each = 5.0 + 2.0  # startup + one epoch of the similar run
    two = estimate(q, slots=2)
    # `same` trains the experiment `first` trains: it waits for it although a slot is free.
    assert [two[j.id].start_in for j in (first, same, other, last)] == pytest.approx([0, each, 0, each])
    one = estimate(q, slots=1)
    assert [one[j.id].start_in for j in (first, same, other, last)] == pytest.approx([0, each, 2 * each, 3 * each])
