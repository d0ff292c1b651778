"""Choosing the torch device: one rule for every command (train, translate, align, evaluate).

``auto`` (the default everywhere) is the first CUDA GPU when one is present, else the CPU, so a
GPU user never decodes on the CPU by accident. Asking for a device this machine does not have is a
one-line :class:`~seqattn.errors.UsageError`, never an assertion from deep inside torch.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

from seqattn.errors import UsageError

if TYPE_CHECKING:
    import torch

DEVICE_HELP = "auto (CUDA when present, else CPU), cpu, cuda, cuda:N or mps."


def pick_device(name: str = "auto", rank: int = 0) -> torch.device:
    """The torch device for ``name``; under torchrun, ``cuda`` means this rank's local GPU."""
    import torch  # here, so that the CLI can name DEVICE_HELP without loading torch

    name = (name or "auto").strip().lower()
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    try:
        device = torch.device(name)
    except (RuntimeError, ValueError):
        raise UsageError(f"unknown device '{name}'; use {DEVICE_HELP}") from None
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise UsageError(f"device '{name}' was asked for but CUDA is not available here; "
                             "use --device cpu (or auto)")
        count = torch.cuda.device_count()
        if device.index is not None and device.index >= count:
            raise UsageError(f"device '{name}' does not exist: this machine has {count} CUDA "
                             f"device(s), cuda:0 to cuda:{count - 1}")
        if device.index is None and int(os.environ.get("WORLD_SIZE", "1")) > 1:
            device = torch.device(f"cuda:{int(os.environ.get('LOCAL_RANK', rank))}")
    elif device.type == "mps":
        if not torch.backends.mps.is_available():
            raise UsageError("device 'mps' is not available here; use --device cpu (or auto)")
    elif device.type != "cpu":
        raise UsageError(f"unsupported device '{name}'; use {DEVICE_HELP}")
    return device
