"""Multi-process training (Lightning DDP, gloo on CPU): the data is dealt out per rank, and a run
stopped mid-epoch resumes exactly — same samples per rank, same final weights as an
uninterrupted DDP run. Single-device resume is covered by test_resume.py."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from torch.utils.data import TensorDataset

import MLSystem.resumable as resumable
from conftest import add_probe_model, make_project, run_cli
from MLSystem.paths import ProjectPaths
from MLSystem.resumable import BucketBatchSampler, ResumableDataLoader, ResumableSampler


def test_sampler_deals_every_sample_once_per_epoch_over_the_ranks():
    n, world = 10, 3
    shards = [list(ResumableSampler(n, seed=5, num_replicas=world, rank=r)) for r in range(world)]
    assert [len(s) for s in shards] == [4, 4, 4]  # padded to a multiple of the world size
    dealt = [i for step in zip(*shards) for i in step]
    assert dealt[:n] == ResumableSampler(n, seed=5).order(0)  # round-robin over the global order
    assert sorted(set(dealt)) == list(range(n))
    # A restore skips this rank's consumed samples only.
    s = ResumableSampler(n, seed=5, num_replicas=world, rank=1)
    s.skip_in_epoch(0, 2)
    assert list(s) == shards[1][2:]
    # One process: unchanged order and length (existing experiments resume as before).
    assert list(ResumableSampler(n, seed=5)) == ResumableSampler(n, seed=5).order(0)


def test_bucket_batches_are_dealt_over_the_ranks():
    lengths = list(range(50))
    whole = BucketBatchSampler(lengths, 8, seed=2).batches(0)  # 7 batches
    shards = [list(BucketBatchSampler(lengths, 8, seed=2, num_replicas=2, rank=r)) for r in range(2)]
    assert [len(s) for s in shards] == [4, 4]
    assert [b for pair in zip(*shards) for b in pair][:7] == whole


def _loader(monkeypatch, world: int, rank: int, n: int = 20) -> ResumableDataLoader:
    monkeypatch.setattr(resumable, "world", lambda: (world, rank))
    return ResumableDataLoader(TensorDataset(torch.arange(n)), batch_size=2, seed=3)


def test_loader_state_is_global_and_each_rank_restores_its_share(monkeypatch):
    ranks = [_loader(monkeypatch, 2, r) for r in range(2)]
    full = []
    for r, loader in enumerate(ranks):
        monkeypatch.setattr(resumable, "world", lambda r=r: (2, r))
        full.append([b[0].tolist() for b in loader])
        loader.consumed_batches = 2
    state = ranks[0].state_dict()
    assert state == {"epoch": 0, "consumed_samples": 8, "world_size": 2}  # 2 ranks x 2 batches x 2
    for r in range(2):
        resumed = _loader(monkeypatch, 2, r)
        resumed.load_state_dict(state)
        assert [b[0].tolist() for b in resumed] == full[r][2:]
    # The same checkpoint on another number of processes is refused (it would not be the same run).
    with pytest.raises(ValueError, match="stopped mid-epoch with 2 processes; resume it with 2"):
        _loader(monkeypatch, 1, 0).load_state_dict(state)


# -- end to end: python -m MLSystem.execute_train ... accelerator=cpu devices=2 ----------------------
DDP = ["dataset=digits", "model=probe", "max_epochs=2", "n_train=200", "n_val=64", "batch_size=32",
       "accelerator=cpu", "devices=2"]  # 100 samples per rank: 4 steps per epoch, the last one short


def _exp(root: Path) -> Path:
    return next(ProjectPaths(root).experiments.glob("*/experiment.json")).parent


def _rows(d: Path) -> dict[int, list[dict]]:
    rows = [json.loads(line) for line in (d / "probe.jsonl").read_text().splitlines()]
    return {rank: sorted((r for r in rows if r["rank"] == rank), key=lambda r: r["step"]) for rank in (0, 1)}


@pytest.mark.slow
def test_ddp_stopped_mid_epoch_resumes_exactly_like_an_uninterrupted_run(tmp_path):
    ref_root, root = make_project(tmp_path / "ref"), make_project(tmp_path / "run")
    for r in (ref_root, root):
        add_probe_model(r)
    run_cli(ref_root, "MLSystem.execute_train", *DDP, check=True, timeout=600)
    ref = _exp(ref_root)

    first = run_cli(root, "MLSystem.execute_train", *DDP, "stop_at_step=3", timeout=600)
    assert first.returncode == 3, first.stdout + first.stderr
    d = _exp(root)
    state = json.loads((d / "state.json").read_text())
    assert (state["global_step"], state["mid_epoch"], state["world_size"]) == (3, True, 2)
    second = run_cli(root, "MLSystem.execute_train", *DDP, "stop_at_step=6", timeout=600)
    assert second.returncode == 3 and "mid-epoch 1 of 2 epochs (global step 3)" in second.stdout, second.stdout + second.stderr
    # Another number of processes cannot continue this epoch: a clear bad-input error, nothing run.
    other = run_cli(root, "MLSystem.execute_train", *DDP, "devices=1", timeout=600)
    assert other.returncode == 2 and "resume it with devices x num_nodes = 2" in other.stderr, other.stderr
    third = run_cli(root, "MLSystem.execute_train", *DDP, timeout=600)
    assert third.returncode == 0 and "mid-epoch 2 of 2 epochs (global step 6)" in third.stdout, third.stdout + third.stderr

    got, want = _rows(d), _rows(ref)
    for rank in (0, 1):
        assert [r["step"] for r in got[rank]] == list(range(1, 9))  # every step once per rank
        assert got[rank] == want[rank]  # the same samples per rank, in the same order
    for epoch in (0, 1):  # the two ranks together see every sample of the epoch exactly once
        seen = [s for rank in (0, 1) for r in got[rank] if r["epoch"] == epoch for s in r["samples"]]
        assert len(seen) == len(set(seen)) == 200
    w = torch.load(d / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=False)["state_dict"]
    w_ref = torch.load(ref / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=False)["state_dict"]
    assert w.keys() == w_ref.keys()
    for k in w:
        torch.testing.assert_close(w[k], w_ref[k], rtol=1e-5, atol=1e-6)
    meta = json.loads((d / "experiment.json").read_text())
    assert [s["status"] for s in meta["segments"]][-1] == "complete"
