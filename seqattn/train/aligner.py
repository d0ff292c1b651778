"""Training a full-context aligner (:mod:`seqattn.models.aligner`) on top of a frozen
translation model, with the guided-alignment loss against an external aligner's links.

The translation model is only read (its translations stay exactly as they were); the aligner's
weights go to ``aligner.safetensors`` in the model directory, its sizes to ``seqattn.json``
(``"aligner"``). The epoch with the lowest alignment loss on held-out training pairs is kept:
no hand-aligned gold set is used for anything here.
"""

from __future__ import annotations

import logging
import math
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import torch

from seqattn.align.settings import AlignmentSettings
from seqattn.batching import bucket_batches
from seqattn.checkpoint import (
    ALIGNER,
    LoadedModel,
    load_weights,
    read_meta,
    save_weights,
    write_meta,
)
from seqattn.data import (
    Corpus,
    encode_corpus,
    iterate_batches,
    read_parallel,
    read_pharaoh,
)
from seqattn.errors import ConfigError, DataError
from seqattn.models import has_attention
from seqattn.models.aligner import AlignerConfig, FullContextAligner
from seqattn.train.loss import alignment_loss
from seqattn.vocab import PAD

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class AlignerTraining:
    """How the aligner is trained; the defaults are what the shipped aligners used."""

    epochs: int = 4
    batch_tokens: int = 4096
    lr: float = 5e-4
    warmup: int = 200
    valid_pairs: int = 500
    seed: int = 1
    heads: int = 4
    ff_size: int = 512
    dropout: float = 0.1
    max_len: int = 100
    #: start from the model's current aligner (fine-tuning on new links) instead of fresh weights
    warm_start: bool = False

    def __post_init__(self) -> None:
        for name in ("epochs", "batch_tokens", "valid_pairs", "heads", "ff_size", "max_len"):
            if getattr(self, name) < 1:
                raise ConfigError(f"aligner {name} must be >= 1, got {getattr(self, name)}")
        if not self.lr > 0:
            raise ConfigError(f"aligner lr must be > 0, got {self.lr}")


#: links the aligner can make for itself instead of reading a file (see :func:`aligner_data`)
LINK_SOURCES = ("eflomal", "agreement")


def aligner_data(loaded: LoadedModel, src: str | Path, tgt: str | Path, links: str | Path,
                 reverse: LoadedModel | None = None,
                 seed: int = 1) -> tuple[list[tuple[str, str]], list[list[tuple[int, int]]]]:
    """The pairs and links an aligner learns from: the line-aligned ``src``/``tgt`` files and

    * a Pharaoh file of links for each pair (0-based whitespace words), or
    * ``eflomal``: eflomal's grow-diag-final-and links (:mod:`seqattn.align.statistical`), or
    * ``agreement``: the links ``loaded`` and the target-to-source model ``reverse`` agree on
      (``seqattn align -m MODEL --reverse-model REVERSE``, each with its stored settings):
      each direction supervising the other;

    for the last two the pairs twice over, as given (links between whitespace words) and
    Moses-tokenized (links between tokens, as hand-aligned gold sets count them), shuffled
    together with ``seed``: trained on the raw text alone the shipped aligner reached 16.9 %
    AER on tokenized gold, on both 7.6 %. Needs ``pip install 'seqattn[align]'``.
    """
    import random

    from seqattn.align import statistical as st
    from seqattn.textio import language_of

    pairs = read_parallel(src, tgt)
    kind = str(links)
    if kind not in LINK_SOURCES:
        return pairs, read_pharaoh(links, len(pairs))
    if kind == "agreement" and reverse is None:
        raise ConfigError("links 'agreement' needs a reverse (target-to-source) model")
    toks_s = st.moses_tokenize([s for s, _ in pairs], language_of(src))
    toks_t = st.moses_tokenize([t for _, t in pairs], language_of(tgt))
    tokenized = [(" ".join(a), " ".join(b)) for a, b in zip(toks_s, toks_t)]
    both = pairs + tokenized
    found: list[set[tuple[int, int]]]
    if kind == "eflomal":
        log.info("aligner data: running eflomal on %d pairs", len(pairs))
        token_links = st.eflomal_token_links(toks_s, toks_t)
        raw = [st.as_words(s, a, t, b, f) or set()
               for (s, t), a, b, f in zip(pairs, toks_s, toks_t, token_links)]
        found = raw + token_links
    else:
        from seqattn.align.force import align
        from seqattn.align.settings import resolve_extraction, resolve_sym_extraction
        from seqattn.translate import Translator

        assert reverse is not None  # checked above
        dev = str(next(loaded.model.parameters()).device)
        teacher = Translator(loaded, dev)
        # as `seqattn align -m MODEL --reverse-model REVERSE` would: the stored settings
        extraction = resolve_sym_extraction(teacher, resolve_extraction(teacher), False, False,
                                            reverse.path.name)
        log.info("aligner data: aligning %d pairs both ways", len(both))
        found = [rec.links or set() for rec in
                 align(teacher, both, extraction=extraction, reverse=Translator(reverse, dev))]
    order = list(range(len(both)))
    random.Random(seed).shuffle(order)
    return [both[i] for i in order], [sorted(found[i]) for i in order]


