"""From piece attention to word attention.

:func:`word_weights` merges a (target pieces × source pieces) attention matrix into a (target
words × source words) one, with each piece's word from :mod:`seqattn.vocab` (``segment`` for given
text, ``group_pieces`` for generated text). ``merge="sum"`` (default): a source word gets the
*sum* of its pieces' weights (it is probability mass), a target word the *mean* of its pieces'
rows, so each row stays a distribution; ``"mean"``: the mean on both sides; ``"max"``: the maximum
on both sides (a word pair is as linked as its best piece pair). The end-of-sentence column is
reported separately, never linked.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import Tensor

from seqattn.align.names import MERGES
from seqattn.errors import UsageError


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


def entropy(row: Sequence[float]) -> float:
    """Entropy in bits of a (renormalised) attention row."""
    total = sum(row)
    if total <= 0:
        return 0.0
    return -sum((p / total) * math.log2(p / total) for p in row if p > 0)
