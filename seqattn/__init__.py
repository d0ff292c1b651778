"""seqattn: neural machine translation that shows its attention.

The package is importable without loading PyTorch; heavy modules load on first use.
"""

from __future__ import annotations

from seqattn.errors import CheckpointError, ConfigError, DataError, SeqattnError, UsageError

__version__ = "0.1.0.dev0"

_LAZY = {
    "load": ("seqattn.translate", "load"),
    "Translator": ("seqattn.translate", "Translator"),
    "train": ("seqattn.train", "train"),
    "force_align": ("seqattn.align.force", "force_align"),
    "align": ("seqattn.align.force", "align"),
    "copy_numbers": ("seqattn.align.numbers", "copy_numbers"),
    "load_config": ("seqattn.config", "load_config"),
    "Config": ("seqattn.config", "Config"),
}


def __getattr__(name: str) -> object:
    """Load the heavy parts (torch) only when they are first used."""
    if name in _LAZY:
        import importlib

        module, attr = _LAZY[name]
        return getattr(importlib.import_module(module), attr)
    raise AttributeError(f"module 'seqattn' has no attribute {name!r}")


__all__ = [
    "Config",
    "Translator",
    "copy_numbers",
    "force_align",
    "load",
    "load_config",
    "train",
    "CheckpointError",
    "ConfigError",
    "DataError",
    "SeqattnError",
    "UsageError",
    "__version__",
]
