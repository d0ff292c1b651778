"""seqattn: neural machine translation that shows its attention.

The package is importable without loading PyTorch; heavy modules load on first use.
"""

from __future__ import annotations

from seqattn.errors import CheckpointError, ConfigError, DataError, SeqattnError, UsageError

__version__ = "0.1.0.dev0"

__all__ = [
    "CheckpointError",
    "ConfigError",
    "DataError",
    "SeqattnError",
    "UsageError",
    "__version__",
]
