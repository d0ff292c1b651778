"""Models: one interface (:class:`Seq2Seq`) and :func:`build_model`.

Every model, RNN or Transformer, offers the same four methods, so training, decoding and
alignment never need to know which class they hold:

- ``forward(src, src_pad, tgt_in, need_weights=False) -> (logits, weights | None)``: teacher
  forcing over a whole target prefix (training, forced alignment). Logits are raw.
- ``encode(src, src_pad) -> Memory``, ``init_state(memory) -> State`` and
  ``step(prev_tokens, state, memory) -> (logits, state, weights)``: one token at a time.

Attention weights always have the shape (B, L, H, ...): L = 1, H = 1 for the RNNs, and
L = decoder layers, H = heads (cross-attention) for the Transformer. ``Memory`` and ``State``
are small frozen dataclasses whose ``select(index)`` picks batch rows of every tensor they hold
(beam reordering; ``repeat_interleave`` indices expand a batch to beams).

Special ids used across the project: pad = 0, unk = 1, bos = 2, eos = 3.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol, TypeVar

from torch import Tensor, nn

from seqattn.config import ModelConfig
from seqattn.errors import ConfigError
from seqattn.models.rnn import RNNMemory, RNNSeq2Seq, RNNState, build_rnn
from seqattn.models.transformer import (
    TransformerMemory,
    TransformerSeq2Seq,
    TransformerState,
    build_transformer,
)

PAD_ID, UNK_ID, BOS_ID, EOS_ID = 0, 1, 2, 3

MemoryT = TypeVar("MemoryT", bound="Memory")
StateT = TypeVar("StateT", bound="State")


class Memory(Protocol):
    """Encoder output of one batch, computed once and read at every step."""

    @property
    def src_pad(self) -> Tensor:
        """(B, S) bool, True = padding."""
        ...

    def select(self: MemoryT, index: Tensor) -> MemoryT:
        """Rows ``index`` (a (B',) long tensor) of every tensor: a batch of size B'."""
        ...


class State(Protocol):
    """Decoder state between two steps (recurrent state or key/value cache)."""

    def select(self: StateT, index: Tensor) -> StateT:
        """Rows ``index`` (a (B',) long tensor) of every tensor: a batch of size B'."""
        ...


class Seq2Seq(Protocol[MemoryT, StateT]):
    """The interface every model implements (see the module docstring).

    Shapes:
        forward: src (B, S) long, src_pad (B, S) bool (True = padding), tgt_in (B, T) long
            -> logits (B, T, V), weights (B, L, H, T, S) if need_weights else None
        encode: src (B, S), src_pad (B, S) -> Memory
        init_state: Memory -> State (nothing decoded yet; the first step gets bos)
        step: prev_tokens (B,) long -> logits (B, V), State, weights (B, L, H, S)
    """

    def forward(self, src: Tensor, src_pad: Tensor, tgt_in: Tensor,
                need_weights: bool = False) -> tuple[Tensor, Tensor | None]: ...

    def encode(self, src: Tensor, src_pad: Tensor) -> MemoryT: ...

    def init_state(self, memory: MemoryT) -> StateT: ...

    def step(self, prev_tokens: Tensor, state: StateT,
             memory: MemoryT) -> tuple[Tensor, StateT, Tensor]: ...


BUILDERS: dict[str, Callable[[ModelConfig, int, int, int], nn.Module]] = {
    "rnn": build_rnn,
    "transformer": build_transformer,
}


def build_model(cfg: ModelConfig, src_vocab: int, tgt_vocab: int,
                pad_id: int = PAD_ID) -> nn.Module:
    """Build the model ``cfg.arch`` names; it implements :class:`Seq2Seq`."""
    if cfg.arch not in BUILDERS:
        raise ConfigError(f"unknown model.arch {cfg.arch!r}; choose one of: "
                          f"{', '.join(sorted(BUILDERS))}")
    return BUILDERS[cfg.arch](cfg, src_vocab, tgt_vocab, pad_id)


__all__ = [
    "BOS_ID",
    "BUILDERS",
    "EOS_ID",
    "PAD_ID",
    "UNK_ID",
    "Memory",
    "RNNMemory",
    "RNNSeq2Seq",
    "RNNState",
    "Seq2Seq",
    "State",
    "TransformerMemory",
    "TransformerSeq2Seq",
    "TransformerState",
    "build_model",
]
