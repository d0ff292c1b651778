"""Where models live and how a short name finds one (torch-free: the CLI resolves models
before deciding whether it needs torch at all)."""

from __future__ import annotations

import os
from pathlib import Path

from seqattn.errors import CheckpointError

DEFAULT_MODEL = "en-de"


def models_dir() -> Path:
    """Where shipped models live: ``$SEQATTN_MODELS``; else, installed from a wheel, the copy it
    carries (``seqattn/shipped/``, made by setup.py); else ``models/`` beside the package (a
    checkout or an editable install)."""
    env = os.environ.get("SEQATTN_MODELS")
    if env:
        return Path(env)
    package = Path(__file__).resolve().parent
    bundled = package / "shipped"
    return bundled if bundled.is_dir() else package.parent / "models"


def resolve_model(name: str | Path | None) -> Path:
    """A model directory from a path or a shipped model's short name (None: the default)."""
    if name is not None and Path(name).exists():
        return Path(name)
    short = str(name) if name is not None else DEFAULT_MODEL
    candidate = models_dir() / short
    if candidate.is_dir():
        return candidate
    shipped = sorted(p.name for p in models_dir().glob("*") if (p / "seqattn.json").is_file()) \
        if models_dir().is_dir() else []
    if name is None:
        raise CheckpointError(
            f"no default model ('{DEFAULT_MODEL}') in {models_dir()}; train one "
            "(seqattn train --preset sample-tiny --out runs/sample) and pass -m runs/sample")
    listing = f"shipped models: {', '.join(shipped)}" if shipped else "no models are shipped"
    raise CheckpointError(f"model '{name}' is neither a directory nor a shipped model "
                          f"({listing})")


def is_shipped(path: str | Path) -> bool:
    """Whether ``path`` is a shipped model (or lies in the shipped models folder): those are
    read, never written (calibration writes a copy elsewhere)."""
    shipped = models_dir()
    try:
        return Path(path).resolve().is_relative_to(shipped.resolve())
    except OSError:
        return False
