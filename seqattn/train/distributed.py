"""Data parallelism under ``torchrun``: rank and world size from the environment, the process
group, and a barrier. Everything else of a run is the same in one process or many."""

from __future__ import annotations

import os

import torch


def distributed(device: str = "auto") -> tuple[int, int]:
    """(rank, world size); starts the process group when launched by torchrun: NCCL for a
    run on CUDA, gloo for one on the CPU (``device`` cpu, or no GPU here)."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world == 1:
        return 0, 1
    import torch.distributed as dist

    if not dist.is_initialized():
        on_gpu = torch.cuda.is_available() and not device.startswith("cpu")
        dist.init_process_group("nccl" if on_gpu else "gloo")
    return dist.get_rank(), world


def barrier() -> None:
    import torch.distributed as dist

    dist.barrier()
