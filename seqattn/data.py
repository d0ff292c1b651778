"""Parallel text, encoded corpora and token-bucketed batches (ids: :mod:`seqattn.vocab`)."""

from __future__ import annotations

import logging
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from seqattn.errors import DataError
from seqattn.textio import open_input, read_lines, stream_lines
from seqattn.vocab import BOS, EOS, PAD, Vocab, segment

log = logging.getLogger(__name__)


# --------------------------------------------------------------------------- text files


def read_parallel(src_path: str | Path, tgt_path: str | Path) -> list[tuple[str, str]]:
    """Line-aligned (source, target) pairs; mismatched line counts are an error."""
    src, tgt = read_lines(src_path, allow_empty=True), read_lines(tgt_path, allow_empty=True)
    if len(src) != len(tgt):
        raise DataError(f"'{src_path}' has {len(src)} lines but '{tgt_path}' has {len(tgt)}; "
                        "parallel files must have one line per sentence pair")
    if not src:
        raise DataError(f"'{src_path}' and '{tgt_path}' are empty")
    return list(zip(src, tgt))


# --------------------------------------------------------------------------- guided-alignment links


PieceLinks = list[tuple[int, int]]  # (target piece, source piece), 0-based, no bos/eos
_LINK = re.compile(r"([0-9]+)[-p]([0-9]+)")


def read_pharaoh(path: str | Path, n_pairs: int) -> list[list[tuple[int, int]]]:
    """Word links per training pair from a Pharaoh file: ``i-j`` (source word i, target word j,
    0-based); ``ipj`` (possible) links are taken as links too. One line per pair."""
    check_pharaoh(path, n_pairs)
    return list(iter_pharaoh(path))


def check_pharaoh(path: str | Path, n_pairs: int) -> None:
    """Read a Pharaoh file once, keeping nothing: a missing file, a line count other than
    ``n_pairs`` or a malformed link is a DataError before any work."""
    if not Path(path).exists():
        raise DataError(f"training.guided_alignment '{path}' does not exist")
    count = sum(1 for _ in iter_pharaoh(path))
    if count != n_pairs:
        raise DataError(f"training.guided_alignment '{path}' has {count} lines but the "
                        f"training files have {n_pairs} pairs; it needs one line per pair")


def iter_pharaoh(path: str | Path) -> Iterator[list[tuple[int, int]]]:
    """The links of each line of a Pharaoh file, lazily (a million pairs' links never sit in
    memory at once); a malformed link is a DataError naming its line."""
    import gzip
    import zlib

    file = Path(path)
    opened: Any = gzip.open(file, "rb") if file.suffix == ".gz" else open_input(file)
    with opened as f:
        try:
            for number, line in enumerate(stream_lines(f, str(file)), 1):
                links = []
                for item in line.split():
                    match = _LINK.fullmatch(item)
                    if match is None:
                        raise DataError(f"{path}:{number}: '{item}' is not a Pharaoh link 'i-j'")
                    links.append((int(match[1]), int(match[2])))
                yield links
        except (EOFError, zlib.error):
            raise DataError(f"'{path}' is not a valid gzip file") from None


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


# --------------------------------------------------------------------------- encoded corpora


@dataclass
class Corpus:
    """Encoded sentence pairs (ids without bos/eos) and what was skipped while encoding."""

    src: list[list[int]]
    tgt: list[list[int]]
    skipped_empty: int = 0
    skipped_long: int = 0
    links: list[list[tuple[int, int]] | None] | None = None  # guided alignment, piece level
    unusable_links: int = 0  # pairs whose alignment line did not fit the text
    skipped_ratio: int = 0  # pairs whose sides' lengths differ more than data.max_ratio

    def __len__(self) -> int:
        return len(self.src)


