"""From subword attention to word alignments.

Models attend over sentencepiece *pieces*; people and scripts want *words* (the whitespace
tokens of the text they gave). Two mappings connect them:

* given text (source, and the target of forced alignment): :func:`segment` encodes the text and
  maps each piece to the word it came from by the piece's character span in the original text,
  so sentencepiece's dummy prefix, its ``▁`` word-boundary marker, a lone ``▁`` piece and runs
  of spaces never shift an index;
* generated text (``translate --align``): :func:`group_pieces` starts a new word at every
  piece that carries the ``▁`` marker.

:func:`word_weights` then merges a (target pieces × source pieces) attention matrix into a
(target words × source words) one. ``merge="sum"`` (default): a source word gets the *sum* of
its pieces' weights (it is probability mass), a target word the *mean* of its pieces' rows, so
each row stays a distribution; ``"mean"``: the mean on both sides; ``"max"``: the maximum on
both sides (a word pair is as linked as its best piece pair). The end-of-sentence column is
reported separately, never linked.

Forced alignment (:func:`force_align`) runs the model once per batch with teacher forcing on
the *given* target: ``tgt_in = bos y1 .. yn``, so the rows are ``y1 .. yn eos`` (row ``k``
predicts piece ``k``). A :class:`View` chooses what to read: the decoder ``layer``, the
``heads`` (mean, max or one head) and ``shift`` (Chen et al. 2020, "shift-att"): piece ``k``
reads the step where it is the decoder *input*, row ``k + 1``; the last piece therefore reads the
step that predicts end-of-sentence, so every word has a row and nothing is dropped.

Links are extracted per target word (:func:`extract_links`: argmax, a threshold, or both), and
can be symmetrized with a reverse model (:mod:`seqattn.symmetrize`). Evidence checks live in
:mod:`seqattn.alignchecks`, the gold-set sweep in :mod:`seqattn.calibrate`.
"""

from __future__ import annotations

import math
import re
import unicodedata
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from torch import Tensor

from seqattn.errors import UsageError
from seqattn.symmetrize import HEURISTICS, SOFT, Link, soft_symmetrize, symmetrize

if TYPE_CHECKING:
    from seqattn.alignchecks import Checks
    from seqattn.translate import Translator

MARK = "\u2581"  # sentencepiece's word-boundary marker ▁
MERGES = ("sum", "mean", "max")
METHODS = ("argmax", "threshold", "both")


@dataclass(frozen=True)
class Segmented:
    """A text cut into whitespace words and sentencepiece pieces, and the piece → word map."""

    words: list[str]
    pieces: list[str]
    ids: list[int]
    word_of_piece: list[int]


def segment(sp: object, text: str) -> Segmented:
    """Encode ``text`` with a SentencePieceProcessor and map every piece to its word."""
    spans = [m.span() for m in re.finditer(r"\S+", text)]
    words = [text[a:b] for a, b in spans]
    enc = sp.encode_as_offset_mapping(text)  # type: ignore[attr-defined]
    word_of_piece = []
    for begin, end in enc["offsets"]:
        word_of_piece.append(_word_at(text, spans, begin, end))
    return Segmented(words, list(enc["pieces"]), list(enc["ids"]), word_of_piece)


def _kept(ch: str) -> bool:
    """Whether sentencepiece keeps ``ch`` as text: not a space, a control or a format character
    (zero-width space, joiners, direction marks), which its normalisation removes."""
    return not ch.isspace() and unicodedata.category(ch) not in ("Cc", "Cf")


def _word_at(text: str, spans: list[tuple[int, int]], begin: int, end: int) -> int:
    """The word holding the last non-space character of [begin, end), else the next word.

    The last, not the first: sentencepiece drops some characters (zero-width spaces, controls)
    and counts them into the *next* piece's span, which may then start in an earlier word made
    only of dropped characters; its own characters end the span. Dropped characters never
    decide: a lone ▁ whose span holds only spaces and dropped characters goes to the next word."""
    pos = next((i for i in range(end - 1, begin - 1, -1) if _kept(text[i])), None)
    if pos is None:  # a lone ▁ (or empty) piece: it belongs to the word that follows
        return next((w for w, (a, _) in enumerate(spans) if a >= end), max(len(spans) - 1, 0))
    return next((w for w, (a, b) in enumerate(spans) if a <= pos < b), max(len(spans) - 1, 0))


