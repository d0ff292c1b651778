"""The names of the choices alignment offers, in one place and torch-free: the library checks
against these, and the CLI takes its choice types from here (``seqattn align --help`` must not
load torch)."""

from __future__ import annotations

from enum import Enum


class Merge(str, Enum):
    """How piece attention becomes word attention (:mod:`seqattn.align.words`)."""

    sum = "sum"
    mean = "mean"
    max = "max"


class Method(str, Enum):
    """How links are extracted from a word matrix (:mod:`seqattn.align.links`)."""

    argmax = "argmax"
    threshold = "threshold"
    both = "both"
    confident = "confident"
    bidir = "bidir"


class Attention(str, Enum):
    """The attention a view reads: cross-attention (alignments) or a self-attention."""

    cross = "cross"
    encoder = "encoder"
    decoder = "decoder"


class Sym(str, Enum):
    """Symmetrizations: heuristics on both directions' links, then soft ones on their matrices
    (:mod:`seqattn.align.symmetrize`)."""

    intersection = "intersection"
    union = "union"
    grow_diag = "grow-diag"
    grow_diag_final = "grow-diag-final"
    grow_diag_final_and = "grow-diag-final-and"
    mean = "mean"
    geomean = "geomean"


MERGES = tuple(m.value for m in Merge)
METHODS = tuple(m.value for m in Method)
SELF_ATTENTIONS = (Attention.encoder.value, Attention.decoder.value)
HEURISTIC_NAMES = tuple(s.value for s in Sym)[:5]
SOFT_NAMES = tuple(s.value for s in Sym)[5:]
