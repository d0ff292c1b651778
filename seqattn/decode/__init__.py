"""Decoding, written only against the :class:`seqattn.models.Seq2Seq` interface: greedy search
(:mod:`~seqattn.decode.greedy`, for validation) and batched beam search
(:mod:`~seqattn.decode.beam`). The search settings are one typed object,
:class:`seqattn.config.DecodeConfig`, checked where it is made."""

from seqattn.decode.beam import Hypothesis, beam_search, length_penalty
from seqattn.decode.greedy import greedy

__all__ = ["Hypothesis", "beam_search", "greedy", "length_penalty"]
