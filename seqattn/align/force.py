"""Forced alignment: each given (source, target) pair decoded with teacher forcing, its attention
read under a view and merged into words, and links extracted.

The model runs once per batch on the *given* target: ``tgt_in = bos y1 .. yn``, so the rows are
``y1 .. yn eos`` (row ``k`` predicts piece ``k``); the :class:`~seqattn.align.views.View` chooses
the layer, heads, shift-att and blend (:func:`~seqattn.align.views.view_rows`). The same
reading applies to a translation's beam attention (:func:`word_attention`).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, cast

import torch
from torch import Tensor

from seqattn.align.links import Extraction, both_ways, extract_links
from seqattn.align.settings import resolve_extraction, resolve_view
from seqattn.align.symmetrize import Link
from seqattn.align.views import View, view_rows
from seqattn.align.words import word_weights
from seqattn.batching import bucket_batches
from seqattn.data import pad_sources
from seqattn.errors import UsageError
from seqattn.vocab import BOS, PAD, Segmented, segment, truncate

if TYPE_CHECKING:
    from seqattn.align.checks import Checks
    from seqattn.translate import Hyp, Translation, Translator

log = logging.getLogger(__name__)


@dataclass
class PairAlignment:
    """One (source, target) pair, force-decoded; an empty pair has ``src is None``."""

    id: int
    source: str
    target: str
    src: Segmented | None = None
    tgt: Segmented | None = None
    truncated: bool = False
    weights: Tensor | None = None       # (L, H, Tp + 1, Sp + 1), only with keep_weights
    words: Tensor | None = None         # (n_tgt, n_src) under ``view``
    eos: Tensor | None = None           # (n_tgt,)
    view: View | None = None
    links: set[Link] = field(default_factory=set)
    reverse_words: Tensor | None = None  # (n_src, n_tgt): the reverse model's word attention
    checks: Checks | None = None

    @property
    def empty(self) -> bool:
        return self.src is None or self.tgt is None

    @property
    def sides(self) -> tuple[Segmented, Segmented]:
        """(source, target) segmentation of a pair that is not empty."""
        if self.src is None or self.tgt is None:
            raise ValueError(f"pair {self.id + 1} is empty: it has no pieces")
        return self.src, self.tgt

    def link_probs(self) -> list[float]:
        """The forward weight of each link, in :func:`pharaoh` (sorted) order."""
        if self.words is None:
            return []
        return [float(self.words[t, s]) for s, t in sorted(self.links)]


def force_align(translator: Translator | str | Path, pairs: Iterable[tuple[str, str]],
                view: View | None = None, batch_tokens: int = 4096, chunk: int = 256,
                keep_weights: bool = False,
                extraction: Extraction | None = None) -> list[PairAlignment]:
    """Force-decode each (source, target) pair and link its words, as ``seqattn align`` does.

    ``translator`` is a loaded model or a model directory / shipped name. Each result holds the
    word attention under ``view`` (default: the model's calibrated view) and ``links`` (0-based
    (source word, target word) pairs) extracted with ``extraction`` (default: the model's
    calibrated extraction, else argmax); see :func:`stream_force_align` for batching."""
    if not hasattr(translator, "loaded"):
        from seqattn.translate import load

        translator = load(translator)
    tr = cast("Translator", translator)
    extraction = resolve_extraction(tr) if extraction is None else extraction
    records = list(stream_force_align(tr, pairs, view, batch_tokens, chunk, keep_weights))
    for rec in records:
        if rec.words is not None:
            rec.links = extract_links(rec.words, extraction.method, extraction.threshold)
    return records


def stream_force_align(translator: Translator, pairs: Iterable[tuple[str, str]],
                       view: View | None = None, batch_tokens: int = 4096, chunk: int = 256,
                       keep_weights: bool = False) -> Iterator[PairAlignment]:
    """Word attention of every pair, lazily and in input order.

    ``chunk`` pairs are read at a time, sorted by length and batched by ``batch_tokens``
    padded tokens; each batch is one teacher-forced forward pass. Each result holds the word
    matrix under ``view`` (default: :func:`resolve_view`), and with ``keep_weights`` the whole
    piece attention (every layer and head) for other views.
    """
    view = resolve_view(translator) if view is None else view
    for items in chunks(pairs, chunk):
        yield from _force_chunk(translator, items, view, batch_tokens, keep_weights)


def chunks(pairs: Iterable[tuple[str, str]],
           size: int) -> Iterator[list[tuple[int, tuple[str, str]]]]:
    """Numbered pairs, ``size`` at a time."""
    buffer: list[tuple[int, tuple[str, str]]] = []
    for i, pair in enumerate(pairs):
        buffer.append((i, pair))
        if len(buffer) >= max(1, size):
            yield buffer
            buffer = []
    if buffer:
        yield buffer


def _force_chunk(translator: Translator, items: list[tuple[int, tuple[str, str]]], view: View,
                 batch_tokens: int, keep_weights: bool) -> list[PairAlignment]:
    out = [segment_pair(translator, i, s, t) for i, (s, t) in items]
    todo = [k for k, rec in enumerate(out) if not rec.empty]
    src_lens = [len(out[k].sides[0].ids) + 1 for k in todo]
    tgt_lens = [len(out[k].sides[1].ids) + 1 for k in todo]
    for batch in bucket_batches(src_lens, tgt_lens, batch_tokens, seed=None):
        _forward(translator, [out[todo[j]] for j in batch])
    for rec in out:
        if rec.weights is not None:
            src, tgt = rec.sides
            rec.view = view
            rec.words, rec.eos = word_weights(view_rows(rec.weights, view), tgt.word_of_piece,
                                              src.word_of_piece, len(tgt.words), len(src.words),
                                              view.merge)
            if not keep_weights:
                rec.weights = None
    return out


def segment_pair(translator: Translator, i: int, source: str, target: str) -> PairAlignment:
    """A record of the pair with both sides segmented and cut to what the model takes (a
    warning names a pair that was cut); an empty side gives an empty record."""
    rec = PairAlignment(i, source, target)
    if not source.strip() or not target.strip():
        return rec
    limit = translator.model.max_source_len
    src = segment(translator.src_vocab.sp, source)
    tgt = segment(translator.tgt_vocab.sp, target)
    for side, seg in (("source", src), ("target", tgt)):
        if len(seg.ids) > limit:
            log.warning(
                "pair %d: the %s has %d pieces, more than this model takes (%d); aligning its "
                "first %d pieces", i + 1, side, len(seg.ids), limit, limit)
            rec.truncated = True
    rec.src, rec.tgt = truncate(src, limit), truncate(tgt, limit)
    return rec


@torch.inference_mode()
def _forward(translator: Translator, batch: list[PairAlignment]) -> None:
    """One teacher-forced pass; stores each pair's (L, H, Tp + 1, Sp + 1) piece attention."""
    sides = [rec.sides for rec in batch]
    src, src_pad = pad_sources([s.ids for s, _ in sides])
    T = max(len(t.ids) for _, t in sides) + 1
    tgt_in = torch.full((len(batch), T), PAD, dtype=torch.long)  # (B, T)
    for b, (_, t) in enumerate(sides):
        tgt_in[b, : len(t.ids) + 1] = torch.tensor([BOS, *t.ids], dtype=torch.long)
    weights = forced_weights(translator, src, src_pad, tgt_in)   # (B, L, H, T, S)
    for b, (rec, (s, t)) in enumerate(zip(batch, sides)):
        n_t, n_s = len(t.ids), len(s.ids)
        rec.weights = weights[b, :, :, : n_t + 1, : n_s + 1].clone()


