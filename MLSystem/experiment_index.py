"""A query index over the experiment folders: ``output/.cache/experiments.sqlite`` (standard library).

The folders stay the source of truth; the index is a cache that pages, filters and sorts
100,000 experiments without reading 100,000 ``experiment.json`` files:

* one row per experiment: selection, status, epochs, times, parent, identity values (JSON) and
  the folder's stamp (mtimes of the folder, ``experiment.json`` and ``state.json``);
* every write of those files through the experiment store also appends the experiment's ID to
  a change log (``utils.change_log``); a quick :meth:`ExperimentIndexDB.refresh` re-reads the
  logged folders and lists folder names only when the experiments folder itself changed;
  a full refresh stats every folder (a few ``stat`` calls each, no reads) and re-reads those
  whose stamp differs — it catches hand edits. Up to ``FULL_CHECK_MAX`` experiments every
  refresh is full. A missing, corrupt or older-schema index is rebuilt. Rows are read through
  the experiment store (a garbled ``experiment.json`` is a "damaged" row with the reason);
* queries: :meth:`page` (filter, sort, page), :meth:`candidates` (same dataset/model, for
  the nearest-experiment diff) and :meth:`runs_sharing` (runs with some of a job's values, for
  queue ETAs: the ``identity_kv`` table, one row per identity value of each experiment, with
  its dataset/model/adapter and epoch seconds; rewritten with the experiment's row).

Several processes may refresh at once: SQLite's WAL mode and one transaction per refresh.
A folder's row is ``index_rows``'s, the SQLite file's schema and damage handling ``index_sqlite``'s.
"""

from __future__ import annotations

import contextlib
import json
import os
import sqlite3
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable

from MLSystem import experiment_store as store
from MLSystem import index_sqlite
from MLSystem.index_rows import COLS, folder_stamp, identity_pairs, row_from_files, scan_folders
from MLSystem.index_sqlite import delete_index, ensure_schema, is_corrupt
from MLSystem.paths import ProjectPaths
from MLSystem.records import ExperimentStatus
from MLSystem.utils.change_log import changes_file, read_changes

FULL_CHECK_MAX = 20_000  # up to this many experiments, every refresh stats every folder
PROGRESS_EVERY = 500  # folders read between two updates of ``ExperimentIndexDB.progress``
SORTS = {"updated": "updated", "created": "created", "id": "id", "dataset": "dataset", "model": "model",
         "adapter": "adapter", "status": "status", "epochs": "epochs_done"}


@dataclass
class RefreshStats:
    total: int
    reread: int
    removed: int
    seconds: float
    rebuilt: bool = False


def index_file(paths: ProjectPaths) -> Path:
    return paths.output / ".cache" / "experiments.sqlite"


