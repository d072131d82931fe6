"""Exact mid-epoch resume: a run stopped or killed mid-epoch continues as if never interrupted.

Lightning resumes loop counters but, with a plain ``DataLoader``, replays the first samples of
the epoch and re-seeds the RNG. Three pieces fix that:

* :class:`ResumableSampler` — the epoch's order is a pure function of ``(seed, epoch)``; after a
  restore it skips the samples already consumed in that epoch.
* :class:`BucketBatchSampler` — the same for batches of similar length (speech, text): the
  epoch's batches are a pure function of ``(seed, epoch)`` and their number never changes.

Under DDP (a process group of ``W`` ranks) both shard the epoch like ``DistributedSampler``:
the global order, padded by wrapping around to a multiple of ``W``, is dealt out round-robin
(rank ``r`` gets items ``r, r+W, ...``), so every rank sees the same number of batches. The
loader's state counts *global* progress (``consumed_samples`` / ``consumed_batches`` of the
whole group, plus ``world_size``); every rank restores its own share of it, so a resumed DDP
run sees the same samples per rank as an uninterrupted one. Resuming mid-epoch needs the same
world size (devices x num_nodes); an epoch-end checkpoint resumes on any.
* :class:`ResumableDataLoader` — implements ``state_dict``/``load_state_dict``, which Lightning
  stores in the checkpoint and restores right before it creates the iterator (so worker
  processes prefetch the right indices). Pass ``lengths`` to batch by length. A dataset with a
  ``set_epoch(epoch)`` method is told the epoch before each epoch's iterator starts, so items
  may depend on ``(seed, epoch, index)`` (augmentation) and stay resumable.
* :class:`ExactResumeCallback` — counts consumed batches, saves the RNG states with each
  checkpoint and restores them at the first batch after a resume, and writes the training
  state (epochs completed, global step) into the checkpoint for ``state.json``.
"""

from __future__ import annotations

import random
from typing import Any, Iterator, Sequence

import numpy as np
import torch
from pytorch_lightning import Callback
from torch.utils.data import DataLoader, Dataset, Sampler

from MLSystem.distributed import all_gather_object, world
from MLSystem.records import STATE_KEY


def _epoch_seed(seed: int, epoch: int) -> int:
    # Any fixed injective-enough mix works; it only has to be the same in every process.
    return (int(seed) * 1_000_003 + int(epoch) * 7_919) % (2**63 - 1)


