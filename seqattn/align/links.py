"""Word links from word attention: per target word its best source word (argmax), every pair
above a threshold, or both; both directions combined with a reverse model
(:mod:`seqattn.align.symmetrize`); and the Pharaoh ``i-j`` format scripts read.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import torch
from torch import Tensor

from seqattn.align.names import METHODS
from seqattn.align.symmetrize import HEURISTICS, SOFT, Link, soft_symmetrize, symmetrize
from seqattn.errors import UsageError

#: the names errors give the settings of an extraction (the CLI shows its flags instead)
EXTRACTION_PARAMS = ("extraction.method", "extraction.threshold", "extraction.sym")


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


def both_norms(words: Tensor) -> Tensor:
    """The mean of a (target words × source words) matrix and its column-normalised copy: how
    much target word t looks at source word s, and what share of all the attention s receives
    comes from t. One direction's matrix read both ways, as SimAlign (Jalili Sabet et al.
    2020) normalises a similarity matrix over rows and over columns; a source word that every
    target word glances at (an article, "is") no longer links to the ones that only glance.

    Shapes: (T, S) -> (T, S)
    """
    columns = words / words.sum(dim=0, keepdim=True).clamp_min(1e-9)    # (T, S), columns sum 1
    return (words + columns) / 2


def extract_links(words: Tensor, method: str = "argmax",
                  threshold: float | None = None) -> set[Link]:
    """Links from a (target words × source words) matrix: ``argmax`` (per target word its best
    source word; rows without any weight get none), ``threshold`` (weight ≥ ``threshold``),
    ``both`` (their union), ``confident`` (their intersection: a target word's best source
    word, only if its weight reaches ``threshold``; a word the model is unsure of stays
    unlinked, as people leave some words unaligned), or ``bidir`` (``threshold`` on
    :func:`both_norms`: the matrix read over rows and over columns)."""
    Extraction(method, threshold)  # the one check of a method and its threshold
    if method == "bidir":
        assert threshold is not None  # checked above
        return set(threshold_links(both_norms(words), float(threshold)))
    links: set[Link] = set()
    if method in ("argmax", "both", "confident") and words.numel():
        has_mass = (words.max(dim=1).values > 0).tolist()
        links |= {(s, t) for s, t in argmax_links(words) if has_mass[t]}
    if method == "confident":
        assert threshold is not None  # checked above
        return {(s, t) for s, t in links if float(words[t, s]) >= threshold}
    if method in ("threshold", "both"):
        assert threshold is not None  # checked above
        links |= set(threshold_links(words, float(threshold)))
    return links


def pharaoh(links: Iterable[tuple[int, int]]) -> str:
    """``[(0, 0), (2, 1)]`` -> ``'0-0 2-1'`` (0-based source-target, sorted)."""
    return " ".join(f"{s}-{t}" for s, t in sorted(links))


@dataclass(frozen=True)
class Extraction:
    """How links are chosen: ``method`` (argmax, threshold, both), its ``threshold``, and
    ``sym``, the symmetrization heuristic used when a reverse model is given."""

    method: str = "argmax"
    threshold: float | None = None
    sym: str = "grow-diag-final"

    def links_by(self) -> str:
        """In words: ``argmax``, ``threshold 0.4``, ``confident 0.3``."""
        return "argmax" if self.method == "argmax" else f"{self.method} {self.threshold}"

    def __post_init__(self) -> None:
        if self.method not in METHODS:
            raise UsageError(f"extraction.method must be one of: {', '.join(METHODS)}; "
                             f"got '{self.method}'", params=EXTRACTION_PARAMS)
        if self.method != "argmax" and self.threshold is None:
            raise UsageError(f"extraction.method {self.method} needs extraction.threshold P",
                             params=EXTRACTION_PARAMS)
        if self.method == "argmax" and self.threshold is not None:
            raise UsageError("extraction.threshold does not apply to extraction.method argmax; "
                             "use extraction.method both", params=EXTRACTION_PARAMS)
        if self.threshold is not None and not 0.0 <= self.threshold <= 1.0:
            raise UsageError(f"extraction.threshold must be within [0, 1], got {self.threshold}",
                             params=EXTRACTION_PARAMS)
        if self.sym not in HEURISTICS and self.sym not in SOFT:
            raise UsageError(f"extraction.sym must be one of: {', '.join([*HEURISTICS, *SOFT])}; "
                             f"got '{self.sym}'", params=EXTRACTION_PARAMS)


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
