"""The runner with several slots, end to end through real subprocesses: concurrency, per-job slot and
thread budget, GPU placement through the fake-GPU seam, per-job controls with two jobs running,
runner SIGKILL at several points, and recovery that neither fails a finished job nor spends a job's
attempts on the runner's own deaths (issue 14 item 5)."""

from __future__ import annotations

import json
import re
import signal
import subprocess
import sys

import pytest
from conftest import FAST, cli_env, job_record, queue_folders, run_cli, wait_for
from test_runner import LONGER, STEPS, finish, queued, running_pid, start_runner, state, training_started

from MLSystem.queue_store import JobQueue
from MLSystem.utils.clock import parse_iso
from MLSystem.utils.procs import pid_alive

pytestmark = pytest.mark.slow
BIG, BIG_STEPS = ["n_train=16384", "n_val=64", "batch_size=32"], 512


def peak_concurrency(records: list[dict]) -> int:
    """Most jobs running at one instant, from the records' start/end times."""
    events = sorted([(parse_iso(r["started"]), 1) for r in records] + [(parse_iso(r["ended"]), -1) for r in records],
                    key=lambda e: (e[0], e[1]))  # an end before a start at the same instant
    peak = now = 0
    for _, delta in events:
        now += delta
        peak = max(peak, now)
    return peak


def slot_line(root, job_id: str) -> str:
    """What the job process itself reported about its slot (``placement.report_placement``)."""
    text = (root / "queue/logs" / f"{job_id}.log").read_text()
    lines = [ln for ln in text.splitlines() if ln.startswith("slot ")]
    assert lines, text
    return lines[-1]


def test_four_jobs_two_slots_each_in_its_slot_with_its_thread_budget(project):
    jobs = [queued("dataset=digits", "model=mlp", f"lr={lr}", "max_epochs=2", *FAST)[0]
            for lr in (0.1, 0.2, 0.3, 0.4)]
    assert run_cli(project, "MLSystem.runner", "--slots", "2", "--threads", "1", check=True).returncode == 0
    assert queue_folders(project)["finished"] == sorted(jobs)
    records = [job_record(project, j) for j in jobs]
    assert peak_concurrency(records) == 2
    for r in records:
        assert r["placement"] == {"slot": r["placement"]["slot"], "gpus": [], "threads": 1}
        assert r["placement"]["slot"] in (0, 1) and r["attempts"] == 1
        assert slot_line(project, r["id"]).startswith(f"slot {r['placement']['slot']}: torch uses 1 CPU thread(s)")
    # Jobs that overlapped in time ran in different slots.
    for a in records:
        for b in records:
            if a["id"] < b["id"] and parse_iso(a["started"]) < parse_iso(b["ended"]) \
                    and parse_iso(b["started"]) < parse_iso(a["ended"]):
                assert a["placement"]["slot"] != b["placement"]["slot"]
    listed = run_cli(project, "MLSystem.submit", "--list", "--all", "--json", check=True).stdout
    assert all(j["placement"]["threads"] == 1 for j in json.loads(listed)["jobs"])


