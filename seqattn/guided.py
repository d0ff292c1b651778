"""Guided alignment training (Garg et al. 2019, "Jointly Learning to Align and Translate").

Attention alone aligns words only roughly. Given word alignments of the training pairs (Pharaoh
``i-j`` lines from an external aligner such as eflomal or fast_align), one cross-attention head
is trained to reproduce them: for every target piece whose word has links, the gold
distribution is uniform over the source pieces of the linked words, and the head pays

    L_align = - sum over supervised rows r of  sum_j  G[r, j] · log A[r, j]

added to the translation loss with a small weight (``training.guided_weight``; the paper uses
0.05) and normalised by target tokens like it. Row ``k`` of the teacher-forced attention is the
step that *predicts* piece ``k``: the same row that forced alignment reads by default
(``shift=False``) and that ``translate --align`` reads while decoding, so the supervised head is
directly the model's default alignment view. With ``training.guided_shift`` the head is
supervised at row ``k + 1`` instead, the step where piece ``k`` is the decoder's *input*
(shift-att, Chen et al. 2020): there the decoder knows which word it aligns, where at row ``k``
it must guess the word it is about to produce; the model's default view is then shift-att.

Word indices are the whitespace words of the training files as given (the same words that
``seqattn align`` links), so the alignment file must be made from the same text; when an aligner
ran on tokenized text, map its links back to whitespace words first
(``bench/guided_links.py`` does this for Moses-tokenized eflomal output).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import Path

import torch
from torch import Tensor

from seqattn.errors import DataError
from seqattn.textio import read_lines

PieceLinks = list[tuple[int, int]]  # (target piece, source piece), 0-based, no bos/eos
_LINK = re.compile(r"([0-9]+)[-p]([0-9]+)")


def read_pharaoh(path: str | Path, n_pairs: int) -> list[list[tuple[int, int]]]:
    """Word links per training pair from a Pharaoh file: ``i-j`` (source word i, target word j,
    0-based); ``ipj`` (possible) links are taken as links too. One line per pair."""
    if not Path(path).exists():
        raise DataError(f"training.guided_alignment '{path}' does not exist")
    lines = read_lines(path, allow_empty=True)
    if len(lines) != n_pairs:
        raise DataError(f"training.guided_alignment '{path}' has {len(lines)} lines but the "
                        f"training files have {n_pairs} pairs; it needs one line per pair")
    out: list[list[tuple[int, int]]] = []
    for number, line in enumerate(lines, 1):
        links = []
        for item in line.split():
            match = _LINK.fullmatch(item)
            if match is None:
                raise DataError(f"{path}:{number}: '{item}' is not a Pharaoh link 'i-j'")
            links.append((int(match[1]), int(match[2])))
        out.append(links)
    return out


def piece_links(word_links: Sequence[tuple[int, int]], src_words: Sequence[int],
                tgt_words: Sequence[int]) -> PieceLinks | None:
    """Expand word links (i source word, j target word) to (target piece, source piece) pairs:
    every piece of target word j is linked to every piece of source word i. ``src_words`` /
    ``tgt_words`` give the word of each piece. None when a link names a word the sentence does
    not have (the alignment file does not belong to this text)."""
    n_src = max(src_words, default=-1) + 1
    n_tgt = max(tgt_words, default=-1) + 1
    src_pieces: dict[int, list[int]] = {}
    for p, w in enumerate(src_words):
        src_pieces.setdefault(w, []).append(p)
    links: set[tuple[int, int]] = set()
    for i, j in word_links:
        if i >= n_src or j >= n_tgt:
            return None
        for tp, w in enumerate(tgt_words):
            if w == j:  # a word made only of characters sentencepiece drops has no pieces
                links.update((tp, sp) for sp in src_pieces.get(i, ()))
    return sorted(links)


def gold_rows(links: Sequence[PieceLinks | None], T: int, S: int) -> Tensor:
    """Row-normalised gold attention for a batch: (B, T, S); rows without links are all zero.

    Row k is target piece k (the step that predicts it); column j is source piece j.
    """
    gold = torch.zeros(len(links), T, S)
    index = [(b, k, j) for b, pairs in enumerate(links) for k, j in pairs or ()]
    if index:
        b_idx, k_idx, j_idx = torch.tensor(index, dtype=torch.long).unbind(1)
        gold[b_idx, k_idx, j_idx] = 1.0
    total = gold.sum(dim=-1, keepdim=True)                                  # (B, T, 1)
    return gold / total.clamp_min(1.0)


def alignment_loss(weights: Tensor, gold: Tensor) -> Tensor:
    """Summed cross-entropy of attention rows against gold rows.

    Shapes: weights (B, T, S) (softmax output, padding exactly 0), gold (B, T, S) -> scalar.
    """
    return -(gold * weights.float().clamp_min(1e-9).log()).sum()
