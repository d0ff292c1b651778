"""From subword attention to word alignments.

Models attend over sentencepiece *pieces*; people and scripts want *words* (the whitespace
tokens of the text they gave). Two mappings connect them:

* source side: :func:`segment` encodes a text and maps each piece to the word it came from by
  the piece's character span in the original text, so sentencepiece's dummy prefix, its ``▁``
  word-boundary marker and a lone ``▁`` piece never shift an index;
* target side (generated text): :func:`group_pieces` starts a new word at every piece that
  carries the ``▁`` marker.

:func:`word_weights` then merges a (target pieces × source pieces) attention matrix into a
(target words × source words) one: a source word gets the *sum* of its pieces' weights (it is
probability mass), a target word the *mean* of its pieces' rows. The end-of-sentence column is
reported separately, never linked.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import Tensor

MARK = "\u2581"  # sentencepiece's word-boundary marker ▁


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


def _word_at(text: str, spans: list[tuple[int, int]], begin: int, end: int) -> int:
    """The word holding the first non-space character of [begin, end), else the next word."""
    pos = next((i for i in range(begin, end) if not text[i].isspace()), None)
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
                 src_word_of_piece: Sequence[int], n_tgt: int, n_src: int
                 ) -> tuple[Tensor, Tensor]:
    """Merge piece attention into word attention.

    Shapes:
        weights: (Tp, Sp + 1) rows of target pieces over source pieces plus the eos column last
        returns: words (n_tgt, n_src) and eos (n_tgt,): each row's mass on end-of-sentence
    """
    Tp = len(tgt_word_of_piece)
    Sp = len(src_word_of_piece)
    w = weights[:Tp].float()
    src_map = torch.zeros(Sp + 1, n_src + 1)                       # (Sp + 1, n_src + 1)
    src_map[torch.arange(Sp), torch.tensor(src_word_of_piece, dtype=torch.long)] = 1.0
    src_map[Sp, n_src] = 1.0                                       # eos column stays apart
    summed = w[:, : Sp + 1] @ src_map                              # (Tp, n_src + 1)
    tgt_map = torch.zeros(n_tgt, Tp)                               # (n_tgt, Tp)
    tgt_map[torch.tensor(tgt_word_of_piece, dtype=torch.long), torch.arange(Tp)] = 1.0
    tgt_map = tgt_map / tgt_map.sum(dim=1, keepdim=True).clamp(min=1.0)
    merged = tgt_map @ summed                                      # (n_tgt, n_src + 1)
    return merged[:, :n_src], merged[:, n_src]


def argmax_links(words: Tensor) -> list[tuple[int, int]]:
    """One link per target word, to the source word with the most weight: (src, tgt) pairs."""
    if words.numel() == 0:
        return []
    best = words.argmax(dim=1).tolist()
    return [(int(s), t) for t, s in enumerate(best)]


def entropy(row: Sequence[float]) -> float:
    """Entropy in bits of a (renormalised) attention row."""
    total = sum(row)
    if total <= 0:
        return 0.0
    return -sum((p / total) * math.log2(p / total) for p in row if p > 0)


def pharaoh(links: Sequence[tuple[int, int]]) -> str:
    """``[(0, 0), (2, 1)]`` -> ``'0-0 2-1'`` (0-based source-target, sorted)."""
    return " ".join(f"{s}-{t}" for s, t in sorted(links))