def test_fake_gpus_disjoint_devices_two_for_a_two_gpu_job_busy_gpu_skipped(project):
    """Four fake GPUs, GPU 1 busy outside the queue. The jobs ask for GPUs (they then fail on this
    CPU machine at Lightning's GPU check — after reporting what they were given, which is the point)."""
    two = queued("dataset=digits", "model=mlp", "accelerator=gpu", "lr=0.5", "devices=2", "max_epochs=1", *FAST)[0]
    one = [queued("dataset=digits", "model=mlp", "accelerator=gpu", f"lr={lr}", "devices=1", "max_epochs=1",
                  *FAST)[0] for lr in (0.1, 0.2)]
    cpu = queued("dataset=digits", "model=mlp", "accelerator=cpu", "lr=0.7", "max_epochs=1", *FAST)[0]
    env = cli_env(project, MLSYSTEM_FAKE_GPUS="4:busy=1")
    out = run_cli(project, "MLSystem.runner", "--gpus", "all", "--json", env=env, check=True).stdout
    events = [json.loads(line) for line in out.splitlines()]
    assert events[0]["event"] == "slots" and events[0]["gpus"] == ["0", "1", "2", "3"]
    placed = {j: job_record(project, j)["placement"] for j in (two, *one, cpu)}
    assert placed[two]["gpus"] == ["0", "2"]  # two GPUs, skipping the busy one
    assert all(len(placed[j]["gpus"]) == 1 for j in one) and placed[cpu]["gpus"] == []
    assert all("1" not in p["gpus"] for p in placed.values())
    started = {e["job"]: e for e in events if e["event"] == "started"}
    recs = {j: job_record(project, j) for j in placed}
    for a in placed:
        for b in placed:
            overlap = a < b and parse_iso(recs[a]["started"]) < parse_iso(recs[b]["ended"]) \
                and parse_iso(recs[b]["started"]) < parse_iso(recs[a]["ended"])
            if overlap:
                assert not set(placed[a]["gpus"]) & set(placed[b]["gpus"]), (a, b, placed)
    for j, p in placed.items():
        assert started[j]["gpus"] == p["gpus"]
        seen = re.search(r"CUDA_VISIBLE_DEVICES=([0-9,]*) ", slot_line(project, j)).group(1)
        assert seen == ",".join(p["gpus"])  # the job's own environment
    assert job_record(project, cpu)["status"] == "finished"
    # A job needing more GPUs than the runner has is failed with the reason, not left waiting forever.
    big = queued("dataset=digits", "model=mlp", "accelerator=gpu", "lr=0.9", "devices=8", "max_epochs=1", *FAST)[0]
    run_cli(project, "MLSystem.runner", "--gpus", "0,2", env=env, check=True)
    assert job_record(project, big)["error"] == "cannot run here: needs 8 GPUs; this runner has 2 (--gpus 0,2)"


def test_stop_one_running_job_the_others_go_on_then_sigterm_stops_all(project):
    # Three jobs start in one round; each long enough (1,024 steps) to still train when the others do.
    a, ea = queued("dataset=digits", "model=mlp", "max_epochs=2", *BIG)
    b, eb = queued("dataset=digits", "model=mlp", "lr=0.2", "max_epochs=2", *BIG)
    c, ec = queued("dataset=digits", "model=mlp", "lr=0.3", "max_epochs=2", *BIG)
    runner = start_runner(project, "--slots", "3")
    wait_for(lambda: all(training_started(project, j) for j in (a, b, c)), timeout=300, what="a, b and c mid-training")
    pids = {j: running_pid(project, j) for j in (b, c)}
    run_cli(project, "MLSystem.submit", "--stop", a, check=True)
    wait_for(lambda: job_record(project, a)["status"] == "stopped", timeout=120, what="a stopped")
    for j in (b, c):  # untouched: same process, still running
        assert job_record(project, j)["status"] == "running" and running_pid(project, j) == pids[j]
        assert pid_alive(pids[j]) and not job_record(project, j)["stop_requested"]
    listed = run_cli(project, "MLSystem.submit", "--list", check=True).stdout
    assert f"pid {runner.pid}" in listed and ", 3 slots" in listed
    for j in (b, c):
        line = next(ln for ln in listed.splitlines() if ln.startswith("running") and j in ln)
        assert f"slot {job_record(project, j)['placement']['slot']}  pid" in line
    runner.send_signal(signal.SIGTERM)  # every running job checkpoints and stays queued
    assert finish(runner) == 3
    for job, eid in ((b, eb), (c, ec)):
        rec = job_record(project, job)
        assert rec["status"] == "pending" and "runner stopped by SIGTERM" in rec["note"] and rec["attempts"] == 0
        assert 0 < state(project, eid)["global_step"] < 2 * BIG_STEPS
    assert job_record(project, a)["history"][-1]["exit_code"] == 3
    run_cli(project, "MLSystem.submit", "--requeue", a, check=True)
    assert finish(start_runner(project, "--slots", "2")) == 0
    assert queue_folders(project)["finished"] == sorted([a, b, c])
    for eid in (ea, eb, ec):
        assert state(project, eid)["epochs_completed"] == 2 and state(project, eid)["global_step"] == 2 * BIG_STEPS


