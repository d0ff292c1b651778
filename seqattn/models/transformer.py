"""Transformer encoder-decoder, Vaswani et al. (2017), built on
:class:`seqattn.attention.MultiHeadAttention`.

Pre-norm by default (Xiong et al., 2020: LayerNorm before each sublayer, one final LayerNorm
on each stack), post-norm as in the paper with ``norm: post``. Decoding one token at a time keeps
a key/value cache in :class:`TransformerState`: each step projects and appends one position of
self-attention keys/values; the cross-attention keys/values are projected from the encoder
output once per batch, in ``encode``, and travel in :class:`TransformerMemory` (so reordering
beams at every step does not copy them).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import cast

import torch
from torch import Tensor, nn

from seqattn.attention import MultiHeadAttention, sinusoidal_positions
from seqattn.config import ModelConfig
from seqattn.models.layers import Dropout, relu_dropout


@dataclass(frozen=True)
class TransformerMemory:
    """Encoder output in the form the decoder layers read it.

    Shapes:
        src_pad: (B, S) bool, True = padding
        cross_k, cross_v: one (B, nh, S, hd) tensor per decoder layer
    """

    src_pad: Tensor
    cross_k: tuple[Tensor, ...]
    cross_v: tuple[Tensor, ...]

    def select(self, index: Tensor) -> TransformerMemory:
        """Pick batch rows (beam reordering, expansion to beams)."""
        return TransformerMemory(self.src_pad.index_select(0, index),
                                 tuple(k.index_select(0, index) for k in self.cross_k),
                                 tuple(v.index_select(0, index) for v in self.cross_v))


CACHE_CHUNK = 8  # cache room grows this many positions at a time


@dataclass(frozen=True)
class TransformerState:
    """Self-attention key/value cache: the projected prefix y_0..y_{t-1} of every layer.

    Each layer's keys and values live in a buffer with room for a few more positions, so a step
    writes one position in place instead of concatenating (copying) the whole prefix, and
    ``select`` copies one contiguous block. Positions from ``length`` on are free room. Several
    states can share a buffer (a step returns a state on its input's buffer); ``frontier`` (a
    one-element list shared with them) is how far the buffer has been written, so a step from
    a state that another step already extended copies the buffer first instead of overwriting.

    Shapes:
        self_k, self_v: one (B, nh, C, hd) buffer per decoder layer, C >= length
    """

    self_k: tuple[Tensor, ...]
    self_v: tuple[Tensor, ...]
    length: int = 0              # positions decoded so far (the next position's index)
    frontier: list[int] = field(default_factory=lambda: [0], compare=False)

    def select(self, index: Tensor) -> TransformerState:
        """Pick batch rows (beam reordering, expansion to beams)."""
        return TransformerState(tuple(k.index_select(0, index) for k in self.self_k),
                                tuple(v.index_select(0, index) for v in self.self_v),
                                self.length, [self.length])

    def room_for(self, n: int) -> TransformerState:
        """This state with buffers that ``n`` more positions can be written into."""
        need, size = self.length + n, self.self_k[0].size(2)
        if self.frontier[0] == self.length and need <= size:
            return self
        grow = max(need, size + CACHE_CHUNK) if need > size else size

        def fresh(old: Tensor) -> Tensor:
            buf = old.new_empty(old.size(0), old.size(1), grow, old.size(3))
            buf[:, :, :self.length] = old[:, :, :self.length]
            return buf

        return TransformerState(tuple(fresh(k) for k in self.self_k),
                                tuple(fresh(v) for v in self.self_v), self.length,
                                [self.length])


class Residual(nn.Module):
    """x + Dropout(sublayer(x)) with LayerNorm before the sublayer (pre-norm) or after the sum
    (post-norm, Vaswani et al. 2017, §5.4). Call ``normed`` on the sublayer input, ``add`` after."""

    def __init__(self, d_model: int, pre_norm: bool, dropout: float):
        super().__init__()
        self.pre_norm = pre_norm
        self.norm = nn.LayerNorm(d_model)
        self.dropout = Dropout(dropout)

    def normed(self, x: Tensor) -> Tensor:
        return self.norm(x) if self.pre_norm else x

    def add(self, x: Tensor, sublayer_out: Tensor) -> Tensor:
        x = x + self.dropout(sublayer_out)
        return x if self.pre_norm else self.norm(x)


class FeedForward(nn.Module):
    """Vaswani et al. (2017), §3.3: FFN(x) = max(0, x W_1 + b_1) W_2 + b_2."""

    def __init__(self, d_model: int, ff_size: int, dropout: float):
        super().__init__()
        self.net = nn.Sequential(nn.Linear(d_model, ff_size), nn.ReLU(), nn.Dropout(dropout),
                                 nn.Linear(ff_size, d_model))  # (the stored weights' names)

    def forward(self, x: Tensor) -> Tensor:
        """Shapes: x (B, T, D) -> (B, T, D). ReLU and dropout fused (:mod:`.layers`)."""
        w_1, _, drop, w_2 = self.net
        return w_2(relu_dropout(w_1(x), cast(nn.Dropout, drop).p, self.training))


class EncoderLayer(nn.Module):
    """Vaswani et al. (2017), §3.1: self-attention, then a feed-forward network."""

    def __init__(self, d_model: int, heads: int, ff_size: int, dropout: float, pre_norm: bool):
        super().__init__()
        self.self_attn = MultiHeadAttention(d_model, heads, dropout)
        self.ff = FeedForward(d_model, ff_size, dropout)
        self.res_attn = Residual(d_model, pre_norm, dropout)
        self.res_ff = Residual(d_model, pre_norm, dropout)

    def forward(self, x: Tensor, src_pad: Tensor,
                need_weights: bool = False) -> tuple[Tensor, Tensor | None]:
        """Shapes: x (B, S, D), src_pad (B, S) bool -> (B, S, D), weights (B, nh, S, S) or None."""
        h = self.res_attn.normed(x)
        a, weights = self.self_attn(h, h, h, key_pad=src_pad, need_weights=need_weights)
        x = self.res_attn.add(x, a)
        return self.res_ff.add(x, self.ff(self.res_ff.normed(x))), weights


class DecoderLayer(nn.Module):
    """Vaswani et al. (2017), §3.1: masked self-attention, cross-attention over the encoder
    output, then a feed-forward network. Works on a whole target (teacher forcing, no cache) or
    on new positions appended to a cached prefix."""

    def __init__(self, d_model: int, heads: int, ff_size: int, dropout: float, pre_norm: bool):
        super().__init__()
        self.self_attn = MultiHeadAttention(d_model, heads, dropout)
        self.cross_attn = MultiHeadAttention(d_model, heads, dropout)
        self.ff = FeedForward(d_model, ff_size, dropout)
        self.res_self = Residual(d_model, pre_norm, dropout)
        self.res_cross = Residual(d_model, pre_norm, dropout)
        self.res_ff = Residual(d_model, pre_norm, dropout)

    def forward(self, x: Tensor, cache_k: Tensor | None, cache_v: Tensor | None, past: int,
                cross_k: Tensor, cross_v: Tensor, src_pad: Tensor, need_weights: bool,
                self_weights: list[Tensor] | None = None) -> tuple[Tensor, Tensor | None]:
        """Decode T new positions after ``past`` cached ones (without a cache: x alone).

        The new positions' keys and values are written into the cache buffers in place.

        Shapes:
            x: (B, T, D); cache_k, cache_v: (B, nh, C, hd) buffers, C >= past + T, or None
            cross_k, cross_v: (B, nh, S, hd); src_pad: (B, S) bool, True = padding
            returns: x (B, T, D), cross-attention weights (B, nh, T, S) or None
            self_weights: when a list is given, the self-attention weights (B, nh, T, past + T)
                are appended to it
        """
        T = x.size(1)
        h = self.res_self.normed(x)
        k, v = self.self_attn.project_kv(h, h)                      # (B, nh, T, hd)
        if cache_k is not None and cache_v is not None:
            cache_k[:, :, past:past + T] = k
            cache_v[:, :, past:past + T] = v
            k, v = cache_k[:, :, :past + T], cache_v[:, :, :past + T]  # (B, nh, past+T, hd)
        a, w = self.self_attn.attend_projected(h, k, v, causal=T > 1,  # the last T keys line up
                                               need_weights=self_weights is not None)
        if self_weights is not None and w is not None:
            self_weights.append(w)
        x = self.res_self.add(x, a)
        h = self.res_cross.normed(x)
        a, weights = self.cross_attn.attend_projected(h, cross_k, cross_v, key_pad=src_pad,
                                                      need_weights=need_weights)
        x = self.res_cross.add(x, a)
        x = self.res_ff.add(x, self.ff(self.res_ff.normed(x)))
        return x, weights


class TransformerSeq2Seq(nn.Module):
    """Vaswani et al. (2017) encoder-decoder with the common ``Seq2Seq`` interface (see
    :mod:`seqattn.models`). Embeddings are scaled by sqrt(d) and summed with sinusoidal
    positions (§3.4, §3.5). Attention weights are the cross-attention of every decoder layer and
    head: (B, L, nh, ...).

    Embedding sharing (§3.4) is decided by :func:`build_transformer` and passed in as shared
    modules; this class does not know whether its embeddings are tied.
    """

    positions: Tensor  # (max_positions, D) sinusoids, a non-persistent buffer

    def __init__(self, src_embed: nn.Embedding, tgt_embed: nn.Embedding,
                 encoder: nn.ModuleList, decoder: nn.ModuleList, generator: nn.Linear,
                 pre_norm: bool, dropout: float, max_positions: int):
        super().__init__()
        d_model = tgt_embed.embedding_dim
        self.src_embed, self.tgt_embed = src_embed, tgt_embed
        self.encoder, self.decoder = encoder, decoder
        # typed views of the same layers, made once (the decoder's is walked at every step)
        self._encoder_layers = cast(list[EncoderLayer], list(encoder))
        self._decoder_layers = cast(list[DecoderLayer], list(decoder))
        self.n_heads = self._decoder_layers[0].self_attn.n_heads
        self.generator = generator
        self.enc_norm = nn.LayerNorm(d_model) if pre_norm else nn.Identity()
        self.dec_norm = nn.LayerNorm(d_model) if pre_norm else nn.Identity()
        self.dropout = Dropout(dropout)
        self.scale = math.sqrt(d_model)
        # A constant table, not a cache: excluded from the state dict.
        self.register_buffer("positions", sinusoidal_positions(max_positions, d_model),
                             persistent=False)
        self.max_source_len = max_positions - 1  # the eos takes the last position
        self.max_target_len: int | None = max_positions - 1

    def attention_shape(self, kind: str = "cross") -> tuple[int, int] | None:
        """(layers, heads) of the cross-attention or of the encoder's / decoder's
        self-attention."""
        if kind not in ("cross", "encoder", "decoder"):
            return None
        return len(self.encoder if kind == "encoder" else self.decoder), self.n_heads

    def encoder_layers(self) -> list[EncoderLayer]:
        return self._encoder_layers

    def decoder_layers(self) -> list[DecoderLayer]:
        return self._decoder_layers

    def _embed(self, tokens: Tensor, embed: nn.Embedding, offset: int = 0) -> Tensor:
        """Shapes: tokens (B, T) -> (B, T, D), positions offset .. offset + T - 1."""
        T = tokens.size(1)
        if offset + T > self.positions.size(0):
            raise ValueError(f"sequence of length {offset + T} exceeds model.max_positions "
                             f"({self.positions.size(0)})")
        x = embed(tokens) * self.scale + self.positions[offset:offset + T]
        return self.dropout(x)                                      # (B, T, D)

    def encode(self, src: Tensor, src_pad: Tensor) -> TransformerMemory:
        """Run the encoder and project the cross-attention keys/values of every decoder layer.

        Shapes: src (B, S) long, src_pad (B, S) bool, True = padding -> TransformerMemory
        """
        return self._memory(self._encoder_output(src, src_pad), src_pad)

    def _encoder_output(self, src: Tensor, src_pad: Tensor) -> Tensor:
        """Shapes: src (B, S) long, src_pad (B, S) bool -> (B, S, D)."""
        x = self._embed(src, self.src_embed)                        # (B, S, D)
        for layer in self.encoder_layers():
            x, _ = layer(x, src_pad)
        return self.enc_norm(x)                                     # (B, S, D)

    def _memory(self, x: Tensor, src_pad: Tensor) -> TransformerMemory:
        kv = [layer.cross_attn.project_kv(x, x) for layer in self.decoder_layers()]
        return TransformerMemory(src_pad, tuple(k for k, _ in kv), tuple(v for _, v in kv))

    def init_state(self, memory: TransformerMemory) -> TransformerState:
        """An empty cache: (B, nh, 0, hd) per layer; steps give it room as they go."""
        empty = tuple(k[:, :, :0] for k in memory.cross_k)
        return TransformerState(empty, empty)

    def _decode(self, x: Tensor, state: TransformerState | None, memory: TransformerMemory,
                need_weights: bool, project: bool = True
                ) -> tuple[Tensor, TransformerState | None, Tensor | None]:
        """All decoder layers on embedded new positions (appended to ``state``'s cache).

        Shapes: x (B, T, D) -> logits (B, T, V) (features (B, T, D) unless ``project``),
        extended cache, weights (B, L, nh, T, S) or None
        """
        T = x.size(1)
        if state is not None:
            state = state.room_for(T)
        past = 0 if state is None else state.length
        weights = []
        for i, layer in enumerate(self.decoder_layers()):
            x, w = layer(x, None if state is None else state.self_k[i],
                         None if state is None else state.self_v[i], past,
                         memory.cross_k[i], memory.cross_v[i], memory.src_pad, need_weights)
            weights.append(w)
        x = self.dec_norm(x)                                        # (B, T, D)
        logits = self.generator(x) if project else x               # (B, T, V)
        stacked = torch.stack(weights, dim=1) if need_weights else None  # (B, L, nh, T, S)
        if state is None:
            return logits, None, stacked
        state.frontier[0] = past + T
        return logits, TransformerState(state.self_k, state.self_v, past + T,
                                        state.frontier), stacked

    def step(self, prev_tokens: Tensor, state: TransformerState, memory: TransformerMemory,
             project: bool = True) -> tuple[Tensor, TransformerState, Tensor]:
        """One decoding step: one new position, attending to the cached prefix. The cache is
        written in place, so it is for decoding without gradients (not for backpropagating
        through several steps).

        Shapes:
            prev_tokens: (B,) long
            returns: logits (B, V) (features (B, D) unless ``project``), state with one more
            position, weights (B, L, nh, S)
        """
        x = self._embed(prev_tokens.unsqueeze(1), self.tgt_embed, offset=state.length)
        logits, new, weights = self._decode(x, state, memory, need_weights=True, project=project)
        assert new is not None and weights is not None
        state = new
        return logits.squeeze(1), state, weights.squeeze(3)        # (B, V), _, (B, L, nh, S)

    def forward(self, src: Tensor, src_pad: Tensor, tgt_in: Tensor,
                need_weights: bool = False, project: bool = True) -> tuple[Tensor, Tensor | None]:
        """Teacher-forced decoding (causal self-attention, no cache). With ``need_weights=False``
        every attention uses torch's fused kernel. ``project=False`` returns what the output
        layer reads instead of logits (the training loss projects it a slice at a time).

        Shapes:
            src: (B, S) long; src_pad: (B, S) bool, True = padding; tgt_in: (B, T) long
            returns: logits (B, T, V) or features (B, T, D), weights (B, L, nh, T, S) or None
        """
        memory = self.encode(src, src_pad)
        logits, _, weights = self._decode(self._embed(tgt_in, self.tgt_embed), None, memory,
                                          need_weights, project)
        return logits, weights

    def output_layer(self) -> nn.Linear:
        """The layer that turns features into logits (its weight tied to the target embedding
        when the model ties them)."""
        return self.generator


    def hidden_states(self, src: Tensor, src_pad: Tensor, tgt_in: Tensor,
                      weights: list[Tensor] | None = None) -> tuple[Tensor, Tensor]:
        """Teacher-forced representations: the encoder output and every decoder layer's output
        (causal, as in translation), for a model built on top of this one. With a ``weights``
        list, each layer's cross-attention (B, nh, T, S) is appended to it on the way.

        Shapes:
            src: (B, S) long; src_pad: (B, S) bool; tgt_in: (B, T) long (bos y1 .. yn)
            returns: encoder (B, S, D), decoder (B, L, T, D)
        """
        x = self._encoder_output(src, src_pad)                      # (B, S, D)
        memory = self._memory(x, src_pad)
        y = self._embed(tgt_in, self.tgt_embed)                     # (B, T, D)
        states = []
        for i, layer in enumerate(self.decoder_layers()):
            y, w = layer(y, None, None, 0, memory.cross_k[i], memory.cross_v[i], src_pad,
                         weights is not None)
            states.append(y)
            if weights is not None and w is not None:
                weights.append(w)
        return x, torch.stack(states, dim=1)                        # (B, S, D), (B, L, T, D)

    @torch.no_grad()
    def self_attention(self, src: Tensor, src_pad: Tensor,
                       tgt_in: Tensor) -> tuple[Tensor, Tensor]:
        """The encoder's and the (teacher-forced, causal) decoder's self-attention weights.

        Shapes:
            src: (B, S) long; src_pad: (B, S) bool; tgt_in: (B, T) long (bos y1 .. yn)
            returns: encoder (B, Le, nh, S, S), decoder (B, Ld, nh, T, T); row = query
        """
        x = self._embed(src, self.src_embed)                        # (B, S, D)
        encoder = []
        for layer in self.encoder_layers():
            x, w = layer(x, src_pad, need_weights=True)
            encoder.append(w)
        x = self.enc_norm(x)
        y = self._embed(tgt_in, self.tgt_embed)                     # (B, T, D)
        decoder: list[Tensor] = []
        for dec_layer in self.decoder_layers():
            k, v = dec_layer.cross_attn.project_kv(x, x)
            y, _ = dec_layer(y, None, None, 0, k, v, src_pad, False, self_weights=decoder)
        return torch.stack(encoder, dim=1), torch.stack(decoder, dim=1)


def _init_weights(module: nn.Module, d_model: int, pad_id: int) -> None:
    """Xavier-uniform linear weights and zero biases (as the reference tensor2tensor code);
    embeddings ~ N(0, d^-1/2), so that after the sqrt(d) scale they have unit variance and a
    tied output layer starts with logits of unit scale. The padding row stays zero."""
    for m in module.modules():
        if isinstance(m, nn.Linear):
            nn.init.xavier_uniform_(m.weight)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.Embedding):
            nn.init.normal_(m.weight, mean=0.0, std=d_model ** -0.5)
            with torch.no_grad():
                m.weight[pad_id].zero_()


def build_transformer(cfg: ModelConfig, src_vocab: int, tgt_vocab: int,
                      pad_id: int = 0) -> TransformerSeq2Seq:
    """Build the Transformer from ``cfg``. With ``cfg.tie_embeddings`` the target embedding and
    the output layer share one matrix (Press & Wolf, 2017), and so does the source embedding
    when ``src_vocab == tgt_vocab`` (a joint vocabulary)."""
    D, pre = cfg.hidden_size, cfg.norm == "pre"
    tgt_embed = nn.Embedding(tgt_vocab, D, padding_idx=pad_id)
    joint = cfg.tie_embeddings and src_vocab == tgt_vocab
    src_embed = tgt_embed if joint else nn.Embedding(src_vocab, D, padding_idx=pad_id)
    encoder = nn.ModuleList(EncoderLayer(D, cfg.heads, cfg.ff_size, cfg.dropout, pre)
                            for _ in range(cfg.enc_layers))
    decoder = nn.ModuleList(DecoderLayer(D, cfg.heads, cfg.ff_size, cfg.dropout, pre)
                            for _ in range(cfg.dec_layers))
    generator = nn.Linear(D, tgt_vocab, bias=False)
    model = TransformerSeq2Seq(src_embed, tgt_embed, encoder, decoder, generator, pre,
                               cfg.dropout, cfg.max_positions)
    _init_weights(model, D, pad_id)
    if cfg.tie_embeddings:
        generator.weight = tgt_embed.weight
    return model
