"""Translation with our own models: ``tr = seqattn.load("en-de"); tr.translate(["A dog runs."])``.

:class:`Translator` decodes with the model in torch; the line policies (empty lines, several
sentences a line, ALL-CAPS, over-long sentences) are :class:`seqattn.lines.LineTranslator`'s,
shared with the CTranslate2 engine (:mod:`seqattn.engines.ct2`).
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import torch

from seqattn.checkpoint import LoadedModel, load_model_dir
from seqattn.config import DecodeConfig
from seqattn.data import pad_sources
from seqattn.decode import beam_search
from seqattn.device import BF16_SLOW, pick_device, slow_bf16
from seqattn.errors import UsageError
from seqattn.lines import Batching, Hyp, LineTranslator, Translation, join_sentences
from seqattn.sentences import restore_caps
from seqattn.shipped import DEFAULT_MODEL, is_shipped, models_dir, resolve_model
from seqattn.shortlist import Shortlist, load_shortlist
from seqattn.textio import language_of
from seqattn.vocab import EOS, group_pieces

__all__ = ["DEFAULT_MODEL", "PRECISIONS", "Batching", "Hyp", "Translation", "Translator",
           "check_precision", "is_shipped", "join_sentences", "load", "models_dir",
           "resolve_model"]

log = logging.getLogger(__name__)
PRECISIONS = ("fp32", "bf16", "fp16")  # weights stay fp32; bf16/fp16 run matmuls in autocast


class Translator(LineTranslator):
    """A loaded model plus everything needed to go from text to text; a hypothesis keeps its
    beam attention (``Hyp.weights``), which :func:`seqattn.align.word_attention` reads."""

    def __init__(self, loaded: LoadedModel, device: str = "cpu", precision: str = "fp32",
                 shortlist: Shortlist | None = None):
        self.loaded = loaded
        self.shortlist = shortlist  # decode over each batch's candidate pieces only
        self.model, self.cfg = loaded.model, loaded.cfg
        self.src_vocab, self.tgt_vocab = loaded.src_vocab, loaded.tgt_vocab
        self.src_sp = self.src_vocab.sp
        self.path = loaded.path
        self.device = pick_device(device)
        check_precision(precision, self.device)
        if precision == "bf16" and slow_bf16(self.device):
            log.warning(BF16_SLOW)
        self.precision = precision
        self.max_source_pieces: int = self.model.max_source_len
        self.trained_pieces: int = self.cfg.data.max_len  # no longer training pair was used
        self.language = language_of(self.cfg.data.train_src)

    def _decode(self, batch: list[Translation], search: DecodeConfig, attention: bool) -> None:
        src, src_pad = pad_sources([tr.segmented.ids for tr in batch])
        src_len = (~src_pad).sum(dim=1)                                            # (B,)
        max_len = search.output_limit(src_len)             # (B,) never above max_output_len
        if self.model.max_target_len is not None:
            max_len = max_len.clamp(max=self.model.max_target_len)
        vocab = None if self.shortlist is None else self.shortlist.for_sources(src)
        with self.autocast():
            results = beam_search(self.model, src.to(self.device), src_pad.to(self.device),
                                  search.beam_size, max_len.to(self.device),
                                  n_best=search.n_best, min_len=search.min_len,
                                  alpha=search.length_penalty, keep_weights=attention,
                                  norm=search.length_norm,
                                  vocab=None if vocab is None else vocab.to(self.device))
        for tr, hyps, n in zip(batch, results, src_len.tolist()):
            tr.hyps = [self._hyp(h, n, tr.caps) for h in hyps]

    def autocast(self) -> Any:
        """The mixed-precision context of ``precision`` (bf16: matrix products in bfloat16,
        about twice as fast on CPUs with AVX-512 BF16; attention weights and the beam's
        log-probabilities are computed in float32)."""
        if self.precision == "fp32":
            return torch.autocast(self.device.type, enabled=False)
        dtype = torch.bfloat16 if self.precision == "bf16" else torch.float16
        return torch.autocast(self.device.type, dtype=dtype)

    def _hyp(self, h: Any, src_len: int, caps: bool) -> Hyp:
        ids = h.tokens[:-1] if h.tokens and h.tokens[-1] == EOS else h.tokens
        pieces = self.tgt_vocab.id_to_piece(ids)
        words, word_of_piece = group_pieces(pieces)
        weights = None if h.weights is None else h.weights[..., :src_len].float().cpu()
        text = self.tgt_vocab.decode(ids)
        if caps:
            text, words = restore_caps(text), [restore_caps(w) for w in words]
        return Hyp(text, pieces, words, word_of_piece, h.score, h.log_prob, weights)


def check_precision(precision: str, device: torch.device) -> None:
    if precision not in PRECISIONS:
        raise UsageError(f"precision must be one of: {', '.join(PRECISIONS)}; "
                         f"got '{precision}'")
    if precision == "fp16" and device.type != "cuda":
        raise UsageError(f"fp16 decoding needs a CUDA device (not {device.type}); use bf16")


def load(model: str | Path | None = None, device: str = "auto",
         precision: str = "fp32", shortlist: bool = False) -> Translator:
    """Load a model directory or a shipped model by short name (None: the default model).

    ``device``: ``auto`` (CUDA when present, else the CPU), ``cpu``, ``cuda``, ``cuda:N``
    (:func:`seqattn.device.pick_device`). ``precision`` bf16 (or fp16 on CUDA) decodes with
    autocast: faster, with scores that differ from fp32 in the third decimal and now and then
    a different translation. ``shortlist``: decode over the candidate pieces of the model's
    vocabulary shortlist (``seqattn shortlist``; :mod:`seqattn.shortlist`) only."""
    dev = pick_device(device)  # before the (slow) load
    path = resolve_model(model)
    check_precision(precision, dev)
    loaded = load_model_dir(path, device=str(dev))
    short = None
    if shortlist:
        short = load_shortlist(path, len(loaded.src_vocab), len(loaded.tgt_vocab))
    return Translator(loaded, device=str(dev), precision=precision, shortlist=short)