@torch.inference_mode()
def forced_weights(translator: Translator, src: Tensor, src_pad: Tensor,
                   tgt_in: Tensor) -> Tensor:
    """Teacher-forced cross-attention of every decoder layer and head, on the CPU in float32;
    with a full-context aligner (:mod:`seqattn.models.aligner`) its rows follow as one more
    layer (the same rows under every head).

    Shapes: src (B, S), src_pad (B, S), tgt_in (B, T) -> (B, L [+ 1], H, T, S)
    """
    dev, model, aligner = translator.device, translator.model, translator.loaded.aligner
    src, src_pad, tgt_in = src.to(dev), src_pad.to(dev), tgt_in.to(dev)
    with translator.autocast():
        if aligner is None:
            _, weights = model(src, src_pad, tgt_in, need_weights=True)
            return weights.float().cpu()
        layers: list[Tensor] = []
        enc, dec = model.hidden_states(src, src_pad, tgt_in, layers)
        full = aligner.rows(dec, tgt_in == PAD, enc, src_pad)             # (B, T, S)
    cross = torch.stack(layers, dim=1)                                    # (B, L, H, T, S)
    full = full[:, None, None].expand(-1, 1, cross.size(2), -1, -1)       # (B, 1, H, T, S)
    return torch.cat([cross, full.to(cross.dtype)], dim=1).float().cpu()