def test_sigkill_runner_with_two_slots_each_job_finishes_once_attempts_not_spent(project):
    """Runner SIGKILLed after a claim, mid-training of two jobs and after a job's exit: every job
    finishes exactly once with the right final epoch, although each may run only twice
    (max_attempts=2): the runner's deaths are not the jobs' failures."""
    q = JobQueue()
    a, ea = queued("dataset=digits", "model=mlp", "max_epochs=3", *LONGER, priority=1)
    b, eb = queued("dataset=digits", "model=cnn", "max_epochs=2", *LONGER, priority=1)
    c, ec = queued("dataset=digits", "model=mlp", "lr=0.3", "max_epochs=1", *FAST)
    for job in (a, b, c):
        q.edit(job, max_attempts=2)
    # 1. killed right after claiming (both slots' jobs are claimed in one pass)
    assert finish(start_runner(project, "--slots", "2", fault="after_claim")) == -signal.SIGKILL
    assert queue_folders(project)["running"] == sorted([a, b])
    # 2. killed while a and b train: both children get SIGTERM, checkpoint and exit
    r = start_runner(project, "--slots", "2")
    wait_for(lambda: training_started(project, a, steps=10) and training_started(project, b, steps=10),
             timeout=300, what="a and b mid-training")
    children = [running_pid(project, a), running_pid(project, b)]
    r.send_signal(signal.SIGKILL)
    assert finish(r) == -signal.SIGKILL
    wait_for(lambda: not any(pid_alive(p) for p in children), timeout=60, what="orphaned jobs to stop")
    assert 10 <= state(project, ea)["global_step"] < 3 * STEPS
    # 3. killed after a child exited, before filing it (the other one is mid-training)
    assert finish(start_runner(project, "--slots", "2", fault="after_exit")) == -signal.SIGKILL
    wait_for(lambda: not any(pid_alive(running_pid(project, j)) for j in queue_folders(project)["running"]),
             timeout=60, what="orphaned jobs to stop")
    # 4. a clean runner files what finished, resumes the rest
    assert finish(start_runner(project, "--slots", "2")) == 0
    assert queue_folders(project) == {"pending": [], "running": [], "finished": sorted([a, b, c]), "failed": [],
                              "stopped": []}
    expect = {ea: (3, 3 * STEPS), eb: (2, 2 * STEPS), ec: (1, 8)}
    for eid, (epochs, steps) in expect.items():
        assert (state(project, eid)["epochs_completed"], state(project, eid)["global_step"]) == (epochs, steps)
    for job in (a, b, c):
        rec = job_record(project, job)
        outcomes = [h["outcome"] for h in rec["history"]]
        assert outcomes.count("finished") == 1 and outcomes[-1] == "finished" and rec["attempts"] <= 1, rec
    out = (project / "runner-out.txt").read_text()
    assert "filed at recovery" in out  # the job that exited before the kill was filed, not rerun


def test_killed_between_exit_and_filing_is_filed_finished_not_failed(project):
    """Issue 14 item 5: MLSYSTEM_RUNNER_FAULT=after_exit with max_attempts=1 used to file the job
    failed ("job-…: None") although state.json said complete."""
    job, eid = queued("dataset=digits", "model=mlp", "max_epochs=1", *FAST)
    JobQueue().edit(job, max_attempts=1)
    assert finish(start_runner(project, fault="after_exit")) == -signal.SIGKILL
    assert queue_folders(project)["running"] == [job] and state(project, eid)["epochs_completed"] == 1
    out = run_cli(project, "MLSystem.runner", check=True).stdout
    rec = job_record(project, job)
    assert rec["status"] == "finished", rec
    assert rec["note"].startswith(f"{eid} complete (1/1 epochs) (filed at recovery")
    assert "None" not in out and len(rec["history"]) == 1