def encode_corpus(pairs: Sequence[tuple[str, str]], src_vocab: Vocab, tgt_vocab: Vocab,
                  max_len: int | None,
                  word_links: Sequence[Sequence[tuple[int, int]]] | None = None) -> Corpus:
    """Encode pairs; skip (and count) empty pairs and pairs longer than ``max_len`` pieces.

    ``word_links`` (one list of (source word, target word) links per pair, for guided
    alignment) are mapped to piece links and kept for the kept pairs; a pair whose links do not
    fit its words gets None (no supervision) and is counted in ``unusable_links``.
    """
    keep = [k for k, (s, t) in enumerate(pairs) if s.strip() and t.strip()]
    src_ids = src_vocab.encode([pairs[k][0] for k in keep])
    tgt_ids = tgt_vocab.encode([pairs[k][1] for k in keep])
    corpus = Corpus([], [], skipped_empty=len(pairs) - len(keep))
    if word_links is not None:
        corpus.links = []
    for k, s, t in zip(keep, src_ids, tgt_ids):
        if max_len is not None and (len(s) + 1 > max_len or len(t) + 1 > max_len):
            corpus.skipped_long += 1
            continue
        corpus.src.append(s)
        corpus.tgt.append(t)
        if word_links is not None and corpus.links is not None:
            links = _piece_links(src_vocab, tgt_vocab, pairs[k], s, t, word_links[k])
            corpus.unusable_links += links is None
            corpus.links.append(links)
    return corpus


def _piece_links(src_vocab: Vocab, tgt_vocab: Vocab, pair: tuple[str, str], src: list[int],
                 tgt: list[int], word_links: Sequence[tuple[int, int]]
                 ) -> list[tuple[int, int]] | None:
    s_seg, t_seg = segment(src_vocab.sp, pair[0]), segment(tgt_vocab.sp, pair[1])
    if s_seg.ids != src or t_seg.ids != tgt:  # offsets must describe the pieces we train on
        return None
    return piece_links(word_links, s_seg.word_of_piece, t_seg.word_of_piece)


# --------------------------------------------------------------------------- batches


@dataclass
class Batch:
    """A padded batch. Shapes: src (B, S), src_pad (B, S), tgt_in/tgt_out (B, T)."""

    src: Tensor
    src_pad: Tensor          # True = padding
    tgt_in: Tensor           # bos y1 .. yn (padded)
    tgt_out: Tensor          # y1 .. yn eos (padded)
    n_tokens: int            # real target tokens (the loss normaliser)
    gold: Tensor | None = None  # (B, T, S) guided-alignment rows (see seqattn.train.guided)

    def to(self, device: torch.device) -> Batch:
        return Batch(self.src.to(device, non_blocking=True),
                     self.src_pad.to(device, non_blocking=True),
                     self.tgt_in.to(device, non_blocking=True),
                     self.tgt_out.to(device, non_blocking=True), self.n_tokens,
                     None if self.gold is None else self.gold.to(device, non_blocking=True))


def pad_sources(seqs: Sequence[Sequence[int]]) -> tuple[Tensor, Tensor]:
    """Append eos and pad: returns src (B, S) long and src_pad (B, S) bool (True = padding)."""
    S = max(len(s) for s in seqs) + 1
    src = torch.full((len(seqs), S), PAD, dtype=torch.long)
    for i, s in enumerate(seqs):
        src[i, : len(s) + 1] = torch.tensor([*s, EOS], dtype=torch.long)
    return src, src == PAD


def make_batch(src: Sequence[Sequence[int]], tgt: Sequence[Sequence[int]]) -> Batch:
    src_t, src_pad = pad_sources(src)
    T = max(len(t) for t in tgt) + 1
    tgt_in = torch.full((len(tgt), T), PAD, dtype=torch.long)
    tgt_out = torch.full((len(tgt), T), PAD, dtype=torch.long)
    for i, t in enumerate(tgt):
        tgt_in[i, : len(t) + 1] = torch.tensor([BOS, *t], dtype=torch.long)
        tgt_out[i, : len(t) + 1] = torch.tensor([*t, EOS], dtype=torch.long)
    return Batch(src_t, src_pad, tgt_in, tgt_out, n_tokens=sum(len(t) + 1 for t in tgt))


def lengths(seqs: Sequence[Sequence[int]]) -> Sequence[int]:
    """Each sequence's length; a stored corpus (:class:`seqattn.store.Ragged`) has them as a
    memory-mapped int32 array, without reading its ids."""
    stored = getattr(seqs, "lengths", None)
    return stored() if callable(stored) else [len(s) for s in seqs]


def iterate_batches(corpus: Corpus, indices: Sequence[Any]) -> Iterator[Batch]:
    for idx in indices:
        batch = make_batch([corpus.src[i] for i in idx], [corpus.tgt[i] for i in idx])
        if corpus.links is not None:
            batch.gold = gold_rows([corpus.links[i] for i in idx], batch.tgt_out.size(1),
                                   batch.src.size(1))
        yield batch
