"""The deriver's view of the queue folders: re-listed only when they change.

Folders are re-listed only when their mtime changed (or changed in the last second: mtimes are
coarse), and a file is parsed only when it changed, so a 100k-job queue costs a few ``stat``
calls per poll. Job files are read without the queue lock (they are replaced atomically).
"""

from __future__ import annotations

import contextlib
import os
from dataclasses import dataclass

from MLSystem.jobs import Job, Status
from MLSystem.queue_files import read_job_file
from MLSystem.utils.clock import parse_iso

TERMINAL = (Status.FINISHED.value, Status.FAILED.value, Status.STOPPED.value)


def run_number(job: Job) -> int:
    """Which run of the job this record is about: completed runs, +1 while one is in progress
    (``attempts`` restarts at 0 on a requeue, the history does not)."""
    return len(job.history) + (1 if job.status == Status.RUNNING.value else 0)


@dataclass
class Entry:
    """One job file as last listed. Only pending and running jobs are kept whole: a 100k-job
    history costs a small tuple each, and a finished job is re-read only if it changes."""

    id: str
    status: str
    run: int
    spawned: bool  # running with its process started
    when: tuple
    path: str
    job: Job | None


class Folder:
    """One queue folder, re-listed only when it changed."""

    def __init__(self, path, status: str):
        self.path = path
        self.status = status
        self.keep = status not in TERMINAL
        self.mtime = -1
        self.recheck = False
        self.files: dict[str, tuple[tuple, Entry | None]] = {}

    def scan(self) -> bool:
        """Re-list if the folder changed; True if it did. Each change is listed twice, the second
        time at the next poll: mtimes are coarse (a clock tick), so a second change within the
        same tick as the first listing would not move the mtime again."""
        try:
            mtime = os.stat(self.path).st_mtime_ns
        except FileNotFoundError:
            changed, self.files, self.mtime = bool(self.files), {}, -1
            return changed
        if mtime == self.mtime and not self.recheck:
            return False
        self.recheck = mtime != self.mtime
        self.mtime = mtime
        seen: dict[str, tuple[tuple, Entry | None]] = {}
        with contextlib.suppress(FileNotFoundError), os.scandir(self.path) as it:
            for entry in it:
                if entry.name.startswith(".") or not entry.name.endswith(".json"):
                    continue
                try:
                    st = entry.stat()
                except FileNotFoundError:
                    continue
                key = (st.st_ino, st.st_mtime_ns, st.st_size)
                old = self.files.get(entry.name)
                seen[entry.name] = old if old and old[0] == key else (key, self._entry(entry.path))
        changed = seen.keys() != self.files.keys() or any(seen[k] is not self.files[k] for k in seen)
        self.files = seen
        return changed

    def _entry(self, path: str) -> Entry | None:
        job = load_job(path, self.status)
        if job is None:
            return None
        return Entry(job.id, self.status, run_number(job), job.pid is not None, when(job), path,
                     job if self.keep else None)

    def entries(self) -> list[Entry]:
        return [e for _, e in self.files.values() if e is not None]


def when(job: Job) -> tuple:
    """Sort key: the order in which what a job record says happened."""
    return (parse_iso(job.ended or job.started or job.created) or 0.0, job.position, job.id)


def load_job(path: str, status: str) -> Job | None:
    """A job file, read without the queue lock (job files are replaced atomically); a file that is
    not a valid job (or not ours to read) is the queue store's to deal with, not ours."""
    job = read_job_file(path)
    if not isinstance(job, Job) or job.status != status:
        # A status change renames the file first and rewrites it after: until then the record in
        # its new folder still describes the old state. The rewrite changes it again: read it then.
        return None
    return job