def _deal(items: list, world_size: int, rank: int) -> list:
    """Rank ``rank``'s share of ``items``: padded by wrapping around to a multiple of
    ``world_size`` (like ``DistributedSampler``), then every ``world_size``-th item."""
    if world_size == 1 or not items:
        return items
    total = -(-len(items) // world_size) * world_size
    padded = (items * (total // len(items) + 1))[:total]
    return padded[rank::world_size]


class _Sharded:
    """What both samplers share: an epoch fixed by ``(seed, epoch)``, dealt out over the ranks
    (world size and rank given explicitly, else the process group's — resolved when used,
    because Lightning builds the loaders after it has set up the group), and a one-time skip of
    this rank's first units (samples or batches) of one epoch, for mid-epoch resume."""

    def __init__(self, *, shuffle: bool, seed: int, num_replicas: int | None, rank: int):
        self.shuffle = shuffle
        self.seed = seed
        self.epoch = 0
        self._skip = 0
        self._skip_epoch: int | None = None
        self._replicas, self._rank = num_replicas, rank

    def world(self) -> tuple[int, int]:
        return (self._replicas, self._rank) if self._replicas is not None else world()

    def set_epoch(self, epoch: int) -> None:
        """Called by Lightning at the start of every epoch."""
        self.epoch = epoch

    def skip_in_epoch(self, epoch: int, units: int) -> None:
        """Start epoch ``epoch`` after this rank's first ``units`` units (once)."""
        self._skip, self._skip_epoch = units, epoch

    def _epoch_units(self, epoch: int) -> list:
        raise NotImplementedError

    def __iter__(self) -> Iterator:
        skip = self._skip if self._skip_epoch == self.epoch else 0
        return self._consume(_deal(self._epoch_units(self.epoch), *self.world())[skip:])

    def _consume(self, items: list) -> Iterator:
        """Yield ``items``; a pending mid-epoch skip is spent only when the first one is taken.
        A multi-worker DataLoader iterator calls ``iter(sampler)`` twice (``__init__`` and
        ``_reset``) and uses the second: spending the skip in ``__iter__`` replayed the epoch."""
        started = False
        for item in items:
            if not started:
                self._skip, self._skip_epoch, started = 0, None, True
            yield item


class ResumableSampler(_Sharded, Sampler[int]):
    """Shuffled (or sequential) order fixed by ``(seed, epoch)``; can start mid-epoch; shards
    the epoch over the ranks of a distributed run."""

    def __init__(self, num_samples: int, *, shuffle: bool = True, seed: int = 0,
                 num_replicas: int | None = None, rank: int = 0):
        super().__init__(shuffle=shuffle, seed=seed, num_replicas=num_replicas, rank=rank)
        self.num_samples = num_samples

    def order(self, epoch: int) -> list[int]:
        if not self.shuffle:
            return list(range(self.num_samples))
        g = torch.Generator().manual_seed(_epoch_seed(self.seed, epoch))
        return torch.randperm(self.num_samples, generator=g).tolist()

    _epoch_units = order  # the unit skipped on resume is a sample

    def __len__(self) -> int:
        # The full epoch (this rank's share): Lightning counts the already-done batches itself
        # after a restore.
        size, _ = self.world()
        return -(-self.num_samples // size)


class BucketBatchSampler(_Sharded, Sampler[list[int]]):
    """Batches of items of similar length, so padding wastes little compute.

    Each epoch sorts the items by length times a random factor in ``[1 - jitter, 1 + jitter]``
    (batches differ from epoch to epoch), cuts the order into ``batch_size`` chunks and
    shuffles the chunks. Everything is drawn from ``(seed, epoch)`` and the number of batches
    is fixed, which is what exact mid-epoch resume needs. Unshuffled (evaluation), it is the
    plain length order. Under DDP the epoch's batches are dealt out over the ranks.
    """

    def __init__(self, lengths: Sequence[int], batch_size: int, *, shuffle: bool = True, seed: int = 0,
                 jitter: float = 0.1, num_replicas: int | None = None, rank: int = 0):
        if batch_size < 1:
            raise ValueError(f"batch_size: must be >= 1, got {batch_size}")
        super().__init__(shuffle=shuffle, seed=seed, num_replicas=num_replicas, rank=rank)
        self.lengths = torch.as_tensor(list(lengths), dtype=torch.float64)
        self.batch_size = batch_size
        self.jitter = jitter

    def batches(self, epoch: int) -> list[list[int]]:
        if not self.shuffle:
            order = torch.argsort(self.lengths, stable=True).tolist()
            return [order[i:i + self.batch_size] for i in range(0, len(order), self.batch_size)]
        g = torch.Generator().manual_seed(_epoch_seed(self.seed, epoch))
        noise = 1.0 + self.jitter * (2.0 * torch.rand(len(self.lengths), generator=g, dtype=torch.float64) - 1.0)
        order = torch.argsort(self.lengths * noise, stable=True).tolist()
        chunks = [order[i:i + self.batch_size] for i in range(0, len(order), self.batch_size)]
        return [chunks[i] for i in torch.randperm(len(chunks), generator=g).tolist()]

    _epoch_units = batches  # the unit skipped on resume is a batch

    def __len__(self) -> int:
        size, _ = self.world()
        return -(-((len(self.lengths) + self.batch_size - 1) // self.batch_size) // size)


class ResumableDataLoader(DataLoader):
    """A ``DataLoader`` whose position is saved in checkpoints: over a :class:`ResumableSampler`,
    or over a :class:`BucketBatchSampler` when ``lengths`` (one per item) are given."""

    def __init__(self, dataset: Dataset, *, batch_size: int, shuffle: bool = True, seed: int = 0,
                 lengths: Sequence[int] | None = None, **kwargs: Any):
        self._seed = seed
        generator = torch.Generator().manual_seed(seed)
        if lengths is None:
            sampler = ResumableSampler(len(dataset), shuffle=shuffle, seed=seed)
            super().__init__(dataset, batch_size=batch_size, sampler=sampler, generator=generator, **kwargs)
        else:
            if len(lengths) != len(dataset):
                raise ValueError(f"lengths: {len(lengths)} values for {len(dataset)} items")
            buckets = BucketBatchSampler(lengths, batch_size, shuffle=shuffle, seed=seed)
            super().__init__(dataset, batch_sampler=buckets, generator=generator, **kwargs)
        self.consumed_batches = 0

    @property
    def _bucketed(self) -> bool:
        return isinstance(self.batch_sampler, BucketBatchSampler)

    @property
    def _epoch(self) -> int:
        return self.batch_sampler.epoch if self._bucketed else self.sampler.epoch

    def __iter__(self):
        # Worker seeds come from this generator: make them a function of (seed, epoch) too.
        self.generator.manual_seed(_epoch_seed(self._seed + 1, self._epoch))
        # A dataset whose items depend on the epoch (e.g. augmentation drawn from (seed, epoch,
        # index)) learns it here, before this epoch's workers copy it.
        if hasattr(self.dataset, "set_epoch"):
            if self.persistent_workers:
                raise ValueError("persistent_workers: not supported with a dataset that has set_epoch "
                                 "(its workers would keep the first epoch's copy)")
            self.dataset.set_epoch(self._epoch)
        return super().__iter__()

    @property
    def _sharded(self) -> _Sharded:
        return self.batch_sampler if self._bucketed else self.sampler

    def state_dict(self) -> dict[str, Any]:
        # Global progress: every rank of a DDP run has consumed the same number of batches.
        size, _ = self._sharded.world()
        if self._bucketed:
            state = {"epoch": self._epoch, "consumed_batches": self.consumed_batches * size}
        else:
            state = {"epoch": self._epoch, "consumed_samples": self.consumed_batches * self.batch_size * size}
        if size > 1:
            state["world_size"] = size
        return state

    def load_state_dict(self, state: dict[str, Any]) -> None:
        epoch = int(state.get("epoch", 0))
        size, _ = self._sharded.world()
        saved = int(state.get("world_size", 1))
        consumed = int(state.get("consumed_batches" if self._bucketed else "consumed_samples", 0))
        per_rank = consumed // size
        mid_epoch = 0 < per_rank < len(self._sharded)
        if mid_epoch and saved != size:
            # Another deal of the remaining samples would not be the run that was interrupted,
            # and Lightning's restored batch counter would cut or pad the epoch.
            raise ValueError(f"devices/num_nodes: this run was stopped mid-epoch with {saved} processes; "
                             f"resume it with {saved} (devices x num_nodes), not {size}")
        if self._bucketed:
            self.consumed_batches = per_rank
            if mid_epoch:
                self.batch_sampler.skip_in_epoch(epoch, per_rank)
            return
        self.consumed_batches = per_rank // self.batch_size
        if mid_epoch:
            self.sampler.skip_in_epoch(epoch, per_rank)


def capture_rng() -> dict[str, Any]:
    """RNG states as tensors and plain types (loadable with ``weights_only=True``)."""
    name, keys, pos, has_gauss, cached = np.random.get_state()
    state = {
        "torch": torch.get_rng_state(),
        "numpy": (name, torch.from_numpy(keys.astype(np.int64)), int(pos), int(has_gauss), float(cached)),
        "python": random.getstate(),
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def restore_rng(state: dict[str, Any]) -> None:
    torch.set_rng_state(state["torch"])
    name, keys, pos, has_gauss, cached = state["numpy"]
    np.random.set_state((name, keys.numpy().astype(np.uint32), pos, has_gauss, cached))
    random.setstate(_as_tuple(state["python"]))
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def _as_tuple(obj: Any) -> Any:
    return tuple(_as_tuple(x) for x in obj) if isinstance(obj, (list, tuple)) else obj


class ExactResumeCallback(Callback):
    """Keeps the data position and RNG streams of an interrupted run; records training state."""

    def __init__(self) -> None:
        self._pending_rng: dict[str, Any] | None = None

    @property
    def state_key(self) -> str:
        return "ExactResume"

    def state_dict(self) -> dict[str, Any]:
        # Lightning builds the checkpoint on every rank and writes rank 0's: gather every rank's
        # RNG streams into it (DDP ranks draw different dropout masks, augmentations...).
        rng = capture_rng()
        state: dict[str, Any] = {"rng": rng}
        if world()[0] > 1:
            state["rng_ranks"] = all_gather_object(rng)
        return state

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        size, rank = world()
        ranks = state_dict.get("rng_ranks")
        self._pending_rng = ranks[rank] if ranks and len(ranks) == size else state_dict.get("rng")

    def on_train_start(self, trainer, pl_module) -> None:
        if trainer.world_size > 1 and not isinstance(trainer.train_dataloader, ResumableDataLoader):
            # Lightning's sampler injection is off (MLSystem's loaders shard themselves): a plain
            # loader would feed every rank the same data.
            raise ValueError(f"devices/num_nodes: {trainer.world_size} processes need the training loader from "
                             f"BaseDataModule.train_loader (a ResumableDataLoader: shards the data per rank, "
                             f"resumes exactly), got {type(trainer.train_dataloader).__name__}")

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        if self._pending_rng is not None:
            restore_rng(self._pending_rng)
            self._pending_rng = None

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        loader = trainer.train_dataloader
        if isinstance(loader, ResumableDataLoader):
            loader.consumed_batches = batch_idx + 1

    def on_save_checkpoint(self, trainer, pl_module, checkpoint: dict[str, Any]) -> None:
        checkpoint[STATE_KEY] = training_state(trainer)


def training_state(trainer) -> dict[str, Any]:
    """Epochs completed / global step as the checkpoint being written will restore them."""
    epochs, batches = trainer.fit_loop.epoch_progress.current, trainer.fit_loop.epoch_loop.batch_progress.current
    total = trainer.num_training_batches
    # Between the last batch and the fit loop's epoch bookkeeping (validation, epoch-end
    # checkpoints) the epoch is trained but not yet counted as processed.
    batches_done = total != float("inf") and batches.processed >= total
    completed = epochs.processed + (1 if batches_done and epochs.processed < epochs.started else 0)
    state = {
        "epochs_completed": int(completed),
        "global_step": int(trainer.global_step),
        "mid_epoch": epochs.processed < epochs.started and not batches_done and batches.processed > 0,
        "max_epochs": int(trainer.max_epochs),
    }
    if trainer.world_size > 1:
        state["world_size"] = int(trainer.world_size)  # a mid-epoch resume needs the same
    return state