class ExperimentIndexDB:
    """The index of one project (cheap to create; one SQLite connection per call)."""

    def __init__(self, paths: ProjectPaths):
        self.paths = paths
        self.file = index_file(paths)
        self._lock = threading.Lock()
        # (folders read, folders to read) while a refresh reads many folders (a first build: 100,000
        # take 20-40 s), for a page to show; None otherwise. Written by the refreshing thread only.
        self.progress: tuple[int, int] | None = None

    def connect(self, *, ensure_schema: bool = True) -> contextlib.AbstractContextManager[sqlite3.Connection]:
        """A connection to the index (its tables made sure of unless ``ensure_schema`` is False)."""
        return index_sqlite.connect(self.file, ensure_tables=ensure_schema)

    def refresh(self, *, full: bool = False) -> RefreshStats:
        """Bring the index up to date with the folders.

        Quick (the default): folders named in the change log (``mark_changed``, called by every
        write of ``experiment.json`` / ``state.json``) are re-read, and when the experiments
        folder itself changed (a folder added or removed) its names are listed. Full (``full``,
        or when the index is new): every folder is stat-ed and those whose mtime differs from the
        index are re-read — this also catches files edited by hand.
        """
        return self._locked_refresh(full, blocking=True)

    def refresh_if_idle(self) -> RefreshStats | None:
        """A quick refresh unless another thread is refreshing (then the index is used as it is)."""
        return self._locked_refresh(False, blocking=False)

    def _locked_refresh(self, full: bool, *, blocking: bool) -> RefreshStats | None:
        t0 = time.perf_counter()
        if not self._lock.acquire(blocking=blocking):
            return None
        try:
            try:
                return self._refresh(full, t0)
            except sqlite3.DatabaseError as exc:
                if not is_corrupt(exc):  # "database is locked" and the like are not a reason to delete it
                    raise
                # a corrupt index file: it is only a cache
                delete_index(self.file)
                return self._refresh(True, t0)
        finally:
            self.progress = None
            self._lock.release()

    def _refresh(self, full: bool, t0: float) -> RefreshStats:
        root = str(self.paths.experiments)
        log_file = changes_file(self.paths)
        with self.connect(ensure_schema=False) as con:
            rebuilt = ensure_schema(con)
            meta = dict(con.execute("SELECT key, value FROM meta"))
            try:
                root_mtime = str(os.stat(root).st_mtime_ns)
            except FileNotFoundError:
                root_mtime = "none"
            try:
                st = os.stat(log_file)
                log_id, log_size = f"{st.st_ino}", st.st_size
            except FileNotFoundError:
                log_id, log_size = "none", 0
            full = full or rebuilt or "root_mtime" not in meta
            # Up to FULL_CHECK_MAX experiments every refresh is a full one (a few stats per folder
            # are cheap there, and hand edits show at once); beyond, the change log carries it.
            if not full:
                count = int(meta.get("count", 0) or 0)
                full = count <= FULL_CHECK_MAX
            root_changed = meta.get("root_mtime") != root_mtime
            # Every row's stamp only when folders may have been added or removed.
            known = dict(con.execute("SELECT id, stamp FROM experiments")) if full or root_changed else {}
            if full:
                on_disk = scan_folders(root, stat=True)
                changed = [n for n, s in on_disk.items() if known.get(n) != s]
            else:
                offset = int(meta.get("log_offset", 0)) if meta.get("log_id") == log_id else 0
                changed = list(dict.fromkeys(read_changes(log_file, offset, log_size)))
                if root_changed:
                    on_disk = scan_folders(root, stat=False)
                    changed += [n for n in on_disk if n not in known]
                else:
                    on_disk = None
            gone = [n for n in known if on_disk is not None and n not in on_disk]
            rows = []
            recent = time.time_ns() - 2_000_000_000
            todo = list(dict.fromkeys(changed))
            for i, name in enumerate(todo):
                if i % PROGRESS_EVERY == 0 and len(todo) > PROGRESS_EVERY:
                    self.progress = (i, len(todo))
                d = os.path.join(root, name)
                stamp = on_disk.get(name) if on_disk and on_disk.get(name) else folder_stamp(d)
                if stamp.startswith("-"):  # the folder is gone
                    gone.append(name)
                    continue
                # A folder changed in the last 2 s may change again within the same mtime tick:
                # store no stamp, so the next full check reads it once more.
                newest = max(int(x.split(".")[0]) for x in stamp.split(":") if x != "-")
                row = row_from_files(d, name, stamp if newest < recent else "recent")
                if row is None:
                    gone.append(name)
                else:
                    rows.append(row)
            with con:
                con.executemany(f"INSERT OR REPLACE INTO experiments ({','.join(COLS)}) "
                                f"VALUES ({','.join('?' * len(COLS))})", rows)
                con.executemany("DELETE FROM experiments WHERE id = ?", [(n,) for n in set(gone)])
                if not rebuilt:  # the re-read rows' pairs are written again below
                    con.executemany("DELETE FROM identity_kv WHERE id = ?",
                                    [(r[0],) for r in rows] + [(n,) for n in set(gone)])
                con.executemany("INSERT OR IGNORE INTO identity_kv (key, value, dataset, model, adapter, id, "
                                "epoch_seconds) VALUES (?, ?, ?, ?, ?, ?, ?)",
                                [pair for row in rows for pair in identity_pairs(row)])
                total = con.execute("SELECT count(*) FROM experiments").fetchone()[0]
                con.executemany("INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)",
                                [("root_mtime", root_mtime), ("log_id", log_id), ("log_offset", str(log_size)),
                                 ("count", str(total))])
        return RefreshStats(total, len(rows), len(set(gone)), time.perf_counter() - t0, rebuilt)

    # -- queries -------------------------------------------------------------------------------------
    def page(self, *, query: str = "", dataset: str | None = None, model: str | None = None,
             status: str | None = None, sort: str = "updated", descending: bool = True, page: int = 1,
             per_page: int = 50) -> tuple[list[dict[str, Any]], int]:
        """One page of the filtered, sorted listing and the number of matching rows. A row whose
        record says "running" is checked against the lease (``interrupted`` when its process is
        gone), like the experiment store's own listing; a damaged one carries ``error``."""
        live = status in (ExperimentStatus.RUNNING.value, ExperimentStatus.INTERRUPTED.value)
        where, args = [], []
        for col, value in (("dataset", dataset), ("model", model),
                           ("status", ExperimentStatus.RUNNING.value if live else status)):
            if value:
                where.append(f"{col} = ?")
                args.append(value)
        q = query.strip().lower()
        if q:
            like = "%" + q.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
            where.append("(id LIKE ? ESCAPE '\\' OR dataset LIKE ? ESCAPE '\\' OR model LIKE ? ESCAPE '\\' "
                         "OR adapter LIKE ? ESCAPE '\\' OR status LIKE ? ESCAPE '\\')")
            args += [like] * 5
        clause = ("WHERE " + " AND ".join(where)) if where else ""
        col = SORTS.get(sort, "updated")
        # No "col IS NULL" term: the sort columns are never NULL (index_rows stores "" / 0), and an
        # expression would keep SQLite from walking the column's index (40 ms -> 2 ms at 100,000).
        order = f"{col} {'DESC' if descending else 'ASC'}, id {'DESC' if descending else 'ASC'}"
        everything = per_page == 0 or live  # all_rows(), or "running" rows to be checked (a few)
        per_page = max(1, min(int(per_page), 500))
        names = ("id", "dataset", "model", "adapter", "status", "epochs_done", "max_epochs", "created", "updated",
                 "parent", "error", "metric_modes")
        with self.connect() as con:
            total = con.execute(f"SELECT count(*) FROM experiments {clause}", args).fetchone()[0]
            pages = max(1, -(-total // per_page))
            page = max(1, min(int(page), pages))
            limit = [-1, 0] if everything else [per_page, (page - 1) * per_page]
            cur = con.execute(f"SELECT {', '.join(names)} FROM experiments {clause} ORDER BY {order} "
                              "LIMIT ? OFFSET ?", [*args, *limit])
            rows = [dict(zip(names, r)) for r in cur]
        for r in rows:
            if r["status"] == ExperimentStatus.RUNNING.value and store.lease_holder(self.paths.experiment(r["id"])) is None:
                r["status"] = ExperimentStatus.INTERRUPTED.value
            if r["error"] is None or r["status"] != ExperimentStatus.DAMAGED.value:
                r.pop("error")
            r["epochs"] = f"{r['epochs_done']}/{r['max_epochs'] if r['max_epochs'] is not None else '?'}"
            r["metric_modes"] = json.loads(r["metric_modes"] or "{}")  # declared directions (utils.metric_mode)
        if live:
            rows = [r for r in rows if r["status"] == status]
            total = len(rows)
            page = max(1, min(int(page), max(1, -(-total // per_page))))
            rows = rows[(page - 1) * per_page: page * per_page]
        return rows, total

    def all_rows(self) -> list[dict[str, Any]]:
        """Every experiment's listing row (as :meth:`page` gives), most recently updated first."""
        rows, _ = self.page(per_page=0)
        return rows

    def candidates(self, dataset: str | None, model: str | None) -> list[tuple[str, dict, dict, float | None]]:
        """(id, selection, identity_values, epoch_seconds) of every experiment of a dataset/model,
        most recently updated first; selection is {dataset, model, adapter, init_from}."""
        with self.connect() as con:
            rows = con.execute("SELECT id, adapter, init_from, identity_values, epoch_seconds FROM experiments "
                               "WHERE dataset = ? AND model = ? ORDER BY updated DESC", (dataset, model)).fetchall()
        if not rows:
            return []
        # One C-level parse of all the JSON texts instead of one json.loads per row (3x faster).
        values = json.loads("[" + ",".join(r[3] for r in rows) + "]")
        return [(r[0], {"dataset": dataset, "model": model, "adapter": r[1], "init_from": r[2]}, values[i], r[4])
                for i, r in enumerate(rows)]

    def epoch_seconds_of(self, ids: Iterable[str]) -> dict[str, tuple[float | None]]:
        """``{id: (mean epoch seconds or None,)}`` of the indexed experiments among ``ids`` (one query)."""
        ids = list(dict.fromkeys(i for i in ids if i))
        out: dict[str, tuple[float | None]] = {}
        with self.connect() as con:
            for k in range(0, len(ids), 500):  # SQLite's limit on bound variables
                chunk = ids[k:k + 500]
                out.update((r[0], (r[1],)) for r in con.execute(
                    f"SELECT id, epoch_seconds FROM experiments WHERE id IN ({','.join('?' * len(chunk))})", chunk))
        return out

    def runs_sharing(self, dataset: str | None, model: str | None, adapter: str | None,
                     pairs: Iterable[tuple[str, str]]) -> dict[tuple[str, str], list[tuple[str, float | None]]]:
        """For each ``(key, normalized value)`` pair (``index_rows.norm_value``), ``(id, mean epoch
        seconds)`` of the runs of a dataset/model (and ``adapter`` unless empty) whose identity
        has it: one range of the ``identity_kv`` table's key each, the other runs are not read."""
        clause, args = _selection(dataset, model, adapter)
        with self.connect() as con:
            return {(key, value): con.execute(f"SELECT id, epoch_seconds FROM identity_kv WHERE key = ? AND value = ? "
                                              f"AND {clause}", [key, value, *args]).fetchall()
                    for key, value in dict.fromkeys(pairs)}

    def epoch_seconds_median(self, dataset: str | None, model: str | None,
                             adapter: str | None) -> tuple[float | None, list[str]]:
        """The median of the recorded mean epoch seconds of the runs of a dataset/model (and
        ``adapter`` unless empty; computed by SQLite), and the IDs of the runs without one
        (older records, or no epoch yet: their metrics logs tell)."""
        clause, args = _selection(dataset, model, adapter)
        with self.connect() as con:
            n = con.execute(f"SELECT count(epoch_seconds) FROM experiments WHERE {clause}", args).fetchone()[0]
            mid = [r[0] for r in con.execute(f"SELECT epoch_seconds FROM experiments WHERE {clause} AND epoch_seconds "
                                             "IS NOT NULL ORDER BY epoch_seconds LIMIT ? OFFSET ?",
                                             [*args, 2 - n % 2, (n - 1) // 2])] if n else []
            unrecorded = [r[0] for r in con.execute(f"SELECT id FROM experiments WHERE {clause} AND epoch_seconds "
                                                    "IS NULL", args)]
        return (sum(mid) / len(mid) if mid else None), unrecorded

    def group_epoch_seconds(self, dataset: str | None, model: str | None, adapter: str | None) -> list[float]:
        """Every recorded mean epoch seconds of the runs of a dataset/model (and ``adapter`` unless empty)."""
        clause, args = _selection(dataset, model, adapter)
        with self.connect() as con:
            return [r[0] for r in con.execute(f"SELECT epoch_seconds FROM experiments WHERE {clause} "
                                              "AND epoch_seconds IS NOT NULL", args)]

    def epoch_seconds(self, experiment_id: str) -> tuple[float | None] | None:
        """``(mean epoch seconds or None,)`` of an indexed experiment; None if it is not indexed."""
        with self.connect() as con:
            row = con.execute("SELECT epoch_seconds FROM experiments WHERE id = ?", (experiment_id,)).fetchone()
        return None if row is None else (row[0],)

    def children(self, experiment_id: str) -> list[str]:
        """IDs of the experiments warm-started from this one, most recently updated first."""
        with self.connect() as con:
            return [r[0] for r in con.execute("SELECT id FROM experiments WHERE parent = ? ORDER BY updated DESC",
                                              (experiment_id,))]

    def metric_modes(self, experiment_id: str) -> dict[str, str]:
        """The declared metric directions recorded for an experiment ({} if none or not indexed)."""
        with self.connect() as con:
            row = con.execute("SELECT metric_modes FROM experiments WHERE id = ?", (experiment_id,)).fetchone()
        return json.loads(row[0] or "{}") if row else {}

    def count(self) -> int:
        with self.connect() as con:
            return con.execute("SELECT count(*) FROM experiments").fetchone()[0]


def _selection(dataset: str | None, model: str | None, adapter: str | None) -> tuple[str, list]:
    """WHERE clause and arguments of the runs of a dataset/model (and ``adapter`` unless empty)."""
    if adapter:
        return "dataset = ? AND model = ? AND adapter = ?", [dataset, model, adapter]
    return "dataset = ? AND model = ?", [dataset, model]


_shared: dict[str, tuple[float, ExperimentIndexDB]] = {}


def fresh_index(paths: ProjectPaths, max_age: float = 0.0) -> ExperimentIndexDB:
    """The project's index, refreshed unless this process refreshed it less than ``max_age`` s ago."""
    key = str(paths.root)
    at, db = _shared.get(key, (0.0, None))
    if db is None:
        db = ExperimentIndexDB(paths)
    if time.monotonic() - at > max_age or at == 0.0:
        db.refresh()
        _shared[key] = (time.monotonic(), db)
    return db


def index_for_hints(paths: ProjectPaths) -> ExperimentIndexDB | None:
    """:func:`fresh_index` for look-ups that are only hints (nearest experiment, ETAs): None when
    the index cannot be brought up to date — a full disk, or a teammate's project whose cache
    folder this user cannot write — so a submit or a queue listing never fails for a hint."""
    try:
        return fresh_index(paths)
    except (OSError, sqlite3.OperationalError):
        return None


def main(argv: list[str] | None = None) -> int:
    """``python -m MLSystem.experiment_index [--full]``: bring the index up to date and say how."""
    import argparse

    p = argparse.ArgumentParser(prog="python -m MLSystem.experiment_index", description=main.__doc__)
    p.add_argument("--full", action="store_true", help="stat every folder (catches files edited by hand)")
    args = p.parse_args(argv)
    stats = ExperimentIndexDB(ProjectPaths.discover()).refresh(full=args.full)
    print(f"{stats.total} experiments indexed ({'rebuilt, ' if stats.rebuilt else ''}{stats.reread} re-read, "
          f"{stats.removed} removed) in {stats.seconds:.2f}s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
