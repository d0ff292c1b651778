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
ALIGNER = "aligner.safetensors"  # a full-context aligner trained on top (seqattn.models.aligner)


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
    from seqattn.vocab import Vocab

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
    src_path, tgt_path = spm_paths(model_dir)
    src_vocab = Vocab(src_path)
    tgt_vocab = src_vocab if tgt_path == src_path else Vocab(tgt_path)
    if (len(src_vocab), len(tgt_vocab)) != (meta.get("src_vocab"), meta.get("tgt_vocab")):
        raise CheckpointError(f"'{model_dir}': the sentencepiece models do not match the "
                              "vocabulary sizes the weights were trained with")
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


def _averaged(run_dir: Path, average: int) -> tuple[list[int], dict[str, Any]]:
    """The steps and the mean weights of the newest ``average`` kept checkpoints of a run,
    checked against the run's model."""
    from safetensors.torch import load_file

    kept = step_checkpoints(run_dir)
    if len(kept) < average:
        raise CheckpointError(
            f"--average {average}: '{run_dir}' kept {len(kept)} checkpoint(s) in "
            f"{CHECKPOINTS}/; train with training.keep_checkpoints >= {average}")
    mean = average_weights([path for _, path in kept[-average:]])
    best = load_file(str(run_dir / WEIGHTS))  # the tensors a model of this config holds
    odd = sorted(k for k in best.keys() | mean.keys()
                 if k not in best or k not in mean or mean[k].shape != best[k].shape)
    if odd:
        raise CheckpointError(f"the checkpoints in '{run_dir / CHECKPOINTS}' do not fit "
                              f"the run's model (tensor '{odd[0]}')")
    return [step for step, _ in kept[-average:]], mean


def export_model(run_dir: str | Path, out: str | Path, dtype: str = "fp16",
                 average: int = 0) -> Path:
    """Copy what translation needs from a training directory into a new model directory.

    Keeps config.yaml, the sentencepiece model(s), seqattn.json and the best weights, stored in
    ``dtype`` (fp16 halves the size; loading casts back to the model's float32); leaves out the
    training state, the last weights and the log. With ``average`` = N the weights are instead
    the mean of the newest N checkpoints the run kept (``training.keep_checkpoints``). The
    directory appears complete or not at all (built beside ``out``, then renamed).
    """
    import shutil

    import torch
    from safetensors.torch import load_file, save_file

    run_dir, out = Path(run_dir), Path(out)
    if dtype not in EXPORT_DTYPES:
        raise ConfigError(f"--dtype must be one of: {', '.join(EXPORT_DTYPES)}; got '{dtype}'")
    if average < 0:
        raise ConfigError(f"--average must be >= 0; got {average}")
    load_model_dir(run_dir)  # refuse anything that would not load
    if out.exists():
        raise CheckpointError(f"'{out}' already exists; choose a new directory")
    averaged, mean = _averaged(run_dir, average) if average else ([], {})
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.", suffix=".tmp", dir=out.parent))
    except OSError as e:
        raise CheckpointError(f"cannot create '{out}': {e.strerror or e}") from None
    try:
        target = getattr(torch, EXPORT_DTYPES[dtype])
        source = mean if average else load_file(str(run_dir / WEIGHTS))
        tensors = {k: v.to(target).contiguous() if v.is_floating_point() else v
                   for k, v in source.items()}
        save_file(tensors, str(tmp / WEIGHTS), metadata={"format": "pt"})
        src, tgt = spm_paths(run_dir)
        for path in {src, tgt}:
            shutil.copyfile(path, tmp / path.name)
        shutil.copyfile(run_dir / CONFIG, tmp / CONFIG)
        if (run_dir / ALIGNER).is_file():  # stored like the weights; computed in float32
            aligner = {k: v.to(target).contiguous() if v.is_floating_point() else v
                       for k, v in load_file(str(run_dir / ALIGNER)).items()}
            save_file(aligner, str(tmp / ALIGNER), metadata={"format": "pt"})
        meta = read_meta(run_dir)
        meta.pop("format", None)
        if average:  # the best checkpoint's scores do not describe the mean
            meta.pop("scores", None)
            meta.update(step=averaged[-1], averaged_steps=averaged)
        write_meta(tmp, {**meta, "stored_dtype": EXPORT_DTYPES[dtype]})
        mask = os.umask(0)
        os.umask(mask)
        os.chmod(tmp, 0o777 & ~mask)  # mkdtemp makes 0700; a plain mkdir would not
        for path in tmp.iterdir():  # on disk before the directory gets its name
            with open(path, "rb+") as f:
                os.fsync(f.fileno())
        if out.exists():  # appeared meanwhile: never replace it
            raise CheckpointError(f"'{out}' already exists; choose a new directory")
        os.rename(tmp, out)
    except OSError as e:
        shutil.rmtree(tmp, ignore_errors=True)
        raise CheckpointError(f"cannot write '{out}': {e.strerror or e}") from None
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return out
