"""The runner's filing rule as a table: how a job process ended -> where the job goes."""

from __future__ import annotations

import signal

import pytest

from MLSystem.errors import ExitCode
from MLSystem.jobs import Status
from MLSystem.runner import BUSY_BACKOFF_S, classify_exit

OK, FAILED, BAD, STOPPED, BUSY = (int(c) for c in (ExitCode.OK, ExitCode.FAILED, ExitCode.BAD_INPUT,
                                                    ExitCode.STOPPED, ExitCode.BUSY))
TERM, INT, KILL = -int(signal.SIGTERM), -int(signal.SIGINT), -int(signal.SIGKILL)

# rc, stop requested, runner shutdown, attempts, max_attempts -> status, attempts recorded (None: unchanged),
# text expected in the note or error
CASES = [
    (OK, False, None, 1, 5, Status.FINISHED, None, "trained to epoch 2/2"),
    (OK, True, None, 1, 5, Status.FINISHED, None, "trained to epoch 2/2"),  # finished before the stop landed
    (STOPPED, True, None, 1, 5, Status.STOPPED, None, "stopped on request"),
    (STOPPED, True, "SIGTERM", 1, 5, Status.STOPPED, None, "stopped on request"),  # the user's request wins
    (STOPPED, False, "SIGTERM", 2, 5, Status.PENDING, 1, "runner stopped by SIGTERM"),
    (STOPPED, False, None, 2, 5, Status.PENDING, None, "signal from outside"),
    (STOPPED, False, None, 5, 5, Status.FAILED, None, "interrupted 5 times"),
    (BUSY, False, None, 3, 5, Status.PENDING, 2, "waiting"),
    (TERM, False, "SIGINT", 1, 5, Status.PENDING, 0, "runner stopped by SIGINT"),
    (INT, False, "SIGTERM", 1, 5, Status.PENDING, 0, "runner stopped by SIGTERM"),
    (TERM, False, None, 1, 5, Status.FAILED, None, "killed by SIGTERM"),
    (KILL, False, "SIGTERM", 1, 5, Status.FAILED, None, "killed by SIGKILL"),  # not a graceful stop
    (KILL, False, None, 1, 5, Status.FAILED, None, "out of memory or killed from outside"),
    (FAILED, False, None, 1, 5, Status.FAILED, None, "exit 1 (failed)"),
    (BAD, False, None, 1, 5, Status.FAILED, None, "exit 2 (bad input)"),
    (7, False, None, 1, 5, Status.FAILED, None, "exit 7 (failed)"),
]


@pytest.mark.parametrize("rc, asked, shutdown, attempts, limit, status, recorded, text", CASES)
def test_exit_classification(rc, asked, shutdown, attempts, limit, status, recorded, text):
    tail = "epoch 2/2 done\nerror: boom\njob-1 trained to epoch 2/2 in 3.0s"
    out = classify_exit(rc, stop_requested=asked, shutdown=shutdown, attempts=attempts, max_attempts=limit,
                        tail=tail, job_id="job-1", now=1000.0)
    assert out.status == status
    assert out.fields.get("attempts") == recorded
    assert text in out.fields.get("note", "") + "\n" + (out.fields.get("error") or "")
    if status == Status.FAILED:
        assert out.fields["note"] and "\n" not in out.fields["note"]  # one line for listings
    if rc < 0:
        assert out.fields["signal"] == signal.Signals(-rc).name


def test_busy_backs_off_and_failures_carry_the_log_tail():
    busy = classify_exit(BUSY, stop_requested=False, shutdown=None, attempts=1, max_attempts=5,
                         tail="error: experiment abc is busy", now=1000.0)
    assert busy.fields["not_before"] == 1000.0 + BUSY_BACKOFF_S and busy.fields["note"].endswith("is busy")
    failed = classify_exit(FAILED, stop_requested=False, shutdown=None, attempts=1, max_attempts=5,
                           tail="Traceback…\nerror: ValueError: lr must be positive\nlast line")
    assert failed.fields["note"] == "exit 1 (failed): error: ValueError: lr must be positive"
    assert failed.fields["error"].endswith("last line")
    silent = classify_exit(FAILED, stop_requested=False, shutdown=None, attempts=1, max_attempts=5)
    assert silent.fields["error"] == "exit 1 (failed): no output"


def test_an_executor_reported_infrastructure_end_does_not_count():
    """A cluster executor's preemption / node failure is not the job's failure, whatever the exit."""
    out = classify_exit(KILL, stop_requested=False, shutdown=None, attempts=3, max_attempts=3,
                        infrastructure="preempted by the cluster")
    assert out.status == Status.PENDING and out.fields["attempts"] == 2
    assert out.fields["note"] == "interrupted by the infrastructure (preempted by the cluster); requeued"
