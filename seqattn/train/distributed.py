"""Data parallelism under ``torchrun``: rank and world size from the environment, the process
group, and a barrier. Everything else of a run is the same in one process or many."""

from __future__ import annotations

import os

import torch


def distributed() -> tuple[int, int]:
    """(rank, world size); starts the process group when launched by torchrun."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world == 1:
        return 0, 1
    import torch.distributed as dist

    if not dist.is_initialized():
        backend = "nccl" if torch.cuda.is_available() else "gloo"
        dist.init_process_group(backend)
    return dist.get_rank(), world


def barrier() -> None:
    import torch.distributed as dist

    dist.barrier()
