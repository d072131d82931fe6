"""Which process of a distributed (DDP) run this is, and the one collective MLSystem needs.

Lightning's DDP runs one process per device: its launcher re-runs the same command line for
local ranks 1..n-1 (``LOCAL_RANK``/``NODE_RANK`` set), ``srun`` starts one task per device
(``SLURM_PROCID``), ``torchrun`` sets ``RANK``. Every rank trains; only global rank 0 does the
experiment's bookkeeping (lease, ``experiment.json``, metrics files, console lines), and only
rank 0 writes checkpoints (Lightning's rule).

Nothing here imports torch at module level: ``execute_train`` asks :func:`is_launch_rank_zero`
before deciding whether to take the experiment's lease.
"""

from __future__ import annotations

import os
from typing import Any

# Set by the launchers to this process's rank; any non-zero value means "not global rank 0".
RANK_ENV_VARS = ("RANK", "SLURM_PROCID", "LOCAL_RANK", "NODE_RANK", "GROUP_RANK")


def is_launch_rank_zero() -> bool:
    """True unless a launcher (Lightning's DDP launcher, srun, torchrun) started this process as another rank."""
    return all(os.environ.get(name, "0").strip() in ("", "0") for name in RANK_ENV_VARS)


def world() -> tuple[int, int]:
    """``(world size, global rank)`` of the initialised process group, else ``(1, 0)``."""
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        return dist.get_world_size(), dist.get_rank()
    return 1, 0


def all_gather_object(obj: Any) -> list[Any]:
    """``obj`` of every rank, in rank order (``[obj]`` outside a process group). A collective:
    every rank must call it at the same point."""
    import torch.distributed as dist

    size, _ = world()
    if size == 1:
        return [obj]
    out: list[Any] = [None] * size
    dist.all_gather_object(out, obj)
    return out
