"""Fine-tuning: a run that starts from a trained model's weights and vocabulary
(``training.init_from``, ``seqattn train --init-from MODEL``) on the user's own data.

The run takes the model's ``model`` section (the weights fix the architecture) and its
sentencepiece model(s) (the embeddings are rows of that vocabulary); the data, training and
decoding sections stay the user's. The optimiser, schedule and step count start fresh. A
full-context aligner is not carried over: it was trained on the old decoder's states
(``seqattn train-aligner`` trains one for the fine-tuned model).
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from seqattn import checkpoint as ckpt
from seqattn.config import Config, load_config


def init_model(cfg: Config) -> Path | None:
    """The model directory ``training.init_from`` names (a path or a shipped model's short
    name), else None; a one-line error when there is none."""
    if not cfg.training.init_from:
        return None
    from seqattn.translate import resolve_model

    return resolve_model(cfg.training.init_from)


def with_init(cfg: Config) -> Config:
    """``cfg`` with the ``model`` section and sentencepiece model(s) of ``training.init_from``
    (unchanged without it). Deterministic, so ``--resume`` with the same command finds the
    stored sections equal."""
    path = init_model(cfg)
    if path is None:
        return cfg
    init = load_config(path / ckpt.CONFIG)
    src, tgt = ckpt.spm_paths(path)
    joint = src == tgt
    data = replace(cfg.data, vocab="joint" if joint else "separate",
                   vocab_size=init.data.vocab_size, spm_type=init.data.spm_type,
                   spm_model=str(src.resolve()) if joint else None,
                   src_spm_model=None if joint else str(src.resolve()),
                   tgt_spm_model=None if joint else str(tgt.resolve()))
    return replace(cfg, model=init.model, data=data)