def group_pieces(pieces: Sequence[str]) -> tuple[list[str], list[int]]:
    """Words of generated pieces: a piece starting with ``▁`` starts a new word."""
    words: list[str] = []
    word_of_piece: list[int] = []
    for k, piece in enumerate(pieces):
        if k == 0 or piece.startswith(MARK):
            words.append("")
        words[-1] += piece.replace(MARK, "")
        word_of_piece.append(len(words) - 1)
    return words, word_of_piece


def word_weights(weights: Tensor, tgt_word_of_piece: Sequence[int],
                 src_word_of_piece: Sequence[int], n_tgt: int, n_src: int,
                 merge: str = "sum") -> tuple[Tensor, Tensor]:
    """Merge piece attention into word attention (``merge``: see the module docstring).

    A word without pieces (cut off by truncation) gets a row or column of zeros.

    Shapes:
        weights: (Tp, Sp + 1) rows of target pieces over source pieces plus the eos column last
        returns: words (n_tgt, n_src) and eos (n_tgt,): each row's mass on end-of-sentence
    """
    if merge not in MERGES:
        raise UsageError(f"unknown merge '{merge}'; choose one of: {', '.join(MERGES)}")
    Tp, Sp = len(tgt_word_of_piece), len(src_word_of_piece)
    out = torch.zeros(n_tgt, n_src + 1)                            # (n_tgt, n_src + 1)
    if Tp == 0:
        return out[:, :n_src], out[:, n_src]
    w = weights[:Tp, : Sp + 1].float()                             # (Tp, Sp + 1)
    src_index = torch.tensor([*src_word_of_piece, n_src], dtype=torch.long)
    reduce = {"sum": "sum", "mean": "mean", "max": "amax"}[merge]
    by_src = torch.zeros(Tp, n_src + 1).scatter_reduce(            # (Tp, n_src + 1)
        1, src_index.expand(Tp, -1), w, reduce, include_self=False)
    tgt_index = torch.tensor(tgt_word_of_piece, dtype=torch.long)
    merged = out.scatter_reduce(                                   # (n_tgt, n_src + 1)
        0, tgt_index[:, None].expand(-1, n_src + 1), by_src,
        "amax" if merge == "max" else "mean", include_self=False)
    return merged[:, :n_src], merged[:, n_src]


# --------------------------------------------------------------------------- link extraction


def argmax_links(words: Tensor) -> list[tuple[int, int]]:
    """One link per target word, to the source word with the most weight: (src, tgt) pairs."""
    if words.numel() == 0:
        return []
    best = words.argmax(dim=1).tolist()
    return [(int(s), t) for t, s in enumerate(best)]


def threshold_links(words: Tensor, threshold: float) -> list[Link]:
    """Every (source, target) word pair whose weight is at least ``threshold``."""
    if words.numel() == 0:
        return []
    t_idx, s_idx = torch.nonzero(words >= threshold, as_tuple=True)
    return sorted(zip(s_idx.tolist(), t_idx.tolist()))


def extract_links(words: Tensor, method: str = "argmax",
                  threshold: float | None = None) -> set[Link]:
    """Links from a (target words × source words) matrix: ``argmax`` (per target word its best
    source word; rows without any weight get none), ``threshold`` (weight ≥ ``threshold``), or
    ``both`` (their union)."""
    if method not in METHODS:
        raise UsageError(f"unknown method '{method}'; choose one of: {', '.join(METHODS)}")
    if method != "argmax" and threshold is None:
        raise UsageError(f"--method {method} needs --threshold P")
    links: set[Link] = set()
    if method in ("argmax", "both") and words.numel():
        has_mass = (words.max(dim=1).values > 0).tolist()
        links |= {(s, t) for s, t in argmax_links(words) if has_mass[t]}
    if method in ("threshold", "both"):
        links |= set(threshold_links(words, float(threshold)))  # type: ignore[arg-type]
    return links


