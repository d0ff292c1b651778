"""Models: one interface (:class:`Seq2Seq`) and :func:`build_model`.

Every model, RNN or Transformer, offers the same four methods, so training, decoding and
alignment never need to know which class they hold:

- ``forward(src, src_pad, tgt_in, need_weights=False) -> (logits, weights | None)``: teacher
  forcing over a whole target prefix (training, forced alignment). Logits are raw.
- ``encode(src, src_pad) -> Memory``, ``init_state(memory) -> State`` and
  ``step(prev_tokens, state, memory, project=True) -> (logits, state, weights)``: one token
  at a time.

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
from seqattn.vocab import BOS as BOS_ID
from seqattn.vocab import EOS as EOS_ID
from seqattn.vocab import PAD as PAD_ID
from seqattn.vocab import UNK as UNK_ID

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
            -> logits (B, T, V), weights (B, L, H, T, S) if need_weights else None;
            with project=False the features (B, T, F) that output_layer() turns into logits
        encode: src (B, S), src_pad (B, S) -> Memory
        init_state: Memory -> State (nothing decoded yet; the first step gets bos)
        step: prev_tokens (B,) long -> logits (B, V), State, weights (B, L, H, S); with
            project=False the features (B, F) instead of logits (a vocabulary shortlist
            projects them onto some rows of output_layer())
        hidden_states: src, src_pad, tgt_in as forward -> encoder output (B, S, De), every
            decoder layer's output (B, Ld, T, D); with a list, forward's weights appended per
            layer, each (B, H, T, S) (what the full-context aligner reads)
    """

    def forward(self, src: Tensor, src_pad: Tensor, tgt_in: Tensor,
                need_weights: bool = False, project: bool = True
                ) -> tuple[Tensor, Tensor | None]: ...

    def output_layer(self) -> nn.Linear: ...

    def hidden_states(self, src: Tensor, src_pad: Tensor, tgt_in: Tensor,
                      weights: list[Tensor] | None = None) -> tuple[Tensor, Tensor]: ...

    def encode(self, src: Tensor, src_pad: Tensor) -> MemoryT: ...

    def init_state(self, memory: MemoryT) -> StateT: ...

    def step(self, prev_tokens: Tensor, state: StateT, memory: MemoryT,
             project: bool = True) -> tuple[Tensor, StateT, Tensor]: ...

    #: the longest source (pieces, without eos) the encoder takes
    max_source_len: int
    #: the longest output (pieces) the decoder can produce, None for no hard limit
    max_target_len: int | None

    def attention_shape(self, kind: str = "cross") -> tuple[int, int] | None:
        """(layers L, heads H) of an attention the model shows: ``"cross"`` (the weights of
        ``forward`` and ``step``), ``"encoder"`` or ``"decoder"`` self-attention (through
        ``self_attention``); None for a kind this model does not have."""
        ...


BUILDERS: dict[str, Callable[[ModelConfig, int, int, int], nn.Module]] = {
    "rnn": build_rnn,
    "transformer": build_transformer,
}


def attention_shape_of(cfg: ModelConfig) -> tuple[int, int] | None:
    """(layers, heads) of the cross-attention a model of ``cfg`` will show, None for an RNN
    without attention; known before it is built (:meth:`Seq2Seq.attention_shape` of the built
    model says the same)."""
    if cfg.arch == "transformer":
        return cfg.dec_layers, cfg.heads
    return None if cfg.attention == "none" else (1, 1)


def has_attention(model: nn.Module) -> bool:
    """Whether ``model`` (a :class:`Seq2Seq`) has cross-attention to show: False only for an
    RNN built with ``model.attention: none``."""
    return model.attention_shape() is not None  # type: ignore[operator]


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
    "attention_shape_of",
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
    "has_attention",
]
