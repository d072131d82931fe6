"""Things the runner tells other parts of MLSystem about jobs: the one seam for notifications,
study bookkeeping (tell Optuna a trial's value, prune it) and event streams.

A hook is any object with some of these methods (missing ones are skipped)::

    job_started(job)           the job's process was spawned
    job_polled(job)            about once a second while the job runs (e.g. to prune a trial)
    job_ended(job)             the job was filed; ``job.status`` is where it went
    queue_drained(counts)      the runner is exiting: nothing runnable is left (or a drain was asked)

Hooks are listed in ``FACTORIES`` as ``"module:function"``; each factory gets the project's
``ProjectPaths`` and returns a hook or ``None`` (not configured). They are imported when a runner
starts, never on the training path. A hook that raises is logged and skipped: a failing webhook
or study must never delay or fail a job.
"""

from __future__ import annotations

import importlib
import logging
import time
from typing import Any

log = logging.getLogger("MLSystem.hooks")

# Owners append here; order is the call order.
FACTORIES: list[str] = [
    "MLSystem.tune.hook:make_hook",  # studies: tell trials, ask the next ones, prune
    "MLSystem.events.notify:factory",  # webhooks when jobs end (configs/notify.yaml, --notify)
]

POLL_INTERVAL_S = 1.0


class Hooks:
    """The loaded hooks of one runner; every call is isolated from the others and from the job."""

    def __init__(self, hooks: list[Any], say=None):
        self.hooks = hooks
        self.say = say or (lambda text: log.warning(text))
        self._last_poll: dict[str, float] = {}

    @classmethod
    def load(cls, paths, say=None) -> "Hooks":
        hooks = []
        for spec in FACTORIES:
            module, _, func = spec.partition(":")
            try:
                hook = getattr(importlib.import_module(module), func)(paths)
            except Exception as exc:  # a broken optional integration must not stop the runner
                (say or log.warning)(f"hook {spec} not loaded: {type(exc).__name__}: {exc}")
                continue
            if hook is not None:
                hooks.append(hook)
        return cls(hooks, say)

    def _call(self, method: str, *args: Any) -> None:
        for hook in self.hooks:
            fn = getattr(hook, method, None)
            if fn is None:
                continue
            try:
                fn(*args)
            except Exception as exc:
                self.say(f"hook {type(hook).__name__}.{method} failed: {type(exc).__name__}: {exc}")

    def job_started(self, job) -> None:
        self._call("job_started", job)

    def job_polled(self, job) -> None:
        """Rate-limited to ``POLL_INTERVAL_S`` per job; cheap to call from a tight wait loop."""
        if not self.hooks:
            return
        now = time.monotonic()
        if now - self._last_poll.get(job.id, 0.0) >= POLL_INTERVAL_S:
            self._last_poll[job.id] = now
            self._call("job_polled", job)

    def job_ended(self, job) -> None:
        self._last_poll.pop(job.id, None)
        self._call("job_ended", job)

    def queue_drained(self, counts: dict[str, int]) -> None:
        self._call("queue_drained", counts)