CALLS: list[tuple] = []


class _Recorder:
    """A job hook (``MLSystem.job_hooks``) that records every call."""

    def job_started(self, job):
        CALLS.append(("started", job.id))

    def job_polled(self, job):
        CALLS.append(("polled", job.id))

    def job_ended(self, job):
        CALLS.append(("ended", job.id, job.status))

    def queue_drained(self, counts):
        CALLS.append(("drained", dict(counts)))


def recorder(paths):
    return _Recorder()


def test_job_hooks_are_called_per_job_with_two_slots(project, monkeypatch):
    """Webhooks and study pruning rely on these calls: each job's start, polls and end, in order,
    also while another job runs beside it; one queue_drained at the end."""
    from MLSystem import job_hooks
    from MLSystem.executor import LocalExecutor
    from MLSystem.runner import Runner
    from MLSystem.scheduler import Pool

    monkeypatch.setattr(job_hooks, "FACTORIES", ["test_slots:recorder"])
    jobs = [queued("dataset=digits", "model=mlp", f"lr={lr}", "max_epochs=1", *FAST)[0] for lr in (0.1, 0.2, 0.3)]
    CALLS.clear()
    runner = Runner(JobQueue(), executor=LocalExecutor(Pool(slots=2, threads=1)), out=lambda text: None)
    assert runner.run() == 0
    for job in jobs:
        mine = [c for c in CALLS if len(c) > 1 and c[1] == job]
        assert mine[0] == ("started", job) and mine[-1] == ("ended", job, "finished"), mine
        assert [c[0] for c in mine[1:-1]] == ["polled"] * (len(mine) - 2) and len(mine) >= 3
    assert peak_concurrency([job_record(project, j) for j in jobs]) == 2
    assert CALLS[-1] == ("drained", {"pending": 0, "running": 0, "finished": 3, "failed": 0, "stopped": 0})


def test_concurrent_submitters_while_two_slots_drain(project, tmp_path):
    """Four processes submit (and reorder, hold, delete) jobs of two experiments while a 2-slot
    runner drains: every job is accounted for exactly once."""
    from test_queue_concurrency import SUBMITTER

    args = {0: ["dataset=digits", "model=mlp", "max_epochs=1", *FAST],
            1: ["dataset=digits", "model=mlp", "lr=0.01", "max_epochs=1", *FAST]}
    for a in args.values():  # trained first: the queued jobs are "already complete" (fast)
        run_cli(project, "MLSystem.execute_train", *a, check=True)
    env = cli_env(project)
    JobQueue()
    runner = subprocess.Popen([sys.executable, "-m", "MLSystem.runner", "--slots", "2", "--wait", "4", "--json"],
                              env=env, cwd=project, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    submitters = [subprocess.Popen([sys.executable, "-c", SUBMITTER, str(seed), "6", *args[seed % 2]], env=env,
                                   cwd=project, stdout=subprocess.PIPE, text=True) for seed in range(4)]
    reports = [json.loads(p.communicate(timeout=180)[0]) for p in submitters]
    out = runner.communicate(timeout=300)[0]
    assert runner.returncode == 0, out
    submitted = [j for r in reports for j in r["submitted"]]
    deleted = {j for r in reports for j in r["deleted"]}
    assert len(submitted) == 24 == len(set(submitted))
    found: dict[str, list[str]] = {}
    for status in ("pending", "running", "finished", "failed", "stopped"):
        for p in (project / "queue" / status).glob("*.json"):
            found.setdefault(p.stem, []).append(status)
    assert set(found) == set(submitted) - deleted and all(v == ["finished"] for v in found.values()), found
    events = [json.loads(line) for line in out.splitlines() if line.startswith("{")]
    starts = [e["job"] for e in events if e["event"] == "started"]
    assert sorted(starts) == sorted(found)  # each started exactly once
    records = [job_record(project, j) for j in found]
    assert all(r["attempts"] == 1 and len(r["history"]) == 1 for r in records)
    assert peak_concurrency(records) <= 2
