"""Shared fixtures: tiny model directories (random weights, a real sentencepiece model)."""

from __future__ import annotations

from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared" / "data"
SAMPLE = ROOT / "sample_data"

TINY_MODELS = {
    "transformer": ["model.arch=transformer", "model.hidden_size=32", "model.heads=4",
                    "model.ff_size=64", "model.enc_layers=2", "model.dec_layers=2",
                    "model.dropout=0.0"],
    "bahdanau": ["model.arch=rnn", "model.attention=bahdanau", "model.hidden_size=24",
                 "model.embed_size=16", "model.enc_layers=1", "model.dec_layers=1",
                 "model.dropout=0.0"],
    "luong": ["model.arch=rnn", "model.attention=luong", "model.score=general",
              "model.cell=lstm", "model.hidden_size=24", "model.embed_size=16",
              "model.enc_layers=1", "model.dec_layers=1", "model.dropout=0.0"],
}
#: an RNN without attention (issue 21): a fixture of its own, since alignment commands refuse it
NO_ATTENTION = ["model.arch=rnn", "model.attention=none", "model.hidden_size=24",
                "model.embed_size=16", "model.enc_layers=1", "model.dec_layers=1",
                "model.dropout=0.0"]


def default_sigint() -> None:
    """For a child that is sent SIGINT as a terminal would: a test run started in the
    background (nohup, `cmd &`) inherits SIGINT ignored, which the CLI then keeps ignored."""
    import signal

    signal.signal(signal.SIGINT, signal.SIG_DFL)


def make_model_dir(path: Path, kind: str, seed: int = 0) -> Path:
    """A complete model directory with random weights: enough to test decoding and I/O."""
    import torch

    from seqattn import checkpoint as ckpt
    from seqattn.config import config_from_dict, dump_config
    from seqattn.models import build_model
    from seqattn.vocab import Vocab, train_spm

    path.mkdir(parents=True, exist_ok=True)
    train_spm([SAMPLE / "train.en", SAMPLE / "train.de"], path / "spm", 300, "unigram",
              max_sentences=2000)
    vocab = Vocab(path / "spm.model")
    layout = {**TINY_MODELS, "noattn": NO_ATTENTION}[kind]
    cfg = config_from_dict({}, layout + ["decoding.max_len_a=1.0", "decoding.max_len_b=5"])
    torch.manual_seed(seed)
    model = build_model(cfg.model, len(vocab), len(vocab))
    (path / ckpt.CONFIG).write_text(dump_config(cfg), encoding="utf-8")
    ckpt.save_weights(model, path / ckpt.WEIGHTS)
    ckpt.write_meta(path, {"src_vocab": len(vocab), "tgt_vocab": len(vocab), "step": 0})
    return path


@pytest.fixture(scope="session", params=sorted(TINY_MODELS))
def tiny_model(request, tmp_path_factory) -> Path:
    return make_model_dir(tmp_path_factory.mktemp(request.param), request.param)


@pytest.fixture(scope="session")
def tiny_model_bahdanau(tmp_path_factory) -> Path:
    return make_model_dir(tmp_path_factory.mktemp("tiny-bahdanau"), "bahdanau")


@pytest.fixture(scope="session")
def tiny_noattn(tmp_path_factory) -> Path:
    return make_model_dir(tmp_path_factory.mktemp("tiny-noattn"), "noattn")


@pytest.fixture(scope="session")
def tiny_transformer(tmp_path_factory) -> Path:
    return make_model_dir(tmp_path_factory.mktemp("tiny-transformer"), "transformer")
