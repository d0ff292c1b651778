"""``seqattn export``: a training directory → a compact model directory to ship or share,
optionally with a CTranslate2 model of its weights (:mod:`seqattn.engines.ct2_convert`)."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Any

from seqattn.checkpoint import (
    ALIGNER,
    CHECKPOINTS,
    CONFIG,
    CT2_DIR,
    EXPORT_DTYPES,
    SHORTLIST,
    WEIGHTS,
    average_weights,
    load_model_dir,
    read_meta,
    spm_paths,
    step_checkpoints,
    write_meta,
)
from seqattn.errors import CheckpointError, ConfigError

EXPORT_FORMATS = ("native", "ctranslate2")


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
                 average: int = 0, fmt: str = "native", native: bool = True) -> Path:
    """Copy what translation needs from a training directory into a new model directory.

    Keeps config.yaml, the sentencepiece model(s), seqattn.json and the best weights, stored in
    ``dtype`` (fp16 halves the size; loading casts back to the model's float32); leaves out the
    training state, the last weights and the log. With ``average`` = N the weights are instead
    the mean of the newest N checkpoints the run kept (``training.keep_checkpoints``). With
    ``fmt="ctranslate2"`` the directory also holds a CTranslate2 model of the weights
    (``ctranslate2/``, quantized to ``dtype``: :data:`seqattn.engines.ct2_convert.QUANTIZATIONS`;
    the native weights are then stored in fp16), and
    ``native=False`` leaves the native weights out (a smaller, translation-only export). The
    directory appears complete or not at all (built beside ``out``, then renamed).
    """
    import shutil

    import torch
    from safetensors.torch import load_file, save_file

    run_dir, out = Path(run_dir), Path(out)
    if fmt not in EXPORT_FORMATS:
        raise ConfigError(f"--format must be one of: {', '.join(EXPORT_FORMATS)}; got '{fmt}'")
    if fmt == "native" and not native:
        raise ConfigError("--no-native leaves the native weights out of a --format "
                          "ctranslate2 export; a native export is nothing else")
    if fmt == "ctranslate2":
        from seqattn.engines.ct2_convert import QUANTIZATIONS

        if dtype not in QUANTIZATIONS:
            raise ConfigError(f"--dtype with --format ctranslate2 must be one of: "
                              f"{', '.join(QUANTIZATIONS)}; got '{dtype}'")
    elif dtype not in EXPORT_DTYPES:
        raise ConfigError(f"--dtype must be one of: {', '.join(EXPORT_DTYPES)}; got '{dtype}'")
    if average < 0:
        raise ConfigError(f"--average must be >= 0; got {average}")
    loaded = load_model_dir(run_dir)  # refuse anything that would not load
    if fmt == "ctranslate2" and loaded.cfg.model.arch != "transformer":
        raise ConfigError(f"CTranslate2 cannot hold a {loaded.cfg.model.arch} model (it runs "
                          "Transformers only): export it without --format ctranslate2")
    native_dtype = "fp16" if fmt == "ctranslate2" else dtype
    if out.exists():
        raise CheckpointError(f"'{out}' already exists; choose a new directory")
    averaged, mean = _averaged(run_dir, average) if average else ([], {})
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.", suffix=".tmp", dir=out.parent))
    except OSError as e:
        raise CheckpointError(f"cannot create '{out}': {e.strerror or e}") from None
    try:
        target = getattr(torch, EXPORT_DTYPES[native_dtype])
        source = mean if average else load_file(str(run_dir / WEIGHTS))
        tensors = {k: v.to(target).contiguous() if v.is_floating_point() else v
                   for k, v in source.items()}
        if native:
            save_file(tensors, str(tmp / WEIGHTS), metadata={"format": "pt"})
        src, tgt = spm_paths(run_dir)
        for path in {src, tgt}:
            shutil.copyfile(path, tmp / path.name)
        shutil.copyfile(run_dir / CONFIG, tmp / CONFIG)
        if native and (run_dir / SHORTLIST).is_file():  # the native engine's (--shortlist)
            shutil.copyfile(run_dir / SHORTLIST, tmp / SHORTLIST)
        engines: dict[str, Any] = {}
        if fmt == "ctranslate2":
            from seqattn.engines.ct2_convert import convert

            weights = {k: v.float().numpy() for k, v in source.items()}
            convert(weights, loaded.cfg.model, (src, tgt), tmp / CT2_DIR, dtype)
            engines["ctranslate2"] = {"dir": CT2_DIR, "dtype": dtype}
        if native and (run_dir / ALIGNER).is_file():  # stored like the weights; float32
            aligner = {k: v.to(target).contiguous() if v.is_floating_point() else v
                       for k, v in load_file(str(run_dir / ALIGNER)).items()}
            save_file(aligner, str(tmp / ALIGNER), metadata={"format": "pt"})
        meta = read_meta(run_dir)
        meta.pop("format", None)
        if average:  # the best checkpoint's scores do not describe the mean
            meta.pop("scores", None)
            meta.update(step=averaged[-1], averaged_steps=averaged)
        meta.pop("engines", None)
        if engines:
            meta["engines"] = engines
        write_meta(tmp, {**meta, "stored_dtype": EXPORT_DTYPES[native_dtype] if native
                         else None})
        mask = os.umask(0)
        os.umask(mask)
        os.chmod(tmp, 0o777 & ~mask)  # mkdtemp makes 0700; a plain mkdir would not
        for path in tmp.rglob("*"):  # on disk before the directory gets its name
            if path.is_file():
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
