"""Experiment listing: the summary cache never shows stale or broken data."""

from __future__ import annotations

import shutil

import pytest

from MLSystem import experiment_store as store
from MLSystem.errors import CorruptFileError
from MLSystem.paths import ProjectPaths
from MLSystem.records import TrainingState
from MLSystem.utils.atomic import atomic_write_json


def make(paths: ProjectPaths, eid: str, updated: str, epochs: int | None = None) -> None:
    exp = paths.experiment(eid)
    exp.dir.mkdir(parents=True)
    atomic_write_json(exp.metadata, {"id": eid, "dataset": "digits", "model": "cnn", "updated": updated,
                                     "identity": {"dataset": "digits", "model": "cnn", "params": {}}})
    if epochs is not None:
        exp.checkpoints.mkdir()
        exp.last_ckpt.write_bytes(b"x")
        store.write_state(exp, TrainingState(epochs_completed=epochs))


def listing(paths: ProjectPaths) -> list[tuple[str, int | None]]:
    return [(s.id, s.state.epochs_completed if s.state else None) for s in store.list_experiments(paths)]


def test_listing_follows_every_change_through_the_cache(project):
    paths = ProjectPaths.discover()
    assert store.list_experiments(paths) == []
    make(paths, "a" * 12, "2026-01-01", 1)
    make(paths, "b" * 12, "2026-01-02")
    assert listing(paths) == [("b" * 12, None), ("a" * 12, 1)]  # newest first
    cache = paths.output / ".cache" / "experiment-summaries.json"
    assert cache.is_file()

    store.write_state(paths.experiment("a" * 12), TrainingState(epochs_completed=2))
    store.update_record(paths.experiment("a" * 12), status="complete")
    assert listing(paths)[0] == ("a" * 12, 2)  # update_record made it the newest
    assert store.list_experiments(paths)[0].record.status == "complete"

    paths.experiment("a" * 12).last_ckpt.unlink()  # no usable checkpoint: no state
    assert ("a" * 12, None) in listing(paths)
    shutil.rmtree(paths.experiment("b" * 12).dir)
    assert [eid for eid, _ in listing(paths)] == ["a" * 12]

    # A fresh process (no in-memory copy) reading a corrupt cache still lists correctly.
    store.forget_cached_listings()
    cache.write_text("{not json")
    make(paths, "c" * 12, "2026-01-03", 4)
    assert listing(paths) == [("a" * 12, None), ("c" * 12, 4)]  # a was updated just now


def test_a_corrupt_experiment_json_is_listed_as_damaged_naming_the_file(project):
    paths = ProjectPaths.discover()
    make(paths, "a" * 12, "2026-01-01")
    make(paths, "b" * 12, "2026-01-02")
    make(paths, "c" * 12, "2026-01-03")
    bad = paths.experiment("b" * 12).metadata
    bad.write_text('{"id": "bbb", "upd')
    paths.experiment("c" * 12).metadata.write_bytes(b"\x89PNG\r\n\x1a\n\xff\xfe")  # binary garbage
    listed = {s.id: s.record for s in store.list_experiments(paths)}
    assert set(listed) == {"a" * 12, "b" * 12, "c" * 12}  # nothing vanishes
    assert listed["a" * 12].status == "new"
    for eid in ("b" * 12, "c" * 12):
        assert listed[eid].status == "damaged"
        assert str(paths.experiment(eid).metadata) in listed[eid].error
    assert "not valid JSON" in listed["b" * 12].error and "not UTF-8" in listed["c" * 12].error
    with pytest.raises(CorruptFileError, match=f"{bad}: not valid JSON .*restore it"):
        store.read_record(paths.experiment("b" * 12))


def test_a_garbled_state_json_names_the_file_and_training_state_falls_back_to_the_checkpoint(project):
    from MLSystem.checkpoint_manager import training_state

    paths = ProjectPaths.discover()
    make(paths, "a" * 12, "2026-01-01", 3)
    exp = paths.experiment("a" * 12)
    exp.state.write_text("garbage")
    with pytest.raises(CorruptFileError, match=f"{exp.state}: not valid JSON"):
        store.read_state(exp)
    assert listing(paths) == [("a" * 12, None)]  # listed, without a state
    assert training_state(exp) is None  # "x" is no checkpoint either: nothing to resume, no crash


def test_running_without_a_lease_holder_reads_as_interrupted(project):
    """A SIGKILLed execute_train leaves "running" in experiment.json; readers see the truth."""
    import os
    import socket
    import subprocess
    import sys

    paths = ProjectPaths.discover()
    make(paths, "a" * 12, "2026-01-01")
    exp = paths.experiment("a" * 12)
    store.update_record(exp, status="running")
    assert store.list_experiments(paths)[0].record.status == "interrupted"  # no lease owner at all
    with store.lease(exp):  # this process trains it: running
        assert store.list_experiments(paths)[0].record.status == "running"
        assert store.live_status(exp, store.read_record(exp)) == "running"
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    atomic_write_json(exp.lease_owner, {"pid": int(dead.stdout), "host": socket.gethostname(), "purpose": "train"})
    assert store.list_experiments(paths)[0].record.status == "interrupted"  # its owner was killed
    assert store.read_record(exp).status == "running"  # readers never rewrite the record
    atomic_write_json(exp.lease_owner, {"pid": os.getpid(), "host": socket.gethostname()})
    assert store.list_experiments(paths)[0].record.status == "running"


def test_one_changed_experiment_does_not_rewrite_the_whole_cache(project):
    paths = ProjectPaths.discover()
    for i in range(30):
        make(paths, f"{i:012x}", "2026-01-01", 1)
    store.list_experiments(paths)
    cache = paths.output / ".cache" / "experiment-summaries.json"
    written = cache.stat().st_mtime_ns
    store.write_state(paths.experiment(f"{3:012x}"), TrainingState(epochs_completed=2))  # a running job's checkpoint
    assert dict(listing(paths))[f"{3:012x}"] == 2  # seen at once...
    assert cache.stat().st_mtime_ns == written  # ...without rewriting the file for it
    store.forget_cached_listings()  # another process re-reads that one entry from disk
    assert dict(listing(paths))[f"{3:012x}"] == 2
