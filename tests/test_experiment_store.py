"""Experiment listing: the summary cache never shows stale or broken data."""

from __future__ import annotations

import shutil

from MLSystem import experiment_store as store
from MLSystem.paths import ProjectPaths
from MLSystem.utils.atomic import atomic_write_json


def make(paths: ProjectPaths, eid: str, updated: str, epochs: int | None = None) -> None:
    exp = paths.experiment(eid)
    exp.dir.mkdir(parents=True)
    atomic_write_json(exp.metadata, {"id": eid, "dataset": "digits", "model": "cnn", "updated": updated,
                                     "identity": {"dataset": "digits", "model": "cnn", "params": {}}})
    if epochs is not None:
        exp.checkpoints.mkdir()
        exp.last_ckpt.write_bytes(b"x")
        store.write_state(exp, {"epochs_completed": epochs})


def listing(paths: ProjectPaths) -> list[tuple[str, int | None]]:
    return [(s.id, (s.state or {}).get("epochs_completed")) for s in store.list_experiments(paths)]


def test_listing_follows_every_change_through_the_cache(project):
    paths = ProjectPaths.discover()
    assert store.list_experiments(paths) == []
    make(paths, "a" * 12, "2026-01-01", 1)
    make(paths, "b" * 12, "2026-01-02")
    assert listing(paths) == [("b" * 12, None), ("a" * 12, 1)]  # newest first
    cache = paths.output / ".cache" / "experiment-summaries.json"
    assert cache.is_file()

    store.write_state(paths.experiment("a" * 12), {"epochs_completed": 2})
    store.update_metadata(paths.experiment("a" * 12), status="complete")
    assert listing(paths)[0] == ("a" * 12, 2)  # update_metadata made it the newest
    assert store.list_experiments(paths)[0].metadata["status"] == "complete"

    paths.experiment("a" * 12).last_ckpt.unlink()  # no usable checkpoint: no state
    assert ("a" * 12, None) in listing(paths)
    shutil.rmtree(paths.experiment("b" * 12).dir)
    assert [eid for eid, _ in listing(paths)] == ["a" * 12]

    # A fresh process (no in-memory copy) reading a corrupt cache still lists correctly.
    store._summary_memo.clear()
    cache.write_text("{not json")
    make(paths, "c" * 12, "2026-01-03", 4)
    assert listing(paths) == [("a" * 12, None), ("c" * 12, 4)]  # a was updated just now


def test_a_corrupt_experiment_json_is_skipped_not_fatal(project):
    paths = ProjectPaths.discover()
    make(paths, "a" * 12, "2026-01-01")
    make(paths, "b" * 12, "2026-01-02")
    paths.experiment("b" * 12).metadata.write_text('{"id": "bbb", "upd')
    assert [s.id for s in store.list_experiments(paths)] == ["a" * 12]


def test_one_changed_experiment_does_not_rewrite_the_whole_cache(project):
    paths = ProjectPaths.discover()
    for i in range(30):
        make(paths, f"{i:012x}", "2026-01-01", 1)
    store.list_experiments(paths)
    cache = paths.output / ".cache" / "experiment-summaries.json"
    written = cache.stat().st_mtime_ns
    store.write_state(paths.experiment(f"{3:012x}"), {"epochs_completed": 2})  # a checkpoint of a running job
    assert dict(listing(paths))[f"{3:012x}"] == 2  # seen at once...
    assert cache.stat().st_mtime_ns == written  # ...without rewriting the file for it
    store._summary_memo.clear()  # another process re-reads that one entry from disk
    assert dict(listing(paths))[f"{3:012x}"] == 2
