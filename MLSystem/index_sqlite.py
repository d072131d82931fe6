"""The experiment index's SQLite file: schema, connections (WAL), damage and a full disk.

The index is only a cache of the experiment folders: a damaged or foreign file is deleted and
rebuilt (:func:`delete_index`), an older schema dropped and recreated (:func:`ensure_schema`).
"""

from __future__ import annotations

import contextlib
import errno
import os
import shutil
import sqlite3
from pathlib import Path
from typing import Iterator

SCHEMA_VERSION = 7

_SCHEMA = (
    "DROP TABLE IF EXISTS experiments",
    """CREATE TABLE experiments (id TEXT PRIMARY KEY, dataset TEXT, model TEXT, adapter TEXT, status TEXT,
        epochs_done INTEGER, max_epochs INTEGER, created TEXT, updated TEXT, parent TEXT,
        init_from TEXT, identity_values TEXT, epoch_seconds REAL, error TEXT, metric_modes TEXT,
        stamp TEXT)""",
    "CREATE INDEX exp_updated ON experiments(updated)",
    "CREATE INDEX exp_created ON experiments(created)",
    "CREATE INDEX exp_sel ON experiments(dataset, model, updated)",
    "CREATE INDEX exp_status ON experiments(status)",
    "CREATE INDEX exp_epochs ON experiments(epochs_done)",
    "CREATE INDEX exp_parent ON experiments(parent)",  # an experiment's warm-started children
    # ETAs' median epoch time of a dataset/model(/adapter), counted and walked in the index.
    "CREATE INDEX exp_seconds ON experiments(dataset, model, epoch_seconds, adapter)",
    # Each experiment's identity values as (key, normalized value) pairs (index_rows.norm_value),
    # with what queue ETAs need: the runs of a dataset/model sharing a job's value are one range of
    # the primary key, read without touching the experiments table (a join cost 6 us per run).
    "DROP TABLE IF EXISTS identity_kv",
    """CREATE TABLE identity_kv (key TEXT, value TEXT, dataset TEXT, model TEXT, adapter TEXT, id TEXT,
        epoch_seconds REAL, PRIMARY KEY (key, value, dataset, model, adapter, id)) WITHOUT ROWID""",
    "CREATE INDEX kv_id ON identity_kv(id)",
    "DROP TABLE IF EXISTS meta",
    "CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT)",
)
_SQLITE_FULL, _SQLITE_IOERR, _SQLITE_CORRUPT, _SQLITE_NOTADB = 13, 10, 11, 26


def is_corrupt(exc: sqlite3.DatabaseError) -> bool:
    """A damaged or foreign index file (not a transient error such as a lock held by another process)."""
    code = getattr(exc, "sqlite_errorcode", 0) & 0xFF
    return code in (_SQLITE_CORRUPT, _SQLITE_NOTADB) or not isinstance(exc, sqlite3.OperationalError)


def _disk_full(exc: sqlite3.Error, folder: Path) -> bool:
    """SQLite's own error for a full disk, or an I/O error on a disk with (almost) no space left
    (SQLite reports ENOSPC during a WAL write as a plain "disk I/O error")."""
    code = getattr(exc, "sqlite_errorcode", 0) & 0xFF
    if code == _SQLITE_FULL:
        return True
    if code == _SQLITE_IOERR:
        with contextlib.suppress(OSError):
            return shutil.disk_usage(folder).free < (1 << 20)
    return False


@contextlib.contextmanager
def connect(file: Path, *, ensure_tables: bool = True) -> Iterator[sqlite3.Connection]:
    """A connection to the index ``file`` (created with its folder if missing); SQLite's "disk
    full" becomes ``OSError(ENOSPC)`` naming the file."""
    file.parent.mkdir(parents=True, exist_ok=True)
    con = sqlite3.connect(str(file), timeout=60)
    try:
        con.execute("PRAGMA journal_mode=WAL")
        con.execute("PRAGMA synchronous=NORMAL")
        # Every connection makes sure the tables exist: a reader that opens the index while
        # another process creates it waits for that transaction instead of seeing no table.
        # (A refresh after a reader created them finds no meta yet and so does a full check.)
        if ensure_tables:
            ensure_schema(con)
        yield con
    except sqlite3.OperationalError as exc:
        if _disk_full(exc, file.parent):  # the CLI's one "disk full: …" line, not a traceback
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(file)) from exc
        raise
    finally:
        con.close()


def ensure_schema(con: sqlite3.Connection) -> bool:
    """Create the tables (dropping an older schema); True if the index was (re)created.

    One transaction (``BEGIN IMMEDIATE``, version checked again inside it): another process or
    thread building the index at the same time never sees the tables half dropped."""
    if con.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION:
        return False
    con.execute("BEGIN IMMEDIATE")
    try:
        if con.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION:
            con.execute("COMMIT")
            return False
        for statement in _SCHEMA:
            con.execute(statement)
        con.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
        con.execute("COMMIT")
    except BaseException:
        con.execute("ROLLBACK")
        raise
    return True


def delete_index(file: Path) -> None:
    """Remove a damaged index file with its WAL and shared-memory files."""
    for suffix in ("", "-wal", "-shm"):
        with contextlib.suppress(FileNotFoundError):
            os.unlink(str(file) + suffix)