def entropy(row: Sequence[float]) -> float:
    """Entropy in bits of a (renormalised) attention row."""
    total = sum(row)
    if total <= 0:
        return 0.0
    return -sum((p / total) * math.log2(p / total) for p in row if p > 0)


def pharaoh(links: Iterable[tuple[int, int]]) -> str:
    """``[(0, 0), (2, 1)]`` -> ``'0-0 2-1'`` (0-based source-target, sorted)."""
    return " ".join(f"{s}-{t}" for s, t in sorted(links))


# --------------------------------------------------------------------------- attention views


@dataclass(frozen=True)
class Blend:
    """A second view mixed into the first: ``(1 - weight) · first + weight · (layer, heads)``,
    read at the step that predicts each piece (never shifted). A guided head read with
    shift-att is sharp but, for the last word before final punctuation, reads the step that
    predicts the punctuation; an unsupervised layer read plainly knows where each word came
    from. Written ``LAYER:HEADS:WEIGHT`` (e.g. ``2:mean:0.4``)."""

    layer: int
    heads: str
    weight: float

    def as_dict(self) -> dict[str, Any]:
        return {"layer": self.layer, "heads": self.heads, "weight": self.weight}

    @classmethod
    def parse(cls, text: str) -> Blend | None:
        """``LAYER:HEADS:WEIGHT``, or ``none`` (no blend) → None."""
        if text.strip().lower() == "none":
            return None
        parts = text.split(":")
        try:
            if len(parts) != 3:
                raise ValueError
            layer, heads, weight = int(parts[0]), parts[1].strip(), float(parts[2])
        except ValueError:
            raise UsageError(f"--blend takes LAYER:HEADS:WEIGHT (e.g. 2:mean:0.4) or none; "
                             f"got '{text}'") from None
        if not 0.0 < weight < 1.0:
            raise UsageError(f"--blend weight must be between 0 and 1 (exclusive), got {weight}")
        return cls(layer, heads, weight)

    @classmethod
    def from_dict(cls, stored: Any) -> Blend | None:
        if not stored:
            return None
        return cls(int(stored["layer"]), str(stored["heads"]), float(stored["weight"]))


@dataclass(frozen=True)
class View:
    """Which attention to read: ``layer``, ``heads`` ("mean", "max" or a head number as a
    string), ``shift`` (shift-att), the subword ``merge``, ``attention``: "cross" (decoder
    over source, the alignment), or "encoder" / "decoder" self-attention
    (:mod:`seqattn.selfattn`), and an optional :class:`Blend` with a second view."""

    layer: int = 0
    heads: str = "mean"
    shift: bool = False
    merge: str = "sum"
    attention: str = "cross"
    blend: Blend | None = None

    def as_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"layer": self.layer, "heads": self.heads, "shift": self.shift,
                               "merge": self.merge}
        if self.blend is not None:
            out["blend"] = self.blend.as_dict()
        return out if self.attention == "cross" else {**out, "attention": self.attention}


def model_shape(translator: Translator) -> tuple[int, int]:
    """(decoder layers, heads) of the attention a model returns; (1, 1) for an RNN."""
    cfg = translator.cfg.model
    return (cfg.dec_layers, cfg.heads) if cfg.arch == "transformer" else (1, 1)


STORED: Any = object()


