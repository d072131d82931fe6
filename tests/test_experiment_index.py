"""The SQLite query index over the experiment folders: the folders stay the source of truth."""

from __future__ import annotations

import json
import os
import shutil
import time
from pathlib import Path

from MLSystem.experiment_index import ExperimentIndexDB, index_file
from MLSystem.utils.change_log import mark_changed
from MLSystem.builder import nearest_experiment
from MLSystem.experiment_store import init_record, update_record
from MLSystem.index_rows import norm_value
from MLSystem.paths import ProjectPaths


def make(paths: ProjectPaths, eid: str, model: str = "cnn", lr: float = 0.001, status: str = "complete") -> None:
    exp = paths.experiment(eid)
    ident = {"dataset": "digits", "model": model, "adapter": "digits", "params": {"lr": lr}}
    init_record(exp, ident, {"lr": lr, "seed": 1}, {}, None)
    update_record(exp, status=status, max_epochs=3)


def ids(db: ExperimentIndexDB, **kw) -> list[str]:
    return [r["id"] for r in db.page(**kw)[0]]


def test_index_follows_the_folders(tmp_path, monkeypatch):
    from MLSystem import experiment_index

    monkeypatch.setattr(experiment_index, "FULL_CHECK_MAX", 0)  # a "large" project: quick refreshes
    paths = ProjectPaths(tmp_path)
    for i in range(5):
        make(paths, f"{i:012x}", model=("cnn", "mlp")[i % 2], lr=0.001 * (i + 1))
    db = ExperimentIndexDB(paths)
    assert db.refresh().rebuilt and db.count() == 5
    assert sorted(ids(db, model="mlp")) == ["000000000001", "000000000003"]
    assert ids(db, query="MLP", sort="id", descending=False) == ["000000000001", "000000000003"]  # any case
    assert ids(db, query="%") == []  # LIKE wildcards are literal
    rows, total = db.page(per_page=2, page=3, sort="id", descending=False)
    assert total == 5 and [r["id"] for r in rows] == ["000000000004"] and rows[0]["epochs"] == "0/3"

    # A write through the experiment store is seen by a quick refresh (change log), as are new
    # and deleted folders (the experiments folder's mtime).
    update_record(paths.experiment("000000000000"), status="failed")
    make(paths, "0000000000aa")
    shutil.rmtree(paths.experiment("000000000002").dir)
    stats = db.refresh()
    assert stats.reread == 2 and stats.removed == 1
    assert ids(db, status="failed") == ["000000000000"] and db.count() == 5

    # A hand edit (no change-log line) is caught by the full check: the folder's mtime changed.
    meta_file = paths.experiment("000000000001").metadata
    meta = json.loads(meta_file.read_text())
    tmp = meta_file.with_suffix(".tmp")
    tmp.write_text(json.dumps({**meta, "status": "stopped"}))
    os.replace(tmp, meta_file)
    assert db.refresh().reread == 0 and ids(db, status="stopped") == []
    db.refresh(full=True)
    assert ids(db, status="stopped") == ["000000000001"]


def test_small_projects_see_files_rewritten_in_place_and_list_damaged_ones(tmp_path):
    paths = ProjectPaths(tmp_path)
    make(paths, "00000000000a")
    make(paths, "00000000000b", status="running")  # nobody holds its lease: a killed run
    db = ExperimentIndexDB(paths)
    db.refresh()
    assert ids(db, status="interrupted") == ["00000000000b"] and ids(db, status="running") == []
    paths.experiment("00000000000a").metadata.write_bytes(b"\x00garbled")  # in place, no change log
    db.refresh()
    [row] = db.page(status="damaged")[0]
    assert row["id"] == "00000000000a" and str(paths.experiment("00000000000a").metadata) in row["error"]


def test_missing_or_corrupt_index_is_rebuilt(tmp_path):
    paths = ProjectPaths(tmp_path)
    make(paths, "00000000000a")
    db = ExperimentIndexDB(paths)
    db.refresh()
    index_file(paths).write_bytes(b"this is not a database" * 100)
    for suffix in ("-wal", "-shm"):
        Path(str(index_file(paths)) + suffix).unlink(missing_ok=True)
    assert ExperimentIndexDB(paths).refresh().total == 1
    index_file(paths).unlink()
    assert ExperimentIndexDB(paths).refresh().rebuilt


def test_nearest_experiment_comes_from_the_index(tmp_path):
    paths = ProjectPaths(tmp_path)
    make(paths, "0000000000a1", lr=0.001)
    time.sleep(0.01)
    make(paths, "0000000000a2", lr=0.002)
    make(paths, "0000000000b1", model="mlp", lr=0.003)
    ident = {"dataset": "digits", "model": "cnn", "adapter": "digits", "params": {"lr": 0.003}}
    eid, diff = nearest_experiment(paths, ident, {"lr": 0.003, "seed": 1})
    assert eid in ("0000000000a1", "0000000000a2") and diff == [f"lr: {0.001 if eid.endswith('1') else 0.002} -> 0.003"]
    mark_changed(paths.experiment("0000000000a1").dir)  # harmless extra lines
    assert nearest_experiment(paths, ident, {"lr": 0.003, "seed": 1}, exclude=eid)[0] != eid


