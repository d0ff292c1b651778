"""A model is a directory; nothing in it is ever unpickled.

Layout::

    config.yaml          the resolved configuration (yaml.safe_load)
    model.safetensors    weights of the best checkpoint (what translate/align use)
    spm.model            joint sentencepiece model, or src.spm.model + tgt.spm.model
    seqattn.json         format version, vocabulary sizes, step and scores of the weights
    last.safetensors     weights of the latest checkpoint      } only while/after training,
    train_state.pt       optimiser, schedule, RNG, data position } for --resume
    train.jsonl          every logged and validation figure

Every file is written atomically (temporary file, flush, fsync, rename), so a crash leaves the
previous version intact. ``train_state.pt`` holds tensors and plain numbers only and is read with
``torch.load(weights_only=True)``.
"""

from __future__ import annotations

import json
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from seqattn.errors import CheckpointError, ConfigError
from seqattn.textio import atomic_write, umask_mode

FORMAT_VERSION = 1


CONFIG, WEIGHTS, META = "config.yaml", "model.safetensors", "seqattn.json"
LAST_WEIGHTS, TRAIN_STATE, TRAIN_LOG = "last.safetensors", "train_state.pt", "train.jsonl"
CHECKPOINTS = "checkpoints"  # step-NNNNNNN.safetensors: weights at each validation (kept N)
JOINT_SPM, SRC_SPM, TGT_SPM = "spm.model", "src.spm.model", "tgt.spm.model"
SHORTLIST = "shortlist.safetensors"  # a vocabulary shortlist (seqattn.shortlist)
ALIGNER = "aligner.safetensors"  # a full-context aligner trained on top (seqattn.models.aligner)
CT2_DIR = "ctranslate2"  # a CTranslate2 model of the weights (seqattn export --format ctranslate2)


def save_weights(model: Any, path: Path) -> None:
    """Write the model's parameters and buffers to ``path`` in safetensors format, atomically."""
    from safetensors.torch import save_model

    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        save_model(model, tmp)  # handles tied (shared) tensors
        with open(tmp, "rb+") as f:
            os.fsync(f.fileno())
        os.chmod(tmp, umask_mode())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def step_checkpoints(run_dir: Path) -> list[tuple[int, Path]]:
    """The kept per-validation weights of a run, oldest first, as (step, path)."""
    found = []
    for path in (run_dir / CHECKPOINTS).glob("step-*.safetensors"):
        digits = path.name[len("step-"):-len(".safetensors")]
        if digits.isdigit():
            found.append((int(digits), path))
    return sorted(found)


def keep_step_checkpoint(model: Any, run_dir: Path, step: int, keep: int) -> None:
    """Save the weights at ``step`` under checkpoints/ and delete all but the newest ``keep``."""
    save_weights(model, run_dir / CHECKPOINTS / f"step-{step:07d}.safetensors")
    for _, old in step_checkpoints(run_dir)[:-keep]:
        old.unlink(missing_ok=True)


def average_weights(paths: list[Path]) -> dict[str, Any]:
    """The element-wise mean of several safetensors files' floating tensors, in float32."""
    import torch
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    total: dict[str, Any] = {}
    for path in paths:
        try:
            tensors = load_file(str(path))
        except (SafetensorError, OSError) as e:
            raise CheckpointError(f"weights file '{path}' is corrupt or truncated ({e})") from None
        if total and tensors.keys() != total.keys():
            raise CheckpointError(f"'{path}' holds other tensors than '{paths[0]}'; "
                                  "checkpoints of different models cannot be averaged")
        for name, t in tensors.items():
            if not t.is_floating_point():
                total[name] = t  # integer buffers: the newest file's
            elif name in total:
                total[name] += t.to(torch.float32)
            else:
                total[name] = t.to(torch.float32)
    return {k: v / len(paths) if v.is_floating_point() else v for k, v in total.items()}


def load_weights(model: Any, path: Path, device: str = "cpu") -> None:
    """Load safetensors weights into ``model``; a missing or corrupt file is a CheckpointError."""
    from safetensors import SafetensorError
    from safetensors.torch import load_model

    if not path.is_file():
        raise CheckpointError(f"weights file '{path}' is missing")
    try:
        missing, unexpected = load_model(model, str(path), strict=False, device=device)
    except (SafetensorError, OSError, ValueError) as e:
        raise CheckpointError(f"weights file '{path}' is corrupt or truncated ({e})") from None
    except RuntimeError as e:  # shape mismatch: the file belongs to another configuration
        first = str(e).strip().splitlines()[-1].strip()
        raise CheckpointError(f"weights file '{path}' does not fit its config.yaml ({first})") \
            from None
    if missing or unexpected:
        what = f"missing {missing[:3]}" if missing else f"unexpected {unexpected[:3]}"
        raise CheckpointError(f"weights file '{path}' does not fit its config.yaml ({what})")


