"""A vocabulary shortlist: decode over the target pieces a batch's source makes likely, not over
the whole vocabulary (Jean et al. 2015, "On Using Very Large Target Vocabulary for Neural
Machine Translation", §3.2: candidate lists from a word-level dictionary plus the most frequent
words; Marian's lexical shortlists and CTranslate2's vocabulary map do the same).

**Built** from a parallel corpus encoded with the model's sentencepiece models. A piece counts
once per sentence pair; c(s), c(t) are the pairs holding source piece s / target piece t, c(s, t)
the pairs holding both. Each source piece keeps the ``per_source`` target pieces with the highest
Dice coefficient 2·c(s, t) / (c(s) + c(t)) (the co-occurrence association Och & Ney 2003, §4.1,
compare alignment models with); every batch also gets the ``frequent`` most common target pieces
and the special pieces (unk, eos).

**Used** by :func:`seqattn.decode.beam_search` (``vocab=``): the output layer projects onto the
batch's candidates only, the softmax normalises over them, and the chosen columns are mapped back
to vocabulary ids. Off by default: it changes the search (a piece outside the list can never be
chosen, and a line's candidates are its whole batch's, so a translation may depend on the lines
batched with it), so its BLEU cost is measured (README, "Performance").
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING

from seqattn.checkpoint import SHORTLIST
from seqattn.errors import CheckpointError, UsageError
from seqattn.vocab import EOS, UNK

if TYPE_CHECKING:  # numpy and torch are imported where used: `seqattn --help` needs neither
    import numpy as np
    from torch import Tensor

PER_SOURCE = 20
FREQUENT = 300
_CHUNK = 50_000                       # sentence pairs counted at a time


@dataclass(frozen=True)
class Shortlist:
    """Candidate target pieces per source piece.

    Shapes:
        candidates: (V_src, per_source) int32, -1 where a source piece has fewer candidates
        always: (F,) int32, the frequent and special target pieces every batch gets
    """

    candidates: np.ndarray
    always: np.ndarray
    target_size: int
    pairs: int           # sentence pairs counted
    vocabularies: str = ""   # SHA-256 of the sentencepiece model(s) it was counted with

    def for_sources(self, src: Tensor) -> Tensor:
        """The sorted target ids a batch may produce: the union of its source pieces' candidates
        and the ``always`` pieces. Shapes: src (B, S) long (padding included: pad's row is
        empty) -> (V',) long, on ``src``'s device."""
        import numpy as np
        import torch

        ids = src.detach().cpu().numpy().reshape(-1)
        ids = ids[(ids >= 0) & (ids < self.candidates.shape[0])]
        rows = self.candidates[np.unique(ids)].reshape(-1)
        union = np.union1d(rows[rows >= 0], self.always)
        return torch.from_numpy(union.astype(np.int64)).to(src.device)

    def save(self, path: Path) -> None:
        """Write atomically (safetensors; int16 ids where the target vocabulary allows)."""
        import numpy as np
        from safetensors.numpy import save

        from seqattn.textio import atomic_write

        ids = np.int16 if self.target_size < 2**15 else np.int32
        blob = save({"candidates": self.candidates.astype(ids), "always": self.always.astype(ids)},
                    metadata={"target_size": str(self.target_size), "pairs": str(self.pairs),
                              "vocabularies": self.vocabularies})
        atomic_write(path, lambda f: f.write(blob), binary=True)


def vocabularies_hash(model_dir: Path) -> str:
    """SHA-256 of a model directory's sentencepiece model(s): what a shortlist's ids mean."""
    import hashlib

    from seqattn.checkpoint import spm_paths

    digest = hashlib.sha256()
    for path in dict.fromkeys(spm_paths(Path(model_dir))):
        digest.update(path.read_bytes())
    return digest.hexdigest()


def load_shortlist(model_dir: Path, src_size: int, tgt_size: int) -> Shortlist:
    """The shortlist of a model directory, checked against the model's vocabularies (their
    sizes and, for a shortlist that records it, their hash)."""
    import numpy as np
    from safetensors import SafetensorError, safe_open

    path = Path(model_dir) / SHORTLIST
    if not path.is_file():
        raise UsageError(f"'{model_dir}' has no vocabulary shortlist ({SHORTLIST}): build one "
                         "with seqattn shortlist MODEL --src SRC --tgt TGT from its training "
                         "corpus (of a shipped model: of a copy, seqattn export NAME DIR), or "
                         "leave out --shortlist")
    try:
        with safe_open(str(path), "np") as f:
            meta = f.metadata() or {}
            candidates, always = f.get_tensor("candidates"), f.get_tensor("always")
        target_size, pairs = int(meta["target_size"]), int(meta["pairs"])
        vocabularies = meta.get("vocabularies", "")
    except (SafetensorError, KeyError, ValueError, OSError) as e:
        raise CheckpointError(f"'{path}' is not a readable shortlist ({e}); build it again "
                              "with seqattn shortlist") from None
    integers = all(np.issubdtype(a.dtype, np.integer) for a in (candidates, always))
    if (not integers or candidates.ndim != 2 or candidates.shape[0] != src_size
            or target_size != tgt_size or always.ndim != 1
            or int(candidates.max(initial=-1)) >= tgt_size
            or int(always.max(initial=-1)) >= tgt_size or int(always.min(initial=0)) < 0
            or not {UNK, EOS} <= set(always.tolist())
            or (vocabularies and vocabularies != vocabularies_hash(model_dir))):
        raise CheckpointError(f"'{path}' does not fit this model's vocabularies "
                              f"({src_size} source, {tgt_size} target pieces); build it again "
                              "with seqattn shortlist")
    return Shortlist(candidates.astype(np.int32), always.astype(np.int32), target_size, pairs,
                     vocabularies)


def _check_sizes(per_source: int, frequent: int) -> None:
    if per_source < 1:
        raise UsageError(f"--per-source must be at least 1; got {per_source}")
    if frequent < 0:
        raise UsageError(f"--frequent must be 0 or more; got {frequent}")


def build_shortlist(pairs: Iterable[tuple[Sequence[int], Sequence[int]]], src_size: int,
                    tgt_size: int, per_source: int = PER_SOURCE,
                    frequent: int = FREQUENT) -> Shortlist:
    """Count ``pairs`` of (source ids, target ids) and keep each source piece's ``per_source``
    best target pieces by the Dice coefficient (see the module docstring); ties go to the
    lower target id."""
    import numpy as np

    _check_sizes(per_source, frequent)
    c_src = np.zeros(src_size, dtype=np.int64)
    c_tgt = np.zeros(tgt_size, dtype=np.int64)
    keys = np.zeros(0, dtype=np.int64)             # s * tgt_size + t, sorted, unique
    counts = np.zeros(0, dtype=np.int64)           # c(s, t) of each key
    chunk: list[np.ndarray] = []
    n = 0

    def flush() -> None:
        nonlocal keys, counts
        if not chunk:
            return
        new, new_counts = np.unique(np.concatenate(chunk), return_counts=True)
        merged, inverse = np.unique(np.concatenate([keys, new]), return_inverse=True)
        counts = np.bincount(inverse, weights=np.concatenate([counts, new_counts]),
                             minlength=merged.size).astype(np.int64)
        keys = merged
        chunk.clear()

    for line, (src, tgt) in enumerate(pairs, start=1):
        s = np.unique(np.asarray(src, dtype=np.int64))
        t = np.unique(np.asarray(tgt, dtype=np.int64))
        if s.size == 0 or t.size == 0:
            continue
        if s[0] < 0 or s[-1] >= src_size or t[0] < 0 or t[-1] >= tgt_size:
            raise UsageError(f"pair {line}: an id outside the vocabularies "
                             f"({src_size} source, {tgt_size} target pieces)")
        n += 1
        c_src[s] += 1
        c_tgt[t] += 1
        chunk.append((s[:, None] * tgt_size + t[None, :]).reshape(-1))
        if len(chunk) >= _CHUNK:
            flush()
    flush()
    if n == 0:
        raise UsageError("the corpus has no sentence pair to count (every line empty?)")
    s_of, t_of = keys // tgt_size, keys % tgt_size
    dice = 2.0 * counts / (c_src[s_of] + c_tgt[t_of])
    order = np.lexsort((t_of, -dice, s_of))      # by source, best first, lower id on ties
    s_sorted, t_sorted = s_of[order], t_of[order]
    first = np.searchsorted(s_sorted, np.arange(src_size))        # each source's first row
    rank = np.arange(s_sorted.size) - first[s_sorted]
    keep = rank < per_source
    candidates = np.full((src_size, per_source), -1, dtype=np.int32)
    candidates[s_sorted[keep], rank[keep]] = t_sorted[keep]
    by_count = np.lexsort((np.arange(tgt_size), -c_tgt))          # most frequent first
    common = by_count[:frequent][c_tgt[by_count[:frequent]] > 0]
    always = np.union1d(common, [UNK, EOS]).astype(np.int32)
    return Shortlist(candidates, always, tgt_size, n)


def shortlist_from_files(model_dir: Path, src: Path, tgt: Path, per_source: int = PER_SOURCE,
                         frequent: int = FREQUENT) -> Shortlist:
    """:func:`build_shortlist` over two line-aligned files, encoded with the model directory's
    sentencepiece model(s) 10,000 pairs at a time."""
    from itertools import islice

    from seqattn.checkpoint import load_vocabs
    from seqattn.textio import file_pairs

    src_vocab, tgt_vocab = load_vocabs(Path(model_dir))

    def encoded() -> Iterable[tuple[list[int], list[int]]]:
        lines = file_pairs(Path(src), Path(tgt))
        while block := list(islice(lines, 10_000)):
            yield from zip(src_vocab.encode([s for s, _ in block]),
                           tgt_vocab.encode([t for _, t in block]))

    built = build_shortlist(encoded(), len(src_vocab), len(tgt_vocab), per_source, frequent)
    return replace(built, vocabularies=vocabularies_hash(Path(model_dir)))
