"""A queue lock that holds on shared filesystems (NFS, Lustre, GPFS, CephFS...), for clusters.

On one machine the queue lock is filelock's ``FileLock`` (``flock``): the kernel releases it
when the holder dies. On NFS, ``flock``/``fcntl`` locks depend on the client and server setup
(lockd, ``local_lock=``, NFSv3 vs v4) and are unreliable on some; a crashed client's lock may
never be released. There the lock is filelock's :class:`~filelock.SoftFileLease` instead:

* the lock is a marker file created with ``O_CREAT | O_EXCL`` (exclusive create is atomic on
  NFSv3+ and on every cluster filesystem), holding the owner's pid, host and a token;
* the holder refreshes it every ``lease_seconds / 3`` from a heartbeat thread; a contender takes
  a marker that has not been refreshed for ``lease_seconds`` (a holder on a crashed or
  partitioned node), and at once one whose owner is a dead process on its own host;
* the queue's critical sections last milliseconds, so two holders at once would need a live
  holder frozen for a whole lease (the documented limit of any lease).

Which kind: ``MLSYSTEM_LOCK=flock|lease|auto`` (default ``auto``: ``lease`` when the lock's
folder is on a network filesystem per ``/proc/self/mounts``, else ``flock``). Every process of a
queue must use the same kind — the two kinds do not see each other (they use different files) —
so on a cluster whose head node has the disk locally while the nodes mount it over NFS, set
``MLSYSTEM_LOCK=lease`` on every host.

What the queue needs from the shared filesystem: atomic ``rename`` within a folder (job files
are written to a temp file and renamed), atomic exclusive create (the lease marker), and
close-to-open consistency (a file renamed into place by one host is read whole by another);
NFSv3/v4, Lustre, GPFS, BeeGFS and CephFS provide all three. Clocks may differ between hosts:
a lease expires on the contender's own monotonic clock, never by comparing timestamps.

Plugging in: the queue store builds its lock with ``make_lock(paths.lock, timeout=...)`` instead
of ``FileLock(...)``; both raise ``filelock.Timeout`` and are reentrant per thread.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

LOCK_KIND_ENV = "MLSYSTEM_LOCK"
KINDS = ("auto", "flock", "lease")
LEASE_SECONDS = 60.0
LEASE_SUFFIX = ".lease"  # the lease's marker lives next to the flock file, never in it
# Filesystem types (as /proc/self/mounts names them) on which flock is not to be trusted.
NETWORK_FILESYSTEMS = frozenset({
    "nfs", "nfs4", "cifs", "smb3", "smbfs", "lustre", "gpfs", "beegfs", "ceph", "fuse.ceph", "glusterfs",
    "fuse.glusterfs", "fuse.sshfs", "panfs", "wekafs", "9p", "afs", "ocfs2", "gfs2",
})


def filesystem_type(path: str | os.PathLike[str], mounts: str = "/proc/self/mounts") -> str | None:
    """The type of the filesystem holding ``path`` (its nearest existing folder), or None if unknown."""
    target = Path(path).resolve()
    while not target.exists() and target != target.parent:
        target = target.parent
    best, kind = "", None
    try:
        lines = Path(mounts).read_text(encoding="utf-8", errors="replace").splitlines()
    except OSError:
        return None
    for line in lines:
        fields = line.split()
        if len(fields) < 3:
            continue
        point = fields[1].replace("\\040", " ").replace("\\011", "\t").replace("\\134", "\\")
        inside = str(target) == point or str(target).startswith(point.rstrip("/") + "/")
        if inside and len(point) >= len(best):
            best, kind = point, fields[2]
    return kind


def lock_kind(path: str | os.PathLike[str], requested: str | None = None) -> str:
    """``flock`` or ``lease`` for a lock at ``path``: ``requested`` or ``$MLSYSTEM_LOCK``, ``auto`` by the filesystem."""
    kind = (requested or os.environ.get(LOCK_KIND_ENV) or "auto").strip().lower()
    if kind not in KINDS:
        raise ValueError(f"{LOCK_KIND_ENV}: {kind!r} is not a lock kind (valid: {', '.join(KINDS)})")
    if kind == "auto":
        kind = "lease" if filesystem_type(Path(path).parent) in NETWORK_FILESYSTEMS else "flock"
    return kind


def make_lock(path: str | os.PathLike[str], *, timeout: float = -1, kind: str | None = None,
              lease_seconds: float = LEASE_SECONDS) -> Any:
    """A reentrant lock for ``path`` (filelock API: ``acquire``/``release``, context manager, ``Timeout``)."""
    from filelock import FileLock, SoftFileLease

    if lock_kind(path, kind) == "flock":
        return FileLock(str(path), timeout=timeout)
    return SoftFileLease(str(path) + LEASE_SUFFIX, timeout=timeout, lease_duration=lease_seconds)