def align(translator: Translator, pairs: Iterable[tuple[str, str]], view: View | None = None,
          extraction: Extraction | None = None, reverse: Translator | None = None,
          check: bool = False, batch_tokens: int = 4096,
          chunk: int = 256) -> Iterator[PairAlignment]:
    """Force-align pairs and extract links, lazily and in input order.

    With ``reverse`` (a target → source model) each pair is also force-decoded the other way
    (with the reverse model's own default view) and the two directions are combined with
    ``extraction.sym``. With ``check`` each result carries its evidence card
    (:func:`seqattn.align.checks.evidence`).
    """
    from seqattn.align.checks import evidence

    extraction = extraction or Extraction()
    view = resolve_view(translator) if view is None else view
    reverse_view = resolve_view(reverse) if reverse is not None else view
    for items in chunks(pairs, chunk):
        forward = _force_chunk(translator, items, view, batch_tokens, False)
        backward = _force_chunk(reverse, [(i, (t, s)) for i, (s, t) in items], reverse_view,
                                batch_tokens, False) if reverse is not None else None
        for k, rec in enumerate(forward):
            if rec.words is None:
                yield rec
                continue
            rec.links = extract_links(rec.words, extraction.method, extraction.threshold)
            reverse_words = backward[k].words if backward is not None else None
            if reverse_words is not None:
                rec.reverse_words = reverse_words                       # (n_src, n_tgt)
                rec.links = both_ways(rec.words, reverse_words, extraction)
            if check and rec.eos is not None:
                rec.checks = evidence(rec.words, rec.eos, rec.sides[1].words)
            yield rec


@dataclass(frozen=True)
class HypAlignment:
    """A translation's alignment: word attention (n_tgt, n_src), eos mass (n_tgt,), links."""

    words: Tensor
    eos: Tensor
    links: set[Link]


def align_translation(translator: Translator, tr: Translation, hyp: Hyp,
                      view: View | None = None,
                      extraction: Extraction | None = None) -> HypAlignment:
    """The words and links of one hypothesis, read as ``seqattn align`` reads a given pair:
    ``view`` and ``extraction`` default to the model's calibrated ones."""
    words, eos = word_attention(translator, tr, hyp, view)
    ex = resolve_extraction(translator) if extraction is None else extraction
    return HypAlignment(words, eos, extract_links(words, ex.method, ex.threshold))


def join_blocks(blocks: list[tuple[Tensor, Tensor]]) -> tuple[Tensor, Tensor]:
    """Sentences' (target words × source words) attention and eos mass, as one line's: the
    blocks on the diagonal, zero elsewhere (a word of one sentence attends only to its own).

    Shapes: [(Tk, Sk), (Tk,)] -> (sum Tk, sum Sk), (sum Tk,)
    """
    words = torch.block_diag(*(w for w, _ in blocks))                 # (T, S)
    return words, torch.cat([e for _, e in blocks])                   # (T, S), (T,)


def word_attention(translator: Translator, tr: Translation, hyp: Hyp,
                   view: View | None = None) -> tuple[Tensor, Tensor]:
    """A translation's (target words × source words) attention and each target word's eos
    mass, read under ``view`` (default: the model's stored view, :func:`resolve_view`).

    Row k of the beam's attention is the step that chose piece k; with shift-att piece k reads
    row k + 1, the step where it was the input.
    """
    view = resolve_view(translator) if view is None else view
    if hyp.parts is not None:  # a line of several sentences: each read alone, then joined
        return join_blocks([word_attention(translator, t, h, view) for t, h in hyp.parts])
    if tr.src is None:
        raise UsageError(f"line {tr.id + 1} is empty: it has no attention")
    weights = hyp.weights  # (L, H, Tp + 1, S), the last row the eos step (forced at the limit)
    beyond = max(view.layer, view.blend.layer if view.blend is not None else 0)
    if weights is None or beyond >= weights.size(0):
        # no beam attention kept, or the full-context aligner: one forced pass over the output
        ids = [translator.tgt_vocab.sp.piece_to_id(p) for p in hyp.pieces]
        src, src_pad = pad_sources([tr.src.ids])
        tgt_in = torch.tensor([[BOS, *ids]], dtype=torch.long)
        weights = forced_weights(translator, src, src_pad, tgt_in)[0]   # (L + 1, H, T, S)
    return word_weights(view_rows(weights, view), hyp.word_of_piece,
                        tr.src.word_of_piece, len(hyp.words), len(tr.src.words), view.merge)
