"""Self-attention views: which words of the *same* sentence a Transformer word attends to.

The encoder's self-attention relates source words to source words (the classic picture: in
"The animal did not cross the road because it was tired", which words does "it" look at?); the
decoder's (teacher-forced, causal) self-attention relates each target word to the target words
before it and itself. Both are read like cross-attention (:mod:`seqattn.align.force`): one
``layer``, the ``heads`` (mean, max or one head), pieces merged into whitespace words with
``merge``, and each word's most-attended word as its link. The records are
:class:`PairAlignment` objects whose source and target are the same sentence, so every output
format (Pharaoh, JSON lines, tables, heatmaps, HTML, PNG) works unchanged; a link ``k-q``
reads "query word q attends most to key word k", the same column-first order as
``source-target``.

The special column that is reported apart (never linked) is end-of-sentence for the encoder
and beginning-of-sentence for the decoder (the decoder's first input).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import replace
from typing import TYPE_CHECKING

import torch

from seqattn.align.force import PairAlignment, chunks, segment_pair
from seqattn.align.links import Extraction, extract_links
from seqattn.align.names import SELF_ATTENTIONS
from seqattn.align.settings import model_shape
from seqattn.align.views import VIEW_PARAMS, View, check_layer_heads, view_rows
from seqattn.align.words import word_weights
from seqattn.data import pad_sources
from seqattn.errors import UsageError
from seqattn.vocab import BOS, PAD

if TYPE_CHECKING:
    from seqattn.translate import Translator

KINDS = SELF_ATTENTIONS


def resolve_self_view(translator: Translator, kind: str, layer: int | None = None,
                      heads: str | None = None, merge: str = "sum") -> View:
    """A validated self-attention view; default: the last layer, heads averaged."""
    if kind not in KINDS:
        raise UsageError(f"view.attention must be cross, encoder or decoder; got '{kind}'",
                         params=VIEW_PARAMS)
    n_layers, n_heads = model_shape(translator, kind)
    view = View(n_layers - 1 if layer is None else layer, "mean" if heads is None else str(heads),
                False, merge, attention=kind)
    check_layer_heads(view.layer, view.heads, n_layers, n_heads, "view.layer", "view.heads",
                      kind=kind)
    return view


def self_attention(translator: Translator, pairs: Iterable[tuple[str, str]], view: View,
                   extraction: Extraction | None = None,
                   chunk: int = 64) -> Iterator[PairAlignment]:
    """Self-attention word matrices of each pair's source (``view.attention == "encoder"``) or
    target (``"decoder"``, teacher-forced under the source), lazily and in input order.
    An empty sentence (for the encoder: an empty source) gives an empty record."""
    extraction = extraction or Extraction()
    if view.attention not in KINDS:
        raise UsageError(f"not a self-attention view: '{view.attention}'")
    for items in chunks(pairs, chunk):
        records = [_source_only(translator, i, s) if view.attention == "encoder"
                   else segment_pair(translator, i, s, t) for i, (s, t) in items]
        todo = [r for r in records if not r.empty]
        if todo:
            _forward(translator, todo, view)
        for rec in records:
            if rec.words is not None:
                rec.links = extract_links(rec.words, extraction.method, extraction.threshold)
            yield rec


def _source_only(translator: Translator, i: int, source: str) -> PairAlignment:
    """An encoder record: the source, segmented (and cut) alone, stands in as the target."""
    rec = segment_pair(translator, i, source, "x" if source.strip() else "")
    if rec.src is not None:
        rec.tgt, rec.target = rec.src, source
    return rec


@torch.inference_mode()
def _forward(translator: Translator, batch: list[PairAlignment], view: View) -> None:
    sides = [r.sides for r in batch]
    src, src_pad = pad_sources([s.ids for s, _ in sides])
    if view.attention == "encoder":  # the decoder only needs to run: bos alone
        tgt_in = torch.full((len(batch), 1), BOS, dtype=torch.long)     # (B, 1)
    else:
        T = max(len(t.ids) for _, t in sides) + 1
        tgt_in = torch.full((len(batch), T), PAD, dtype=torch.long)     # (B, T)
        for b, (_, t) in enumerate(sides):
            tgt_in[b, : len(t.ids) + 1] = torch.tensor([BOS, *t.ids])
    dev = translator.device
    with translator.autocast():
        enc, dec = translator.model.self_attention(src.to(dev), src_pad.to(dev),
                                                   tgt_in.to(dev))
    weights = (enc if view.attention == "encoder" else dec).float().cpu()  # (B, L, H, N, N)
    rows_view = replace(view, shift=False)
    for b, (rec, (src_seg, tgt_seg)) in enumerate(zip(batch, sides)):
        seg = src_seg if view.attention == "encoder" else tgt_seg
        n = len(seg.ids)
        if view.attention == "encoder":   # positions: pieces 0..n-1, eos n
            w = weights[b, :, :, : n + 1, : n + 1]                       # (L, H, n+1, n+1)
        else:                             # positions: bos 0, pieces 1..n; put bos last
            w = weights[b, :, :, : n + 1, : n + 1]
            w = torch.cat([w[..., 1:, 1:], w[..., 1:, :1]], dim=-1)      # (L, H, n, n+1)
            w = torch.cat([w, w[..., :1, :]], dim=-2)                    # a dummy last row
        rows = view_rows(w, rows_view)                                   # (n, n + 1)
        rec.src = rec.tgt = seg
        rec.source = rec.target = rec.source if view.attention == "encoder" else rec.target
        rec.view = view
        rec.words, rec.eos = word_weights(rows, seg.word_of_piece, seg.word_of_piece,
                                          len(seg.words), len(seg.words), view.merge)
