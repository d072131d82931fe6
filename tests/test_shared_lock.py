"""The queue lock for shared filesystems (MLSystem.shared_lock): real processes, real kills."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
from filelock import FileLock, SoftFileLease, Timeout

from conftest import wait_for
from MLSystem.shared_lock import filesystem_type, lock_kind, make_lock

HOLDER = textwrap.dedent("""
    import sys, time
    from MLSystem.shared_lock import make_lock
    lock = make_lock(sys.argv[1], kind="lease", lease_seconds=float(sys.argv[2]))
    lock.acquire()
    print("held", flush=True)
    time.sleep(600)
""")

WORKER = textwrap.dedent("""
    import os, sys, time
    from MLSystem.shared_lock import make_lock
    lock_path, counter, inside, n = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
    lock = make_lock(lock_path, kind="lease", lease_seconds=30)
    for _ in range(n):
        with lock:
            fd = os.open(inside, os.O_CREAT | os.O_EXCL | os.O_WRONLY)  # fails if another holder is inside
            value = int(open(counter).read())
            time.sleep(0.002)
            with open(counter, "w") as fh:
                fh.write(str(value + 1))
            os.close(fd)
            os.unlink(inside)
""")


def _start(code: str, *args: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-c", code, *map(str, args)], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)


def _held(proc: subprocess.Popen) -> None:
    assert proc.stdout.readline().strip() == "held", proc.stderr.read()


def test_two_processes_never_hold_it_at_once(tmp_path):
    counter, inside = tmp_path / "counter", tmp_path / "inside"
    counter.write_text("0")
    procs = [_start(WORKER, tmp_path / "q.lock", counter, inside, 25) for _ in range(3)]
    for p in procs:
        _, err = p.communicate(timeout=300)
        assert p.returncode == 0, err  # FileExistsError here would mean two holders at once
    assert counter.read_text() == "75"  # no lost update


def test_lock_of_a_killed_process_is_taken_over_at_once(tmp_path):
    holder = _start(HOLDER, tmp_path / "q.lock", 600)  # a lease far longer than the test
    _held(holder)
    lock = make_lock(tmp_path / "q.lock", kind="lease", lease_seconds=600, timeout=0.2)
    with pytest.raises(Timeout):
        lock.acquire()  # held by a live process
    holder.send_signal(signal.SIGKILL)
    holder.wait()
    t0 = time.monotonic()
    lock = make_lock(tmp_path / "q.lock", kind="lease", lease_seconds=600, timeout=30)
    with lock:  # the marker names a dead pid on this host: stale without waiting out the lease
        assert time.monotonic() - t0 < 30


def test_a_holder_that_stops_refreshing_loses_the_lease_after_its_duration(tmp_path):
    # A frozen (or partitioned) holder on another node looks like this: alive, but silent.
    holder = _start(HOLDER, tmp_path / "q.lock", 2)
    try:
        _held(holder)
        holder.send_signal(signal.SIGSTOP)
        t0 = time.monotonic()
        lock = make_lock(tmp_path / "q.lock", kind="lease", lease_seconds=2, timeout=60)
        with lock:
            waited = time.monotonic() - t0
        assert waited >= 1.5  # not before the lease ran out (its clock started at the last refresh)
    finally:
        holder.send_signal(signal.SIGKILL)
        holder.wait()


def test_kind_follows_env_and_filesystem(tmp_path, monkeypatch):
    monkeypatch.delenv("MLSYSTEM_LOCK", raising=False)
    mounts = tmp_path / "mounts"
    mounts.write_text(f"/dev/sda1 / ext4 rw 0 0\nserver:/export {tmp_path}/nfs nfs4 rw 0 0\n")
    (tmp_path / "nfs").mkdir()  # the mount point; the queue folder below it is not made yet
    assert filesystem_type(tmp_path / "nfs" / "queue" / ".lock", mounts=str(mounts)) == "nfs4"
    assert filesystem_type(tmp_path / "local", mounts=str(mounts)) == "ext4"
    assert isinstance(make_lock(tmp_path / ".lock", kind="flock"), FileLock)
    assert isinstance(make_lock(tmp_path / ".lock", kind="lease"), SoftFileLease)
    monkeypatch.setenv("MLSYSTEM_LOCK", "lease")
    assert lock_kind(tmp_path / ".lock") == "lease"
    monkeypatch.setenv("MLSYSTEM_LOCK", "fcntl")
    with pytest.raises(ValueError, match="MLSYSTEM_LOCK: 'fcntl' is not a lock kind .valid: auto, flock, lease"):
        lock_kind(tmp_path / ".lock")
    # auto on this machine's local disk: the kernel lock, as before.
    monkeypatch.setenv("MLSYSTEM_LOCK", "auto")
    if filesystem_type(tmp_path) not in ("nfs", "nfs4"):
        assert lock_kind(tmp_path / ".lock") == "flock"


def test_the_queue_store_takes_a_lease_when_asked(project, monkeypatch):
    """On a network filesystem (here forced with MLSYSTEM_LOCK=lease) every queue change goes
    through the lease: while another process holds it, the queue waits instead of writing."""
    from MLSystem.jobs import Job, new_job_id
    from MLSystem.paths import ProjectPaths
    from MLSystem.queue_store import JobQueue

    monkeypatch.setenv("MLSYSTEM_LOCK", "lease")
    queue = JobQueue(ProjectPaths.discover(project))
    holder = subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(f"""
            import sys, time
            from MLSystem.shared_lock import make_lock
            lock = make_lock({str(queue.paths.lock)!r}, timeout=30)
            lock.acquire()
            print("held", flush=True)
            time.sleep(1.5)
            lock.release()
        """)], stdout=subprocess.PIPE, text=True, env=dict(os.environ))
    try:
        assert holder.stdout.readline().strip() == "held"
        t0 = time.monotonic()
        job = queue.add(Job(id=new_job_id(), kind="train", args=["dataset=digits", "model=cnn"]))
        waited = time.monotonic() - t0
    finally:
        holder.wait(timeout=60)
    assert waited >= 1.0, f"the queue wrote while another process held the lease (waited {waited:.2f} s)"
    assert [j.id for j in queue.pending()] == [job.id]