def test_runs_sharing_a_value_follow_rewrites_and_removals(tmp_path, monkeypatch):
    """ETAs find the runs that share a job's values through the index's (key, value) table: a
    rewritten record's old values and a removed folder's values are gone from it."""
    from MLSystem import experiment_index

    monkeypatch.setattr(experiment_index, "FULL_CHECK_MAX", 0)  # quick refreshes (change log)
    paths = ProjectPaths(tmp_path)
    make(paths, "0000000000a1", lr=0.1)
    make(paths, "0000000000a2", lr=0.1)
    make(paths, "0000000000b1", model="mlp", lr=0.1)
    db = ExperimentIndexDB(paths)
    db.refresh()

    def sharing(*pairs) -> dict[str, list[str]]:
        found = db.runs_sharing("digits", "cnn", "digits", [(k, norm_value(v)) for k, v in pairs])
        return {f"{k}={v}": sorted(eid for eid, _ in runs) for (k, v), runs in found.items()}

    # Values spelled as on a command line ("0.10", "1") match the recorded 0.1 and 1.
    assert sharing(("lr", "0.10"), ("seed", "1")) == {"lr=0.1": ["0000000000a1", "0000000000a2"],
                                                     "seed=1.0": ["0000000000a1", "0000000000a2"]}
    update_record(paths.experiment("0000000000a1"), identity_values={"lr": 0.3, "seed": 1})
    shutil.rmtree(paths.experiment("0000000000a2").dir)
    db.refresh()
    assert sharing(("lr", "0.1"), ("lr", "0.3")) == {"lr=0.1": [], "lr=0.3": ["0000000000a1"]}
    assert db.epoch_seconds_median("digits", "cnn", None) == (None, ["0000000000a1"])  # none recorded yet
    update_record(paths.experiment("0000000000a1"), epoch_seconds=4.0)
    for eid, secs in (("0000000000a3", 1.0), ("0000000000a4", 2.0), ("0000000000a5", 10.0)):
        make(paths, eid)
        update_record(paths.experiment(eid), epoch_seconds=secs)
    db.refresh()
    assert db.runs_sharing("digits", "cnn", "", [("lr", "0.3")]) == {("lr", "0.3"): [("0000000000a1", 4.0)]}
    assert db.epoch_seconds_median("digits", "cnn", None) == (3.0, [])  # of 1, 2, 4, 10
    assert db.epoch_seconds_median("digits", "cnn", "other") == (None, [])
    make(paths, "0000000000a6")
    update_record(paths.experiment("0000000000a6"), epoch_seconds=5.0)
    db.refresh()
    assert db.epoch_seconds_median("digits", "cnn", "digits") == (4.0, [])  # of 1, 2, 4, 5, 10


def test_children_and_metric_modes_come_from_the_index(tmp_path):
    """The experiment page's warm-started children and declared metric directions: one query each."""
    paths = ProjectPaths(tmp_path)
    make(paths, "0000000000a1")
    for child in ("0000000000c1", "0000000000c2"):
        init_record(paths.experiment(child), {"dataset": "digits", "model": "cnn", "adapter": "digits", "params": {}},
                    {}, {}, "0000000000a1")
        time.sleep(0.01)
    update_record(paths.experiment("0000000000a1"), metric_modes={"val_score": "max"})
    db = ExperimentIndexDB(paths)
    db.refresh()
    assert db.children("0000000000a1") == ["0000000000c2", "0000000000c1"] and db.children("0000000000c1") == []
    assert db.metric_modes("0000000000a1") == {"val_score": "max"} and db.metric_modes("ffffffffffff") == {}


def test_a_long_build_reports_its_progress_then_clears_it(tmp_path, monkeypatch):
    """The experiments page shows "Indexing experiment folders: N of M" from ``progress``."""
    from MLSystem import experiment_index

    monkeypatch.setattr(experiment_index, "PROGRESS_EVERY", 2)
    paths = ProjectPaths(tmp_path)
    for i in range(5):
        make(paths, f"{i:012x}")
    db = ExperimentIndexDB(paths)
    seen = []
    read = experiment_index.row_from_files
    monkeypatch.setattr(experiment_index, "row_from_files", lambda *a: seen.append(db.progress) or read(*a))
    assert db.refresh().rebuilt and db.count() == 5
    assert seen == [(0, 5), (0, 5), (2, 5), (2, 5), (4, 5)] and db.progress is None
    seen.clear()
    monkeypatch.setattr(experiment_index, "PROGRESS_EVERY", 500)
    db.refresh(full=True)  # a few folders read again: nothing worth showing
    assert seen and set(seen) == {None}