def resolve_view(translator: Translator, layer: int | None = None, heads: str | None = None,
                 shift: bool | None = None, merge: str = "sum",
                 blend: Blend | None = STORED) -> View:
    """A validated view: given values, else the model's calibrated ones, else the defaults
    (:meth:`Translator.default_view`; shift off; no blend). A stored blend is tuned for the
    stored view, so it applies only when ``layer``, ``heads`` and ``shift`` are all left to
    the model; ``blend=None`` turns it off."""
    default_layer, default_heads = translator.default_view()
    stored = translator.loaded.meta.get("alignment", {})
    if blend is STORED:
        own = layer is None and heads is None and shift is None
        blend = Blend.from_dict(stored.get("blend")) if own else None
        blend_note = " (read from the model's seqattn.json; --blend none turns it off)"
    else:
        blend_note = ""
    view = View(default_layer if layer is None else layer,
                default_heads if heads is None else str(heads),
                bool(stored.get("shift", False)) if shift is None else shift, merge,
                blend=blend)
    n_layers, n_heads = model_shape(translator)
    note = {k: "" if given is not None else " (read from the model's seqattn.json)"
            for k, given in (("layer", layer), ("heads", heads))}
    check_layer_heads(view.layer, view.heads, n_layers, n_heads, "--layer", "--heads",
                      note["layer"], note["heads"])
    if view.blend is not None:
        check_layer_heads(view.blend.layer, view.blend.heads, n_layers, n_heads,
                          "--blend layer", "--blend heads", blend_note, blend_note)
    if merge not in MERGES:
        raise UsageError(f"--merge must be one of: {', '.join(MERGES)}; got '{merge}'")
    return view


def check_layer_heads(layer: int, heads: str, n_layers: int, n_heads: int, layer_flag: str,
                      heads_flag: str, layer_note: str = "", heads_note: str = "") -> None:
    """One-line errors for a layer or heads setting this model does not have."""
    if not 0 <= layer < n_layers:
        raise UsageError(f"{layer_flag} {layer} is out of range{layer_note}; this model has "
                         f"{n_layers} decoder layer(s): 0..{n_layers - 1}")
    if heads not in ("mean", "max") and not (heads.isdigit() and int(heads) < n_heads):
        raise UsageError(f"{heads_flag} must be mean, max or a head number 0..{n_heads - 1}, "
                         f"got '{heads}'{heads_note}")


def head_rows(weights: Tensor, layer: int, heads: str) -> Tensor:
    """One layer's attention with its heads combined (mean, max or one head).

    Shapes:
        weights: (L, H, T, S)
        returns: (T, S)
    """
    w = weights[layer]                                                       # (H, T, S)
    return w.mean(dim=0) if heads == "mean" else w.max(dim=0).values \
        if heads == "max" else w[int(heads)]


def view_rows(weights: Tensor, view: View) -> Tensor:
    """The rows a view reads from piece attention whose last row is the end-of-sentence step
    (teacher-forced, or a hypothesis of the beam).

    Shapes:
        weights: (L, H, Tp + 1, Sp + 1): rows y1 .. yn eos over source pieces + eos
        returns: (Tp, Sp + 1), row k for target piece k (k + 1 with shift-att), blended
    """
    rows = head_rows(weights, view.layer, view.heads)                        # (Tp + 1, S)
    rows = rows[1:] if view.shift else rows[:-1]                             # (Tp, S)
    if view.blend is not None:
        other = head_rows(weights, view.blend.layer, view.blend.heads)[:-1]  # (Tp, S)
        rows = (1.0 - view.blend.weight) * rows + view.blend.weight * other
    return rows


# --------------------------------------------------------------------------- forced alignment


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

    def link_probs(self) -> list[float]:
        """The forward weight of each link, in :func:`pharaoh` (sorted) order."""
        if self.words is None:
            return []
        return [float(self.words[t, s]) for s, t in sorted(self.links)]


@dataclass(frozen=True)
class Extraction:
    """How links are chosen: ``method`` (argmax, threshold, both), its ``threshold``, and
    ``sym``, the symmetrization heuristic used when a reverse model is given."""

    method: str = "argmax"
    threshold: float | None = None
    sym: str = "grow-diag-final"

    def __post_init__(self) -> None:
        if self.method not in METHODS:
            raise UsageError(f"--method must be one of: {', '.join(METHODS)}; "
                             f"got '{self.method}'")
        if self.method != "argmax" and self.threshold is None:
            raise UsageError(f"--method {self.method} needs --threshold P")
        if self.threshold is not None and not 0.0 <= self.threshold <= 1.0:
            raise UsageError(f"--threshold must be within [0, 1], got {self.threshold}")
        if self.sym not in HEURISTICS and self.sym not in SOFT:
            raise UsageError(f"--sym must be one of: {', '.join([*HEURISTICS, *SOFT])}; "
                             f"got '{self.sym}'")