def write_meta(model_dir: Path, meta: dict[str, Any]) -> None:
    data = {"format": FORMAT_VERSION, **meta}
    atomic_write(model_dir / META, lambda f: f.write(json.dumps(data, indent=2) + "\n"))


def read_meta(model_dir: Path) -> dict[str, Any]:
    path = model_dir / META
    try:
        meta = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise CheckpointError(f"'{model_dir}' is not a seqattn model directory "
                              f"({META} is missing)") from None
    except (ValueError, UnicodeDecodeError):
        raise CheckpointError(f"'{path}' is corrupt (not JSON)") from None
    if not isinstance(meta, dict) or meta.get("format") != FORMAT_VERSION:
        raise CheckpointError(f"'{model_dir}' was written by an incompatible seqattn version "
                              f"(format {meta.get('format') if isinstance(meta, dict) else '?'},"
                              f" this version reads {FORMAT_VERSION})")
    return meta


def spm_paths(model_dir: Path) -> tuple[Path, Path]:
    """The (source, target) sentencepiece models of a directory (the same file if joint)."""
    joint = model_dir / JOINT_SPM
    if joint.is_file():
        return joint, joint
    src, tgt = model_dir / SRC_SPM, model_dir / TGT_SPM
    if src.is_file() and tgt.is_file():
        return src, tgt
    raise CheckpointError(f"'{model_dir}' has no sentencepiece model ({JOINT_SPM}, or "
                          f"{SRC_SPM} and {TGT_SPM})")


def load_vocabs(model_dir: Path) -> tuple[Any, Any]:
    """The (source, target) :class:`seqattn.vocab.Vocab` of a directory (one object if joint)."""
    from seqattn.vocab import Vocab

    src_path, tgt_path = spm_paths(model_dir)
    src_vocab = Vocab(src_path)
    return src_vocab, src_vocab if tgt_path == src_path else Vocab(tgt_path)


@dataclass
class LoadedModel:
    """Everything needed to translate: the model in eval mode, its vocabularies and config."""

    model: Any
    cfg: Any
    src_vocab: Any
    tgt_vocab: Any
    meta: dict[str, Any]
    path: Path
    aligner: Any = None  # a FullContextAligner trained on top (aligner.safetensors), or None


def load_model_dir(model_dir: str | Path, device: str = "cpu",
                   weights: str = WEIGHTS) -> LoadedModel:
    """Load a model directory written by ``seqattn train``."""
    from seqattn.config import load_config
    from seqattn.models import build_model

    model_dir = Path(model_dir)
    if not model_dir.exists():
        raise CheckpointError(f"model directory '{model_dir}' does not exist")
    if not model_dir.is_dir():
        raise CheckpointError(f"'{model_dir}' is a file; give a model directory")
    meta = read_meta(model_dir)
    try:
        cfg = load_config(model_dir / CONFIG)
    except ConfigError as e:
        raise CheckpointError(f"model directory '{model_dir}': {e}") from None
    src_vocab, tgt_vocab = load_vocabs(model_dir)
    if (len(src_vocab), len(tgt_vocab)) != (meta.get("src_vocab"), meta.get("tgt_vocab")):
        raise CheckpointError(f"'{model_dir}': the sentencepiece models do not match the "
                              "vocabulary sizes the weights were trained with")
    if not (model_dir / weights).is_file() and (model_dir / CT2_DIR).is_dir():
        raise CheckpointError(
            f"'{model_dir}' is a CTranslate2-only export (seqattn export --no-native): it "
            "translates plain text (--engine ctranslate2) but has no native weights for "
            "alignments, attention or checks")
    model = build_model(cfg.model, len(src_vocab), len(tgt_vocab))
    load_weights(model, model_dir / weights, device="cpu")
    model.to(device).eval()
    return LoadedModel(model, cfg, src_vocab, tgt_vocab, meta, model_dir,
                       _load_aligner(model_dir, meta, device))


def _load_aligner(model_dir: Path, meta: dict[str, Any], device: str) -> Any:
    """The model's full-context aligner, if it has one (``aligner.safetensors``)."""
    if not (model_dir / ALIGNER).is_file():
        return None
    from seqattn.models.aligner import AlignerConfig, FullContextAligner

    stored = meta.get("aligner")
    if not isinstance(stored, dict):
        raise CheckpointError(f"'{model_dir}' has {ALIGNER} but no 'aligner' in {META}")
    try:
        cfg = AlignerConfig(int(stored["d_model"]), int(stored["layers"]), int(stored["heads"]),
                            int(stored["ff_size"]), float(stored.get("dropout", 0.0)),
                            int(stored["enc_dim"]) if "enc_dim" in stored else None)
    except (KeyError, TypeError, ValueError) as e:
        raise CheckpointError(f"'{model_dir}': unreadable 'aligner' in {META} ({e})") from None
    aligner = FullContextAligner(cfg)
    load_weights(aligner, model_dir / ALIGNER, device="cpu")
    return aligner.to(device).eval()


EXPORT_DTYPES = {"fp16": "float16", "bf16": "bfloat16", "fp32": "float32"}
