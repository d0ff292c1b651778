"""Alignment error rate (Och & Ney 2003, sec. 5) and the two file formats it needs.

* **Pharaoh** (hypotheses): one line per sentence pair, links ``i-j`` separated by spaces,
  0-indexed, ``i`` a source word and ``j`` a target word. This is what ``seqattn align``,
  fast_align and GIZA++ (via symmetrisation scripts) write.
* **talp** (gold): the same, with ``i-j`` a *sure* link and ``ipj`` a *possible* one. The
  NAACL 2003 gold sets are 1-indexed; read them with ``one_indexed=True``.

With A the hypothesis links, S the sure and P the possible gold links (every sure link also
counts as possible), summed over all sentences of the corpus:

    precision = |A∩P| / |A|      recall = |A∩S| / |S|
    AER = 1 - (|A∩S| + |A∩P|) / (|A| + |S|)

Each file is a set of links per sentence, so a link written twice counts once. This is what
the scoring scripts of lilt/alignment-scripts and awesome-align (``aer.py``) compute; printed
as rounded percentages (``f"{100 * x:.1f}"``), it reproduces the figures they published for
their fast_align and GIZA++ outputs on the NAACL 2003 en-fr and ro-en sets.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence, Set
from dataclasses import dataclass
from pathlib import Path

from seqattn.errors import DataError

logger = logging.getLogger(__name__)

Link = tuple[int, int]
"""``(source_index, target_index)``, 0-based."""


@dataclass(frozen=True)
class GoldAlignment:
    """The gold links of one sentence pair; ``possible`` includes every sure link."""

    sure: frozenset[Link]
    possible: frozenset[Link]


@dataclass(frozen=True)
class AlignmentScores:
    """Corpus-level alignment quality; rates are fractions in [0, 1].

    ``f1`` is the harmonic mean of ``precision`` and ``recall`` as defined above. A rate whose
    denominator is 0 (no hypothesis links for precision, no sure links for recall) is 0.0.
    """

    aer: float
    precision: float
    recall: float
    f1: float
    sentences: int
    hyp_links: int  # |A|
    sure_links: int  # |S|
    possible_links: int  # |P|, sure links included
    sure_matches: int  # |A∩S|
    possible_matches: int  # |A∩P|


def aer(
    hyp_links: Sequence[Set[Link]],
    gold_sure: Sequence[Set[Link]],
    gold_possible: Sequence[Set[Link]],
) -> AlignmentScores:
    """Score hypothesis links against gold links, one set of links per sentence pair.

    :param hyp_links: the hypothesis alignment A of each sentence.
    :param gold_sure: the sure gold links S of each sentence.
    :param gold_possible: the possible gold links of each sentence; sure links are added to
        them here, so passing only the ``ipj`` links is fine.
    :raises DataError: the three sequences differ in length, or there is no link at all.
    """
    if not len(hyp_links) == len(gold_sure) == len(gold_possible):
        raise DataError(
            f"alignment has {len(hyp_links)} sentences but the gold has {len(gold_sure)} "
            f"(sure) and {len(gold_possible)} (possible)"
        )
    n_a = n_s = n_p = a_s = a_p = 0
    for a, s, p in zip(hyp_links, gold_sure, gold_possible):
        p = set(p) | set(s)
        n_a, n_s, n_p = n_a + len(a), n_s + len(s), n_p + len(p)
        a_s += sum(1 for link in a if link in s)
        a_p += sum(1 for link in a if link in p)
    if n_a + n_s == 0:
        raise DataError("AER is undefined: neither the hypothesis nor the gold has a sure link")
    precision = a_p / n_a if n_a else 0.0
    recall = a_s / n_s if n_s else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return AlignmentScores(
        aer=1.0 - (a_s + a_p) / (n_a + n_s),
        precision=precision,
        recall=recall,
        f1=f1,
        sentences=len(hyp_links),
        hyp_links=n_a,
        sure_links=n_s,
        possible_links=n_p,
        sure_matches=a_s,
        possible_matches=a_p,
    )


def parse_link(token: str, *, one_indexed: bool = False, where: str = "") -> tuple[Link, bool]:
    """Parse one ``i-j`` (sure) or ``ipj`` (possible) token into a 0-based link.

    :returns: the link and whether it is sure.
    :raises DataError: the token is malformed, or it holds index 0 in a 1-indexed file;
        the message starts with ``where`` (``file:line``).
    """
    sure = "-" in token
    parts = token.split("-" if sure else "p")
    if len(parts) != 2 or not all(part.isascii() and part.isdigit() for part in parts):
        raise DataError(
            f"{where}: malformed link {token!r}; expected 'i-j' (sure) or 'ipj' (possible) "
            "with non-negative integers"
        )
    i, j = int(parts[0]), int(parts[1])
    if one_indexed:
        if i == 0 or j == 0:
            raise DataError(
                f"{where}: link {token!r} has index 0, so the file is not 1-indexed "
                "(drop --gold-one-indexed)"
            )
        i, j = i - 1, j - 1
    return (i, j), sure


def parse_pharaoh(
    line: str, *, one_indexed: bool = False, reverse: bool = False, where: str = ""
) -> frozenset[Link]:
    """Parse one Pharaoh line (``0-0 1-2 ...``) into a set of (source, target) links.

    :param reverse: the line is written target-source; swap each link.
    :raises DataError: a token is not ``i-j`` (possible links belong in gold files only).
    """
    links = set()
    for token in line.split():
        link, sure = parse_link(token, one_indexed=one_indexed, where=where)
        if not sure:
            raise DataError(
                f"{where}: possible link {token!r} in a hypothesis; only gold files "
                "distinguish sure ('i-j') from possible ('ipj') links"
            )
        links.add((link[1], link[0]) if reverse else link)
    return frozenset(links)


def parse_talp(line: str, *, one_indexed: bool = False, where: str = "") -> GoldAlignment:
    """Parse one talp gold line (``1-1 2p3 ...``): ``i-j`` sure, ``ipj`` possible."""
    sure: set[Link] = set()
    possible: set[Link] = set()
    for token in line.split():
        link, is_sure = parse_link(token, one_indexed=one_indexed, where=where)
        possible.add(link)
        if is_sure:
            sure.add(link)
    return GoldAlignment(frozenset(sure), frozenset(possible))


def read_pharaoh(
    path: str | Path, *, one_indexed: bool = False, reverse: bool = False
) -> list[frozenset[Link]]:
    """Read a Pharaoh file: one set of links per line (an empty line: no links)."""
    from seqattn.textio import read_lines

    return [
        parse_pharaoh(line, one_indexed=one_indexed, reverse=reverse, where=f"{path}:{n}")
        for n, line in enumerate(read_lines(path), start=1)
    ]


def read_talp(path: str | Path, *, one_indexed: bool = False) -> list[GoldAlignment]:
    """Read a talp gold file: sure and possible links per line."""
    from seqattn.textio import read_lines

    return [
        parse_talp(line, one_indexed=one_indexed, where=f"{path}:{n}")
        for n, line in enumerate(read_lines(path), start=1)
    ]


def score_files(
    hyp_path: str | Path,
    gold_path: str | Path,
    *,
    gold_one_indexed: bool = False,
    reverse: bool = False,
) -> AlignmentScores:
    """AER of a Pharaoh hypothesis file (0-indexed) against a talp gold file.

    :param gold_one_indexed: the gold file counts words from 1 (as the NAACL 2003 sets do).
    :param reverse: the hypothesis is written target-source; swap each link.
    :raises DataError: unreadable or malformed files, or different numbers of lines.
    """
    hyp = read_pharaoh(hyp_path, reverse=reverse)
    gold = read_talp(gold_path, one_indexed=gold_one_indexed)
    if len(hyp) != len(gold):
        raise DataError(
            f"alignment '{hyp_path}' has {len(hyp)} lines but gold '{gold_path}' has {len(gold)}"
        )
    possible = [g.possible for g in gold]
    if not gold_one_indexed and _uses_index_zero(hyp) and not _uses_index_zero(possible):
        logger.warning(
            "gold '%s' never uses index 0 but the hypothesis does: if the gold is 1-indexed "
            "(as the NAACL 2003 .talp sets are), pass --gold-one-indexed",
            gold_path,
        )
    return aer(hyp, [g.sure for g in gold], possible)


def _uses_index_zero(alignments: Sequence[Set[Link]]) -> bool:
    """Whether any link has a 0 index (a 1-indexed file never does)."""
    return any(0 in link for links in alignments for link in links)