def resolve_extraction(translator: Translator, default: Extraction | None = None) -> Extraction:
    """The model's calibrated extraction (method, threshold) if it stored one, else
    ``default``; the symmetrization of ``default`` is kept."""
    default = default or Extraction()
    stored = translator.loaded.meta.get("alignment", {})
    if "method" not in stored:
        return default
    return Extraction(str(stored["method"]), stored.get("threshold"), default.sym)


def both_ways(words: Tensor, reverse_words: Tensor, extraction: Extraction) -> set[Link]:
    """Links from both directions' word attention, ``words`` (n_tgt, n_src) and
    ``reverse_words`` (n_src, n_tgt): a soft ``extraction.sym`` combines the matrices and then
    extracts; a heuristic extracts from each and combines the link sets."""
    if extraction.sym in SOFT:
        return extract_links(soft_symmetrize(words, reverse_words, extraction.sym),
                             extraction.method, extraction.threshold)
    forward = extract_links(words, extraction.method, extraction.threshold)
    flipped = {(s, t) for t, s in extract_links(reverse_words, extraction.method,
                                                extraction.threshold)}
    return symmetrize(forward, flipped, extraction.sym)


def resolve_sym_extraction(translator: Translator, given: Extraction, sym_given: bool,
                           extraction_given: bool, reverse_name: str | None = None
                           ) -> Extraction:
    """How to combine both directions: the flags the user gave, the rest from the
    symmetrization stored by ``--calibrate GOLD --reverse-model``
    (:func:`seqattn.calibrate.calibrate_sym`). ``given`` holds the user's method and threshold
    (else the view's calibrated ones) and sym (else grow-diag-final). The stored sym applies
    unless ``sym_given``; its method and threshold apply unless ``extraction_given`` or the
    user chose another sym."""
    import logging

    stored = translator.loaded.meta.get("alignment", {}).get("sym")
    if not stored:
        return given
    if reverse_name is not None and stored.get("reverse") not in (None, reverse_name):
        logging.getLogger(__name__).warning(
            "the stored symmetrization was calibrated with reverse model '%s', not '%s'",
            stored.get("reverse"), reverse_name)
    sym = given.sym if sym_given else str(stored["sym"])
    if extraction_given or sym != stored["sym"]:
        return Extraction(given.method, given.threshold, sym)
    return Extraction(str(stored["method"]), stored.get("threshold"), sym)


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

        translator = load(translator)  # type: ignore[arg-type]
    tr: Translator = translator  # type: ignore[assignment]
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
    for items in _chunks(pairs, chunk):
        yield from _force_chunk(translator, items, view, batch_tokens, keep_weights)


def _chunks(pairs: Iterable[tuple[str, str]],
            size: int) -> Iterator[list[tuple[int, tuple[str, str]]]]:
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
    from seqattn.data import bucket_batches

    out = [_segment_pair(translator, i, s, t) for i, (s, t) in items]
    todo = [k for k, rec in enumerate(out) if not rec.empty]
    src_lens = [len(out[k].src.ids) + 1 for k in todo]      # type: ignore[union-attr]
    tgt_lens = [len(out[k].tgt.ids) + 1 for k in todo]      # type: ignore[union-attr]
    for batch in bucket_batches(src_lens, tgt_lens, batch_tokens, seed=None):
        _forward(translator, [out[todo[j]] for j in batch])
    for rec in out:
        if rec.weights is not None:
            rec.view = view
            rec.words, rec.eos = word_weights(
                view_rows(rec.weights, view), rec.tgt.word_of_piece,  # type: ignore[union-attr]
                rec.src.word_of_piece, len(rec.tgt.words),            # type: ignore[union-attr]
                len(rec.src.words), view.merge)                       # type: ignore[union-attr]
            if not keep_weights:
                rec.weights = None
    return out


