"""Deprecated: the queue was split. Import from the modules below instead (see ARCH_MOVES.md):

* :mod:`MLSystem.jobs` — the job schema (``Job``, ``Status``, ``Kind``, ``Action``, ``QueuePaths``,
  ``QueueError``, ``job_from_dict``, ``new_job_id``),
* :mod:`MLSystem.queue_store` — ``JobQueue`` (every file under ``queue/``),
* :mod:`MLSystem.eta` — ``Eta``, ``EtaModel``, ``estimate``,
* :mod:`MLSystem.runner_record` — the runner's lock and ``runner.json``,
* :mod:`MLSystem.utils.clock` — ``now_iso``, ``parse_iso``, ``format_seconds``;
  :mod:`MLSystem.utils.procs` — ``pid_alive``.

Kept only so code written against the old name keeps working for a while.
"""

from __future__ import annotations

import warnings

from MLSystem.eta import DEFAULT_STARTUP_S, Eta, EtaModel, estimate
from MLSystem.jobs import (
    DEFAULT_MAX_ATTEMPTS,
    VERSION,
    Action,
    Job,
    JobNotFoundError,
    Kind,
    QueueError,
    QueuePaths,
    Status,
    job_from_dict,
    new_job_id,
)
from MLSystem.queue_store import LOCK_TIMEOUT_S, JobQueue
from MLSystem.utils.clock import format_seconds, now_iso, parse_iso
from MLSystem.utils.procs import pid_alive

warnings.warn("MLSystem.job_queue is deprecated: use MLSystem.jobs, MLSystem.queue_store and MLSystem.eta",
              DeprecationWarning, stacklevel=2)

__all__ = ["DEFAULT_MAX_ATTEMPTS", "DEFAULT_STARTUP_S", "LOCK_TIMEOUT_S", "VERSION", "Action", "Eta", "EtaModel",
           "Job", "JobNotFoundError", "JobQueue", "Kind", "QueueError", "QueuePaths", "Status", "estimate",
           "format_seconds", "job_from_dict", "new_job_id", "now_iso", "parse_iso", "pid_alive"]
