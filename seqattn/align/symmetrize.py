"""Symmetrization of two directional word alignments (pure functions on link sets).

A forward model (source → target) gives links ``a``, a reverse model (target → source) gives
links ``b``, both written as ``(source_index, target_index)``. The heuristics are those of
Och & Ney (2003) as refined by Koehn et al. (2003) and used by Moses and fast_align's
``atools``:

* ``intersection``: a ∩ b (high precision); ``union``: a ∪ b (high recall);
* ``grow-diag``: start from a ∩ b; repeatedly add a link of a ∪ b that touches (one of 8
  neighbours, diagonals included) a link already chosen, provided its source word or its target
  word is still unaligned; stop when a full pass adds nothing;
* ``grow-diag-final``: grow-diag, then add the links of a, then those of b, whose source or
  target word is still unaligned;
* ``grow-diag-final-and``: the same, but a final link needs *both* words unaligned.

Candidates are visited in sorted ``(source, target)`` order and a link counts as soon as it is
added (as ``atools`` does), so the result is deterministic.

Two soft symmetrizations combine the two directions' word attention *before* links are
extracted (so the extraction's method and threshold apply to the combined matrix):

* ``mean``: (F + Bᵀ) / 2, with F the forward (target × source) matrix and B the reverse one;
* ``geomean``: sqrt(F ⊙ Bᵀ): high only where both directions agree.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Set
from typing import Any

Link = tuple[int, int]
"""``(source_index, target_index)``, 0-based."""

NEIGHBOURS: tuple[Link, ...] = ((-1, 0), (0, -1), (1, 0), (0, 1),
                                (-1, -1), (-1, 1), (1, -1), (1, 1))


class _Grid:
    """The links chosen so far and which source / target words they cover."""

    def __init__(self, links: Iterable[Link]):
        self.links: set[Link] = set()
        self.src: set[int] = set()
        self.tgt: set[int] = set()
        for link in links:
            self.add(link)

    def add(self, link: Link) -> None:
        self.links.add(link)
        self.src.add(link[0])
        self.tgt.add(link[1])

    def one_unaligned(self, link: Link) -> bool:
        return link[0] not in self.src or link[1] not in self.tgt

    def both_unaligned(self, link: Link) -> bool:
        return link[0] not in self.src and link[1] not in self.tgt

    def touches(self, link: Link) -> bool:
        s, t = link
        return any((s + ds, t + dt) in self.links for ds, dt in NEIGHBOURS)


def intersection(a: Set[Link], b: Set[Link]) -> set[Link]:
    return set(a) & set(b)


def union(a: Set[Link], b: Set[Link]) -> set[Link]:
    return set(a) | set(b)


def _grow(a: Set[Link], b: Set[Link]) -> _Grid:
    grid = _Grid(set(a) & set(b))
    candidates = sorted((set(a) | set(b)) - grid.links)
    added = True
    while added:  # passes over the remaining candidates until one adds nothing
        added = False
        for link in candidates:
            if link not in grid.links and grid.one_unaligned(link) and grid.touches(link):
                grid.add(link)
                added = True
    return grid


def _final(grid: _Grid, links: Set[Link], accept: Callable[[Link], bool]) -> None:
    for link in sorted(links):
        if link not in grid.links and accept(link):
            grid.add(link)


def grow_diag(a: Set[Link], b: Set[Link]) -> set[Link]:
    return _grow(a, b).links


def grow_diag_final(a: Set[Link], b: Set[Link]) -> set[Link]:
    grid = _grow(a, b)
    _final(grid, a, grid.one_unaligned)
    _final(grid, b, grid.one_unaligned)
    return grid.links


def grow_diag_final_and(a: Set[Link], b: Set[Link]) -> set[Link]:
    grid = _grow(a, b)
    _final(grid, a, grid.both_unaligned)
    _final(grid, b, grid.both_unaligned)
    return grid.links


HEURISTICS: dict[str, Callable[[Set[Link], Set[Link]], set[Link]]] = {
    "intersection": intersection,
    "union": union,
    "grow-diag": grow_diag,
    "grow-diag-final": grow_diag_final,
    "grow-diag-final-and": grow_diag_final_and,
}


SOFT: dict[str, Callable[[Any, Any], Any]] = {
    "mean": lambda f, b: (f + b) / 2,
    "geomean": lambda f, b: (f * b).sqrt(),
}
"""Soft symmetrizations: (forward (T, S), reverse transposed (T, S)) -> combined (T, S)."""


def soft_symmetrize(forward: Any, reverse: Any, heuristic: str) -> Any:
    """Combine a forward (target × source) and a reverse (source × target) word attention
    matrix into one (target × source) matrix with ``heuristic`` (``mean`` or ``geomean``)."""
    if heuristic not in SOFT:
        from seqattn.errors import UsageError

        raise UsageError(f"unknown soft symmetrization '{heuristic}'; choose one of: "
                         f"{', '.join(SOFT)}")
    if forward.shape != reverse.T.shape:
        raise ValueError(f"forward {tuple(forward.shape)} and reverse "
                         f"{tuple(reverse.shape)} are not transposes of each other's shape")
    return SOFT[heuristic](forward, reverse.T)


def symmetrize(forward: Set[Link], reverse: Set[Link], heuristic: str) -> set[Link]:
    """Combine forward and reverse links (both ``(source, target)``) with ``heuristic``."""
    if heuristic not in HEURISTICS:
        from seqattn.errors import UsageError

        raise UsageError(f"unknown symmetrization '{heuristic}'; choose one of: "
                         f"{', '.join(HEURISTICS)}")
    return HEURISTICS[heuristic](forward, reverse)
