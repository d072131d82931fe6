"""Inputs that used to slip through: each gives one clear line (no traceback) and queues nothing."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from conftest import FAST, run_cli
from MLSystem.jobs import Status
from MLSystem.queue_store import JobQueue
from MLSystem.paths import ProjectPaths

CNN = ["dataset=digits", "model=cnn", *FAST]


@pytest.mark.parametrize("override, expected", [
    ("lr=nan", "lr: nan is not a finite number"),
    ("lr=inf", "lr: inf is not a finite number"),
    ("lr=1e400", "lr: inf is not a finite number"),
    ("lr=0.1,nan", "lr: nan is not a finite number"),
    ("seed=" + "7" * 5000, "a number of 5000 digits is too long"),
    (f"seed={2**70}", "out of range"),
    (f"seed={2**40}", "seed: must be between 0 and 4294967295"),
    (f"batch_size={2**64}", "batch_size: a 20-digit integer is out of range"),
    ("lr=０.１", "full-width character '０' (FULLWIDTH DIGIT ZERO, U+FF10); type it in ASCII: lr=0.1"),
    ("ｌｒ=0.1", "type it in ASCII: lr=0.1"),
    ("lr=0.1\u200b", "invisible character '\\u200b' (ZERO WIDTH SPACE, U+200B)"),
    ("l\u200br=0.1", "invisible character"),
])
def test_bad_value_is_one_line_at_submit(project: Path, override: str, expected: str) -> None:
    proc = run_cli(project, "MLSystem.submit", *CNN, override)
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert expected in proc.stderr and proc.stderr.count("\n") == 1, proc.stderr[-2000:]
    assert "Traceback" not in proc.stderr and "LexerNoViableAlt" not in proc.stderr
    assert JobQueue(ProjectPaths.discover(project)).list() == []


def _drop_job(root: Path, job_id: str, **fields) -> None:
    pending = root / "queue" / "pending"
    pending.mkdir(parents=True, exist_ok=True)
    (pending / f"{job_id}.json").write_text(json.dumps({"id": job_id, "kind": "train", **fields}))


def test_far_future_not_before_does_not_keep_the_runner_alive(project: Path) -> None:
    _drop_job(project, "job-0000f00d", args=CNN, not_before=1e300)
    t0 = time.monotonic()
    proc = run_cli(project, "MLSystem.runner", timeout=120)
    assert proc.returncode == 0 and "runner done" in proc.stdout, proc.stdout + proc.stderr
    assert time.monotonic() - t0 < 60
    q = JobQueue(ProjectPaths.discover(project))
    assert [j.id for j in q.pending()] == ["job-0000f00d"]  # still queued, for when it is due
    listing = run_cli(project, "MLSystem.submit", "--list")
    assert listing.returncode == 0 and "starts in >1y" in listing.stdout, listing.stdout + listing.stderr


def test_job_file_with_options_or_infinite_times_is_invalid_not_finished(project: Path) -> None:
    _drop_job(project, "job-0000beef", args=["--help"])
    (project / "queue" / "pending" / "job-0000cafe.json").write_text(
        '{"id": "job-0000cafe", "kind": "train", "args": ["dataset=digits"], "not_before": Infinity}')
    proc = run_cli(project, "MLSystem.runner", timeout=120)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    q = JobQueue(ProjectPaths.discover(project))
    assert q.list([Status.FINISHED]) == []
    errors = {j.id: j.error for j in q.list([Status.FAILED])}
    assert "'--help' is not a key=value override" in errors["job-0000beef"]
    assert "not_before" in errors["job-0000cafe"] and "finite" in errors["job-0000cafe"]
