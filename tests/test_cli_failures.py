"""The command line when things go wrong: a closed pipe, Ctrl-C in the middle of a sweep, a full disk.
Each gives one line and leaves the queue consistent (all or nothing, no temp files)."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import FAST, cli_env, make_project, run_cli, wait_for
from MLSystem.jobs import Job, Kind, new_job_id
from MLSystem.queue_store import JobQueue
from MLSystem.paths import ProjectPaths

CNN = ["dataset=digits", "model=cnn", *FAST]


def _fill_queue(root: Path, n: int) -> None:
    q = JobQueue(ProjectPaths.discover(root))
    q.add_many([Job(id=new_job_id(), kind=Kind.TRAIN.value, args=[*CNN, f"seed={i}"], held=True) for i in range(n)])


def _leftovers(root: Path) -> list[str]:
    return sorted(str(p.relative_to(root)) for p in (root / "queue").rglob("*.tmp"))


def test_listing_into_a_closed_pipe_is_quiet(project: Path) -> None:
    _fill_queue(project, 400)  # about 400 KB of JSON: far more than a pipe buffer holds
    cmd = f"{sys.executable} -m MLSystem.submit --list --json | head -1; echo \"status ${{PIPESTATUS[0]}}\" >&2"
    proc = subprocess.run(["bash", "-c", cmd], cwd=project, env=cli_env(project), capture_output=True, text=True,
                          timeout=120)
    assert proc.stdout == "{\n"
    assert proc.stderr == "status 141\n", proc.stderr  # like a process ended by SIGPIPE, and nothing else


def _pending(root: Path) -> set[str]:
    return {p.stem for p in (root / "queue" / "pending").glob("job-*.json")}


@pytest.mark.slow
def test_ctrl_c_during_a_big_sweep_queues_all_or_nothing_and_says_which(project: Path) -> None:
    sweep = [*CNN, "max_epochs=1", "seed=range(0,600)", "--held"]
    # 1. while validating: nothing queued
    proc = subprocess.Popen([sys.executable, "-m", "MLSystem.submit", *sweep], cwd=project, env=cli_env(project),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    wait_for(lambda: proc.poll() is None and (project / "queue" / "pending").is_dir(), 60, "submit to start")
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 130 and err.strip() == "interrupted", err
    assert _pending(project) == set() and out == ""
    # 2. as soon as the first job file appears: the sweep completes, every id is printed
    proc = subprocess.Popen([sys.executable, "-m", "MLSystem.submit", *sweep], cwd=project, env=cli_env(project),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    wait_for(lambda: _pending(project) or proc.poll() is not None, 300, "the first job file")
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=300)
    printed = {line.split()[1] for line in out.splitlines() if line.startswith("queued ")}
    assert "Traceback" not in err and len(err.strip().splitlines()) <= 1, err
    if proc.returncode == 130:  # the signal arrived while queueing (the usual case)
        assert "the 600 job(s) above are queued" in err
    assert len(printed) == 600 and printed == _pending(project)
    assert _leftovers(project) == []


@pytest.fixture
def small_disk(tmp_path):
    """A project on a 4 MB tmpfs (root only: mounting needs it)."""
    if os.geteuid() != 0:
        pytest.skip("needs root to mount a small tmpfs for the disk-full tests")
    mnt = tmp_path / "small"
    mnt.mkdir()
    if subprocess.run(["mount", "-t", "tmpfs", "-o", "size=4m", "tmpfs", str(mnt)]).returncode != 0:
        pytest.skip("cannot mount a tmpfs here")
    try:
        yield make_project(mnt / "proj")
    finally:
        subprocess.run(["umount", "-l", str(mnt)])


def _fill_disk(root: Path, leave: int) -> None:
    free = shutil.disk_usage(root).free
    with open(root / "filler", "wb") as fh:
        fh.write(b"\0" * max(0, free - leave))


def _one_disk_full_line(proc: subprocess.CompletedProcess) -> str:
    lines = proc.stderr.strip().splitlines()
    assert proc.returncode != 0 and len(lines) == 1, proc.stdout + proc.stderr
    assert "disk full: cannot write" in lines[0] and "free some space" in lines[0], lines
    return lines[0]


def test_disk_full_submit_and_runner_say_so_in_one_line(small_disk: Path) -> None:
    root = small_disk
    JobQueue(ProjectPaths.discover(root))  # queue folders exist
    _fill_disk(root, leave=16 << 10)
    line = _one_disk_full_line(run_cli(root, "MLSystem.submit", *CNN, "seed=range(0,100)", "--held"))
    assert "/queue/pending/job-" in line
    assert _pending(root) == set() and _leftovers(root) == []  # all or nothing
    (root / "filler").unlink()
    _fill_queue(root, 1)
    _fill_disk(root, leave=0)
    _one_disk_full_line(run_cli(root, "MLSystem.runner"))


@pytest.mark.slow
def test_disk_full_during_a_checkpoint_says_disk_full(small_disk: Path) -> None:
    root = small_disk
    # Room for the small files of a run (config, metadata, metrics), not for a checkpoint (~1 MB here).
    _fill_disk(root, leave=256 << 10)
    proc = run_cli(root, "MLSystem.execute_train", *CNN, "max_epochs=1", "hidden=1024")
    line = _one_disk_full_line(proc)
    assert "/checkpoints/" in line and "unexpected pos" not in proc.stdout + proc.stderr, proc.stdout + proc.stderr
    assert list((root / "output").rglob("*.tmp")) == []