def _segment_pair(translator: Translator, i: int, source: str, target: str) -> PairAlignment:
    import logging

    rec = PairAlignment(i, source, target)
    if not source.strip() or not target.strip():
        return rec
    limit = translator.max_source_pieces
    src = segment(translator.src_vocab.sp, source)
    tgt = segment(translator.tgt_vocab.sp, target)
    for side, seg in (("source", src), ("target", tgt)):
        if len(seg.ids) > limit:
            logging.getLogger(__name__).warning(
                "pair %d: the %s has %d pieces, more than this model takes (%d); aligning its "
                "first %d pieces", i + 1, side, len(seg.ids), limit, limit)
            rec.truncated = True
    rec.src, rec.tgt = _cut(src, limit), _cut(tgt, limit)
    return rec


def _cut(seg: Segmented, n: int) -> Segmented:
    return seg if len(seg.ids) <= n else \
        Segmented(seg.words, seg.pieces[:n], seg.ids[:n], seg.word_of_piece[:n])


@torch.inference_mode()
def _forward(translator: Translator, batch: list[PairAlignment]) -> None:
    """One teacher-forced pass; stores each pair's (L, H, Tp + 1, Sp + 1) piece attention."""
    from seqattn.data import BOS, PAD, pad_sources

    src, src_pad = pad_sources([rec.src.ids for rec in batch])   # type: ignore[union-attr]
    T = max(len(rec.tgt.ids) for rec in batch) + 1               # type: ignore[union-attr]
    tgt_in = torch.full((len(batch), T), PAD, dtype=torch.long)  # (B, T)
    for b, rec in enumerate(batch):
        tgt_in[b, : len(rec.tgt.ids) + 1] = torch.tensor(       # type: ignore[union-attr]
            [BOS, *rec.tgt.ids], dtype=torch.long)               # type: ignore[union-attr]
    dev = translator.device
    with translator.autocast():
        _, weights = translator.model(src.to(dev), src_pad.to(dev), tgt_in.to(dev),
                                      need_weights=True)         # (B, L, H, T, S)
    weights = weights.float().cpu()
    for b, rec in enumerate(batch):
        n_t, n_s = len(rec.tgt.ids), len(rec.src.ids)            # type: ignore[union-attr]
        rec.weights = weights[b, :, :, : n_t + 1, : n_s + 1].clone()


# --------------------------------------------------------------------------- the whole pipeline


def align(translator: Translator, pairs: Iterable[tuple[str, str]], view: View | None = None,
          extraction: Extraction | None = None, reverse: Translator | None = None,
          check: bool = False, batch_tokens: int = 4096,
          chunk: int = 256) -> Iterator[PairAlignment]:
    """Force-align pairs and extract links, lazily and in input order.

    With ``reverse`` (a target → source model) each pair is also force-decoded the other way
    (with the reverse model's own default view) and the two directions are combined with
    ``extraction.sym``. With ``check`` each result carries its evidence card
    (:func:`seqattn.alignchecks.evidence`).
    """
    from seqattn.alignchecks import evidence

    extraction = extraction or Extraction()
    view = resolve_view(translator) if view is None else view
    reverse_view = resolve_view(reverse) if reverse is not None else None
    for items in _chunks(pairs, chunk):
        forward = _force_chunk(translator, items, view, batch_tokens, False)
        backward = _force_chunk(reverse, [(i, (t, s)) for i, (s, t) in items], reverse_view,
                                batch_tokens, False) if reverse is not None else None
        for k, rec in enumerate(forward):
            if rec.words is None:
                yield rec
                continue
            rec.links = extract_links(rec.words, extraction.method, extraction.threshold)
            if backward is not None and backward[k].words is not None:
                rec.reverse_words = backward[k].words                   # (n_src, n_tgt)
                rec.links = both_ways(rec.words, rec.reverse_words, extraction)
            if check:
                rec.checks = evidence(rec.words, rec.eos,       # type: ignore[arg-type]
                                      rec.tgt.words)            # type: ignore[union-attr]
            yield rec
