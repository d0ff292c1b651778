"""The state of a run on disk: where it stands (:class:`Progress`), the checks before starting or
resuming in a directory, and loading a saved training state for ``--resume``."""

from __future__ import annotations

import json
import logging
import math
import pickle
import signal
import threading
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import torch

from seqattn import checkpoint as ckpt
from seqattn.config import Config, load_config
from seqattn.errors import CheckpointError, ConfigError, DataError, Terminated
from seqattn.textio import atomic_write
from seqattn.train.schedule import Schedule

log = logging.getLogger(__name__)


@dataclass
class Progress:
    """Where a run stands; saved in the training state so --resume continues exactly."""

    step: int = 0
    epoch: int = 0
    position: int = 0          # batches of the current epoch already consumed (all ranks)
    best: float | None = None
    bad_validations: int = 0
    target_tokens: int = 0
    seconds: float = 0.0

    def numbers(self) -> dict[str, float]:
        return {"step": self.step, "epoch": self.epoch, "position": self.position,
                "best": float("nan") if self.best is None else self.best,
                "bad_validations": self.bad_validations, "target_tokens": self.target_tokens,
                "seconds": self.seconds}

    @classmethod
    def from_numbers(cls, n: dict[str, Any]) -> Progress:
        best = float(n["best"])
        return cls(int(n["step"]), int(n["epoch"]), int(n["position"]),
                   None if math.isnan(best) else best, int(n["bad_validations"]),
                   int(n["target_tokens"]), float(n["seconds"]))


class sigterm_as_interrupt:  # noqa: N801  (used as a context manager)
    """While training, SIGTERM raises :class:`Terminated` so that a
    ``kill``, a scheduler's pre-emption or the end of a background job saves a checkpoint the
    way Ctrl-C does. Only the main thread can install handlers; elsewhere this does nothing."""

    def __enter__(self) -> None:
        self.installed = False  # only over the default action: an ignored SIGTERM stays ignored
        if threading.current_thread() is threading.main_thread() and \
                signal.getsignal(signal.SIGTERM) is signal.SIG_DFL:
            signal.signal(signal.SIGTERM, self._raise)
            self.installed = True

    @staticmethod
    def _raise(signum: int, frame: Any) -> None:
        raise Terminated()

    def __exit__(self, *exc: object) -> None:
        if self.installed:
            signal.signal(signal.SIGTERM, signal.SIG_DFL)


def remove_stale_temporaries(out: Path) -> None:
    """An atomic write killed midway leaves a hidden ``.NAME.XXXXXXXX.tmp`` beside NAME; a new
    start of the run removes those of its own files (and nothing else)."""
    for name in (ckpt.CONFIG, ckpt.WEIGHTS, ckpt.META, ckpt.LAST_WEIGHTS, ckpt.TRAIN_STATE,
                 ckpt.TRAIN_LOG, ckpt.JOINT_SPM, ckpt.SRC_SPM, ckpt.TGT_SPM):
        for stale in out.glob(f".{name}.*.tmp"):
            stale.unlink(missing_ok=True)
    for stale in (out / ckpt.CHECKPOINTS).glob(".step-*.tmp"):
        stale.unlink(missing_ok=True)


def resume_config(out: Path) -> Path:
    """The config that ``--resume`` without a CONFIG continues with: the run's own."""
    source = out / ckpt.CONFIG
    if out.is_dir() and not source.exists():
        raise CheckpointError(f"nothing to resume in '{out}' ({ckpt.CONFIG} is missing); if a "
                              "run stopped there before its first checkpoint, start it again "
                              "without --resume")
    return source


def check_out_dir(cfg: Config, out: Path, resume: bool) -> Config:
    """Refuse to overwrite a model; on resume, return the stored config (plus allowed changes)."""
    if out.exists() and not out.is_dir():
        raise DataError(f"--out '{out}' is a file; give a directory")
    above = next((p for p in out.parents if p.exists()), None)
    if above is not None and not above.is_dir():
        raise DataError(f"--out '{out}': '{above}' is a file, not a directory")
    state = out / ckpt.TRAIN_STATE
    if not resume:
        if (out / ckpt.META).exists() or state.exists():
            raise DataError(f"'{out}' already holds a model; pass --resume to continue it or "
                            "choose another --out")
        return cfg
    if not state.is_file():
        hint = "" if (out / ckpt.META).exists() else \
            "; if a run stopped there before its first checkpoint, start it again without --resume"
        raise CheckpointError(f"nothing to resume in '{out}' ({ckpt.TRAIN_STATE} is missing)"
                              f"{hint}")
    stored = load_config(out / ckpt.CONFIG)
    if stored.model != cfg.model or stored.data != cfg.data:
        changed = "model" if stored.model != cfg.model else "data"
        raise ConfigError(f"--resume cannot change the {changed} section of the run in '{out}';"
                          " only training and decoding settings may change")
    return replace(stored, training=cfg.training, decoding=cfg.decoding)


def trim_log(out: Path, step: int) -> None:
    """After a crash the log can run ahead of the checkpoint, and end in half a line: keep
    the records up to the step the run resumes from, so it never shows a step twice."""
    path = out / ckpt.TRAIN_LOG
    if not path.exists():
        return
    kept = []
    for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
        try:
            if int(json.loads(line).get("step", 0)) <= step:
                kept.append(line + "\n")
        except (ValueError, TypeError, AttributeError):  # half a line, or not ours
            continue
    atomic_write(path, lambda f: f.write("".join(kept)))


def load_state(out: Path, model: Any, optimizer: Any, schedule: Schedule, progress: Progress,
                dev: torch.device, scaler: Any = None, rank: int = 0, world: int = 1) -> None:
    """Restore a run from ``out``'s training state (and fp16's gradient scaler, when given).
    Under torchrun each rank takes back its own random state (dropout), saved at the last
    validation, when the run had as many ranks; else rank 0's.

    Read onto the CPU whatever device wrote it: ``load_state_dict`` moves the weights and Adam's
    moments to the parameters' device and keeps Adam's step counters on the CPU, as a new run
    has them (mapped to CUDA, each update would wait on the GPU once per parameter).
    """
    path = out / ckpt.TRAIN_STATE
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        schedule.load(state["schedule"])
        restored = Progress.from_numbers(state["progress"])
        ranks = state.get("rng_ranks")
        mine = ranks[rank] if isinstance(ranks, list) and len(ranks) == world else state
        torch.set_rng_state(mine["rng"].cpu())
        if dev.type == "cuda" and "cuda_rng" in mine:
            torch.cuda.set_rng_state(mine["cuda_rng"].cpu(), dev)
        if scaler is not None and state.get("scaler"):  # absent: saved by a bf16/fp32 run
            scaler.load_state_dict(state["scaler"])
    except FileNotFoundError:
        raise CheckpointError(f"'{path}' is missing; nothing to resume") from None
    except (RuntimeError, KeyError, ValueError, EOFError, pickle.UnpicklingError) as e:
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise CheckpointError(f"training state '{path}' is corrupt or not seqattn's ({first})") \
            from None
    for name, value in vars(restored).items():
        setattr(progress, name, value)
