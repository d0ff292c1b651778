"""An evidence card per sentence pair (``seqattn align --check``): signs worth a human look.

Attention is not an explanation, and none of these proves an error; each is a cheap hint that
the target may not say what the source says. All figures are read from the (target words ×
source words) matrix of the chosen view and each target word's end-of-sentence mass:

* **omission** — a source word whose total attention, summed over all target words, is below
  ``OMISSION_MASS`` (0.2): almost nothing was translated from it;
* **repetition** — a run of ``n >= 1`` target words immediately followed by the same ``n``
  words (case and surrounding punctuation ignored), as in "a dog a dog" or "Hund Hund.": a
  looping decoder;
* **flat** — a target word whose attention row, renormalised without eos, has a normalised
  entropy ``H(row) / log2(n_src)`` of at least ``FLAT_ENTROPY`` (0.9; only with 3 or more
  source words): it attends to nothing in particular (possible hallucination);
* **eos** — a target word with at least ``EOS_MASS`` (0.5) of its attention on
  end-of-sentence: it is not grounded in any source word.

The thresholds suit the default merge (``sum``), where every row is a distribution.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # torch-free at import time: the CLI help quotes the thresholds
    from torch import Tensor

_PUNCT = ".,;:!?\"'()[]«»„“”‚‘’-–—…"
OMISSION_MASS = 0.2
FLAT_ENTROPY = 0.9
FLAT_MIN_SOURCE = 3
EOS_MASS = 0.5


@dataclass
class Checks:
    """The evidence card of one pair: word indices per sign, and the repeated runs."""

    omitted: list[int] = field(default_factory=list)        # source words
    repeated: list[tuple[int, int, int]] = field(default_factory=list)  # (start, end, n)
    flat: list[int] = field(default_factory=list)           # target words
    eos: list[int] = field(default_factory=list)            # target words

    def target_flags(self, j: int) -> list[str]:
        """The flags of target word ``j``: 'repeat', 'flat', 'eos'."""
        flags = []
        if any(start <= j < end for start, end, _ in self.repeated):
            flags.append("repeat")
        if j in self.flat:
            flags.append("flat")
        if j in self.eos:
            flags.append("eos")
        return flags

    @property
    def clean(self) -> bool:
        return not (self.omitted or self.repeated or self.flat or self.eos)

    def as_dict(self, src_words: Sequence[str], tgt_words: Sequence[str]) -> dict[str, Any]:
        return {
            "omitted": [{"index": i, "word": src_words[i]} for i in self.omitted],
            "repeated": [{"start": s, "end": e, "n": n, "ngram": " ".join(tgt_words[s: s + n])}
                         for s, e, n in self.repeated],
            "flat": self.flat, "eos": self.eos,
        }


def omitted_sources(words: Tensor) -> list[int]:
    """Source words whose attention summed over target words is below ``OMISSION_MASS``."""
    if words.numel() == 0:
        return []
    return [i for i, mass in enumerate(words.sum(dim=0).tolist()) if mass < OMISSION_MASS]


def tandem_repeats(tgt_words: Sequence[str]) -> list[tuple[int, int, int]]:
    """``(start, end, n)`` for each loop: words ``start..end-1`` repeat a period of ``n`` words
    at least twice ("a dog a dog a dog": ``(0, 6, 2)``). Shortest period first; a loop is
    followed to its end, and the search goes on after it."""
    low = [w.lower().strip(_PUNCT) or w for w in tgt_words]
    found: list[tuple[int, int, int]] = []
    start = 0
    while start < len(low):
        n = next((n for n in range(1, (len(low) - start) // 2 + 1)
                  if low[start: start + n] == low[start + n: start + 2 * n]), None)
        if n is None:
            start += 1
            continue
        end = start + 2 * n
        while end < len(low) and low[end] == low[end - n]:
            end += 1
        found.append((start, end, n))
        start = end
    return found


def flat_rows(words: Tensor) -> list[int]:
    """Target words whose renormalised row has normalised entropy ≥ ``FLAT_ENTROPY``."""
    n_src = words.size(1) if words.dim() == 2 else 0
    if n_src < FLAT_MIN_SOURCE:
        return []
    flat = []
    for j, row in enumerate(words.tolist()):
        total = sum(row)
        if total <= 0:
            continue
        h = -sum(p / total * math.log2(p / total) for p in row if p > 0)
        if h / math.log2(n_src) >= FLAT_ENTROPY:
            flat.append(j)
    return flat


def evidence(words: Tensor, eos: Tensor, tgt_words: Sequence[str]) -> Checks:
    """The evidence card of one pair.

    Shapes:
        words: (n_tgt, n_src) word attention; eos: (n_tgt,) end-of-sentence mass
    """
    return Checks(omitted=omitted_sources(words), repeated=tandem_repeats(tgt_words),
                  flat=flat_rows(words),
                  eos=[j for j, m in enumerate(eos.tolist()) if m >= EOS_MASS])
