"""The runner's side of studies (listed in ``job_hooks.FACTORIES``).

Only jobs carrying ``extra.study`` (or marked as awaited by a trial of some study: the trial's
configuration was the experiment of a job already queued) concern it; for others every call
returns after a dictionary lookup and one ``stat``, and Optuna is imported only when a study job
shows up. The runner tells trials and asks the next ones, so a study advances with nothing but
``python -m MLSystem.runner``.
"""

from __future__ import annotations

import sys
from typing import Callable

from MLSystem.paths import ProjectPaths


class StudyHook:
    def __init__(self, paths: ProjectPaths, say: Callable[[str], None] | None = None):
        self.paths = paths
        self.say = say or (lambda text: print(text, file=sys.stderr, flush=True))
        self._drivers: dict[str, object] = {}

    def _driver(self, name: object):
        if not isinstance(name, str):
            return None
        driver = self._drivers.get(name)
        if driver is None:
            # lazy: Optuna's side loads only when a study job shows up (every runner loads this hook)
            from MLSystem.tune.driver import StudyDriver
            from MLSystem.tune.store import StudyStore  # lazy: as above

            if not StudyStore(self.paths, name).exists():
                return None
            driver = self._drivers[name] = StudyDriver(self.paths, name)
        return driver

    def _out(self, lines) -> None:
        for line in [lines] if isinstance(lines, str) else (lines or []):
            self.say(f"study: {line}")

    def job_polled(self, job) -> None:
        if job.kind == "train" and (driver := self._driver((job.extra or {}).get("study"))) is not None:
            self._out(driver.poll(job))

    def job_ended(self, job) -> None:
        if job.kind != "train":
            return
        names = [(job.extra or {}).get("study")]
        from MLSystem.tune.driver import attached_file  # lazy: as above

        mark = attached_file(self.paths, job.id)
        if mark.is_file():  # a trial of some study waits for this job (same experiment)
            names.append(mark.read_text().strip())
            mark.unlink(missing_ok=True)
        for name in dict.fromkeys(names):
            if (driver := self._driver(name)) is not None:
                self._out(driver.job_ended(job))


def make_hook(paths: ProjectPaths) -> StudyHook:
    """Factory for ``job_hooks.FACTORIES``: cheap (no Optuna import until a study job runs)."""
    return StudyHook(paths)
