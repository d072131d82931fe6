"""``BaseDataModule``: a LightningDataModule that receives the merged params and the adapter."""

from __future__ import annotations

import functools
import signal
from typing import Any, Callable, Sequence

import pytorch_lightning as pl
import torch
from torch.utils.data import DataLoader, Dataset, Subset

from MLSystem.base.adapter import BaseAdapter
from MLSystem.resumable import BucketBatchSampler, ResumableDataLoader


class BaseDataModule(pl.LightningDataModule):
    """Subclass in ``definitions/datasets/{name}/datamodule.py``; implement ``setup``.

    Use :meth:`transform` for the adapter's per-sample transform and :meth:`train_loader` /
    :meth:`eval_loader` so batches are resumable mid-epoch and honour ``batch_size``,
    ``num_workers`` and ``limit_samples``. Give them ``lengths`` (one per item) to batch items
    of similar length together (speech, text).
    """

    def __init__(self, params: dict[str, Any], adapter: BaseAdapter):
        super().__init__()
        self.params = params
        self.adapter = adapter

    def transform(self, split: str) -> Callable[[Any], Any] | None:
        return self.adapter.get_transform(split)

    def limit(self, dataset: Dataset) -> Dataset:
        """Light mode: a fixed random subset of ``limit_samples`` items (0 keeps everything)."""
        n = int(self.params.get("limit_samples", 0))
        if n <= 0 or n >= len(dataset):
            return dataset
        g = torch.Generator().manual_seed(int(self.params["seed"]))
        return Subset(dataset, torch.randperm(len(dataset), generator=g)[:n].tolist())

    def train_loader(self, dataset: Dataset, lengths: Sequence[int] | None = None,
                     **kwargs: Any) -> ResumableDataLoader:
        return ResumableDataLoader(
            dataset, batch_size=int(self.params["batch_size"]), shuffle=True, seed=int(self.params["seed"]),
            lengths=lengths, collate_fn=self.adapter.collate_fn("train"), **self._workers(kwargs),
        )

    def eval_loader(self, dataset: Dataset, split: str = "val", lengths: Sequence[int] | None = None,
                    **kwargs: Any) -> DataLoader:
        kwargs = {"collate_fn": self.adapter.collate_fn(split), **self._workers(kwargs)}
        if lengths is not None:
            # num_replicas=1: under DDP every rank evaluates the whole split (exact metrics, no padding).
            batches = BucketBatchSampler(lengths, int(self.params["batch_size"]), shuffle=False, num_replicas=1)
            return DataLoader(dataset, batch_sampler=batches, **kwargs)
        return DataLoader(dataset, batch_size=int(self.params["batch_size"]), shuffle=False, **kwargs)

    def _workers(self, kwargs: dict[str, Any]) -> dict[str, Any]:
        """``kwargs`` with ``num_workers`` from the params and workers that leave stop signals to the
        main process (any ``worker_init_fn`` given still runs after that)."""
        kwargs = {"num_workers": int(self.params.get("num_workers", 0)), **kwargs}
        if kwargs["num_workers"] > 0:
            kwargs["worker_init_fn"] = functools.partial(leave_stop_signals_to_main, then=kwargs.get("worker_init_fn"))
        return kwargs


def leave_stop_signals_to_main(worker_id: int, then: Callable[[int], None] | None = None) -> None:
    """A loader worker's init: ignore SIGTERM and SIGINT.

    A stop sent to the whole process group (Ctrl-C in a terminal, ``timeout``, ``kill -- -PGID``,
    Slurm's preemption and time limit, which signal every process of the step) would otherwise
    kill the workers first, and the main process would fail with "DataLoader worker is killed by
    signal" instead of stopping at the next step with a checkpoint. A worker still exits when the
    main process shuts the loader down, and on its own when the main process dies.
    """
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    if then is not None:
        then(worker_id)