def train_aligner(loaded: LoadedModel, src: str | Path, tgt: str | Path, links: str | Path,
                  options: AlignerTraining | None = None, progress: Any = None,
                  save_to: Path | None = None,
                  reverse: LoadedModel | None = None) -> dict[str, Any]:
    """Train an aligner for ``loaded`` (frozen) on the line-aligned ``src``/``tgt`` files and
    ``links`` (a Pharaoh file, ``eflomal`` or ``agreement`` with ``reverse``: see
    :func:`aligner_data`), store it in the model's directory (or in ``save_to``, a new or
    empty directory that gets a copy of the model once the inputs are read and checked), and
    return a summary (losses per epoch, time). ``progress(epoch, step, loss)`` is called now
    and then."""
    from seqattn.align.calibrate import copy_model

    opt = options or AlignerTraining()
    model = loaded.model
    if not has_attention(model):
        from seqattn.align.settings import NO_ATTENTION

        raise ConfigError(NO_ATTENTION)
    if opt.warm_start and loaded.aligner is None:
        raise ConfigError(f"'{loaded.path}' has no aligner to start from (train one without "
                          "--warm-start first)")
    pairs, word_links = aligner_data(loaded, src, tgt, links, reverse, opt.seed)
    for p in model.parameters():
        p.requires_grad_(False)
    model.eval()
    corpus = encode_corpus(pairs, loaded.src_vocab, loaded.tgt_vocab, opt.max_len, word_links)
    train, valid = _split(corpus, opt.valid_pairs)
    if not len(train):
        raise DataError(f"an aligner needs at least 2 usable pairs; '{src}' has {len(corpus)} "
                        f"within {opt.max_len} pieces (one is held out)")
    dev = next(model.parameters()).device
    layers, _ = model.attention_shape()
    cfg = _sizes(model, train, dev, opt)
    torch.manual_seed(opt.seed)
    aligner = FullContextAligner(cfg).to(dev)
    if opt.warm_start:
        if loaded.aligner.cfg != replace(cfg, dropout=loaded.aligner.cfg.dropout):
            raise ConfigError(f"the aligner of '{loaded.path}' has other sizes "
                              f"({loaded.aligner.cfg}) than asked ({cfg})")
        aligner.load_state_dict(loaded.aligner.state_dict())
    out = loaded.path if save_to is None else Path(save_to)
    if out != loaded.path:
        copy_model(loaded.path, out)
    adam = torch.optim.Adam(aligner.parameters(), lr=opt.lr, betas=(0.9, 0.98))
    best, history, started, step = math.inf, [], time.time(), 0
    lens = ([len(s) for s in train.src], [len(t) for t in train.tgt])
    # linear warm-up over at most a quarter of the first epoch, then constant
    warmup = min(opt.warmup, max(1, len(bucket_batches(*lens, opt.batch_tokens, None)) // 4))
    for epoch in range(1, opt.epochs + 1):
        aligner.train()
        order = bucket_batches(*lens, opt.batch_tokens, opt.seed + epoch)
        for batch in iterate_batches(train, order):
            step += 1
            for group in adam.param_groups:
                group["lr"] = opt.lr * min(1.0, step / warmup)
            loss = _loss(model, aligner, batch.to(dev))
            adam.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(aligner.parameters(), 1.0)
            adam.step()
            if progress is not None and step % 50 == 0:
                progress(epoch, step, float(loss.detach()))
        held_out = _evaluate(model, aligner, valid, opt.batch_tokens, dev)
        history.append({"epoch": epoch, "step": step, "valid_loss": held_out,
                        "seconds": round(time.time() - started, 1)})
        log.info("aligner epoch %d: held-out alignment loss %.4f", epoch, held_out)
        if held_out < best:
            best = held_out
            save_weights(aligner, out / ALIGNER)
    meta = read_meta(out)
    before = meta.get("aligner", {}).get("epochs", 0) if opt.warm_start else 0
    meta["aligner"] = {**cfg.as_dict(), "valid_loss": round(best, 6),
                       "epochs": before + opt.epochs}
    # the aligner becomes the default view: one layer past the decoder's, read plainly; the
    # settings calibrated for another view (extraction, blend, symmetrization) no longer apply
    old = AlignmentSettings.from_dict(meta.get("alignment"))
    meta["alignment"] = replace(old, layer=layers, heads="mean", shift=False, blend=None,
                                method=None, threshold=None, aer=None, sym=None).as_dict()
    write_meta(out, meta)
    if out == loaded.path:  # the loaded model now has the aligner
        loaded.meta.update(aligner=meta["aligner"], alignment=meta["alignment"])
        loaded.aligner = FullContextAligner(cfg)
        load_weights(loaded.aligner, out / ALIGNER, device="cpu")
        loaded.aligner.to(dev).eval()
    return {"history": history, "best_valid_loss": best,
            "seconds": round(time.time() - started, 1), "pairs": len(train)}


@torch.no_grad()
def _sizes(model: Any, corpus: Corpus, dev: torch.device, opt: AlignerTraining) -> AlignerConfig:
    """The aligner's input sizes, read off the model's representations of one pair."""
    batch = next(iter(iterate_batches(corpus, [[0]]))).to(dev)
    enc, dec = model.hidden_states(batch.src, batch.src_pad, batch.tgt_in)  # (1,S,De), (1,L,T,D)
    d_model, enc_dim = dec.size(-1), enc.size(-1)
    return AlignerConfig(d_model, dec.size(1), opt.heads, opt.ff_size, opt.dropout,
                         None if enc_dim == d_model else enc_dim)


def _split(corpus: Corpus, n_valid: int) -> tuple[Corpus, Corpus]:
    """The last ``n_valid`` pairs held out (at most a tenth of the corpus)."""
    n = min(n_valid, max(1, len(corpus) // 10))
    assert corpus.links is not None
    return (Corpus(corpus.src[:-n], corpus.tgt[:-n], links=corpus.links[:-n]),
            Corpus(corpus.src[-n:], corpus.tgt[-n:], links=corpus.links[-n:]))


def _loss(model: Any, aligner: FullContextAligner, batch: Any) -> torch.Tensor:
    """Mean cross-entropy of the aligner's rows against the gold rows that have links."""
    with torch.no_grad():
        enc, dec = model.hidden_states(batch.src, batch.src_pad, batch.tgt_in)
    rows = aligner.rows(dec, batch.tgt_in == PAD, enc, batch.src_pad)          # (B, T, S)
    gold = batch.gold                                                          # (B, T, S)
    assert gold is not None  # the corpus has links
    return alignment_loss(rows, gold) / gold.sum().clamp_min(1.0)


@torch.no_grad()
def _evaluate(model: Any, aligner: FullContextAligner, corpus: Corpus, batch_tokens: int,
              dev: torch.device) -> float:
    aligner.eval()
    total = rows = 0.0
    lens = ([len(s) for s in corpus.src], [len(t) for t in corpus.tgt])
    for batch in iterate_batches(corpus, bucket_batches(*lens, batch_tokens, seed=None)):
        batch = batch.to(dev)
        assert batch.gold is not None  # the corpus has links
        enc, dec = model.hidden_states(batch.src, batch.src_pad, batch.tgt_in)
        total += float(alignment_loss(aligner.rows(dec, batch.tgt_in == PAD, enc,
                                                   batch.src_pad), batch.gold))
        rows += float(batch.gold.sum())
    return total / max(rows, 1.0)
