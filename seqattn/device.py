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


BF16_SLOW = ("this CPU has no bfloat16 instructions (AVX-512 BF16 or AMX), so bf16 runs "
             "emulated, several times slower than fp32 (Transformer beam search: 6x slower on an "
             "AVX2 CPU); use fp32 here")


def slow_bf16(device: torch.device) -> bool:
    """Whether bf16 autocast on ``device`` runs without bfloat16 instructions: an x86 CPU (it has
    AVX2) without AVX-512 BF16 or AMX, where oneDNN emulates the bfloat16 matrix products. False
    where that cannot be told (another architecture, a torch without these probes)."""
    if device.type != "cpu":
        return False
    import torch

    probes = [getattr(torch.cpu, name, None) for name in
              ("_is_avx2_supported", "_is_avx512_bf16_supported", "_is_amx_tile_supported")]
    if any(probe is None for probe in probes):
        return False
    x86, bf16, amx = (bool(probe()) for probe in probes)  # type: ignore[misc]
    return x86 and not (bf16 or amx)
