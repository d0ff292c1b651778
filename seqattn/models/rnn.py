"""Recurrent encoder-decoders with attention: Bahdanau et al. (2015) and Luong et al. (2015).

Both share the bidirectional :class:`Encoder` and differ in the decoder *flow*:

- :class:`BahdanauDecoder`: attend with the previous state s_{t-1}, feed the context c_t *into*
  the RNN together with the previous target embedding, predict from s_t, c_t and y_{t-1}.
- :class:`LuongDecoder`: step the RNN first, attend with the new state h_t, then predict from
  h~_t = tanh(W_c [c_t; h_t]); with input feeding h~_{t-1} is part of the next RNN input.
- :class:`FixedContextDecoder`: the baseline attention was invented to beat (Cho et al. 2014,
  Sutskever et al. 2014): Bahdanau's decoder with one context for every step, the encoder's
  final state; it shows no attention (weights with zero layers).

The scores come from :mod:`seqattn.attention`; their ``prepare`` runs once per batch in
``encode`` and the result travels in :class:`RNNMemory`, never on a module.
Sources must be right-padded (``src_pad`` True only after the last real token).
"""

from __future__ import annotations

from contextlib import nullcontext
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor, nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

from seqattn.attention import AdditiveScore, Score, attend, build_score
from seqattn.config import ModelConfig
from seqattn.models.layers import Dropout


@dataclass(frozen=True)
class RNNMemory:
    """What the decoder needs from the encoder, computed once per batch.

    Shapes:
        values: (B, S, Dv) vectors the context averages (Bahdanau: 2H encoder states,
            Luong: the states bridged to H)
        keys: (B, S, A) ``score.prepare(...)`` of the keys, reused at every step
        src_pad: (B, S) bool, True = padding
        final: (B, 2H) top encoder layer: [last forward state; first backward state]
    """

    values: Tensor
    keys: Tensor
    src_pad: Tensor
    final: Tensor

    def select(self, index: Tensor) -> RNNMemory:
        """Pick batch rows (beam reordering, expansion to beams)."""
        return RNNMemory(self.values.index_select(0, index), self.keys.index_select(0, index),
                         self.src_pad.index_select(0, index), self.final.index_select(0, index))


@dataclass(frozen=True)
class RNNState:
    """Decoder state between steps.

    Shapes:
        hidden: (B, L, H) hidden state of each decoder layer (s_{t-1} / h_{t-1})
        cell: (B, L, H) LSTM cell state, None for GRU
        feed: (B, H) Luong's attentional vector h~_{t-1} when input feeding, else None
    """

    hidden: Tensor
    cell: Tensor | None
    feed: Tensor | None

    def select(self, index: Tensor) -> RNNState:
        """Pick batch rows (beam reordering, expansion to beams)."""
        return RNNState(self.hidden.index_select(0, index),
                        None if self.cell is None else self.cell.index_select(0, index),
                        None if self.feed is None else self.feed.index_select(0, index))


class Encoder(nn.Module):
    """Bidirectional RNN encoder, Bahdanau et al. (2015), §3.2: each annotation
    h_j = [h->_j; h<-_j] summarises the whole sentence with a focus on word j.

    Runs on packed sequences, so a sentence gets the same states alone as in a padded batch;
    padded positions of the output are zero.
    """

    def __init__(self, vocab: int, embed_size: int, hidden_size: int, layers: int,
                 cell: str, dropout: float, pad_id: int):
        super().__init__()
        rnn_class = {"gru": nn.GRU, "lstm": nn.LSTM}[cell]
        self.embed = nn.Embedding(vocab, embed_size, padding_idx=pad_id)
        self.rnn = rnn_class(embed_size, hidden_size, num_layers=layers, batch_first=True,
                             bidirectional=True, dropout=dropout if layers > 1 else 0.0)
        self.dropout = Dropout(dropout)

    def forward(self, src: Tensor, src_pad: Tensor) -> tuple[Tensor, Tensor]:
        """Encode a right-padded batch.

        Shapes:
            src: (B, S) long; src_pad: (B, S) bool, True = padding
            returns: outputs (B, S, 2H), final (B, 2H)
        """
        B, S = src.shape
        lengths = (~src_pad).sum(dim=1).cpu()                       # (B,) on CPU for packing
        emb = self.dropout(self.embed(src))                         # (B, S, E)
        packed = pack_padded_sequence(emb, lengths, batch_first=True, enforce_sorted=False)
        with _whole_rnn_precision(src.device):
            out, h_n = self.rnn(packed)
        if isinstance(h_n, tuple):                                  # LSTM: (h_n, c_n)
            h_n = h_n[0]
        out, _ = pad_packed_sequence(out, batch_first=True, total_length=S)  # (B, S, 2H)
        final = torch.cat([h_n[-2], h_n[-1]], dim=-1)               # (B, 2H) top fwd; top bwd
        return self.dropout(out), final


def _whole_rnn_precision(device: torch.device) -> Any:
    """The context a whole-sequence GRU/LSTM runs in. Under CPU bf16 autocast torch hands the
    LSTM to oneDNN's bfloat16 RNN primitive, which x86 CPUs without AVX-512 do not have ("could
    not create a primitive descriptor"): there it runs in float32 (the matrix products around
    it stay bfloat16)."""
    if device.type == "cpu" and torch.is_autocast_enabled("cpu") and \
            not torch.backends.cpu.get_cpu_capability().startswith("AVX512"):
        return torch.autocast("cpu", enabled=False)
    return nullcontext()


class StackedCell(nn.Module):
    """``layers`` GRU or LSTM cells on top of each other for one time step, with dropout
    between layers (Zaremba et al., 2014)."""

    def __init__(self, cell: str, input_size: int, hidden_size: int, layers: int,
                 dropout: float):
        super().__init__()
        cell_class = {"gru": nn.GRUCell, "lstm": nn.LSTMCell}[cell]
        self.is_lstm = cell == "lstm"
        self.cells = nn.ModuleList(
            cell_class(input_size if i == 0 else hidden_size, hidden_size) for i in range(layers))
        self.dropout = Dropout(dropout)

    def forward(self, x: Tensor, hidden: list[Tensor],
                cell: list[Tensor] | None) -> tuple[list[Tensor], list[Tensor] | None]:
        """One step; ``hidden`` and ``cell`` hold one (B, H) tensor per layer.

        Shapes:
            x: (B, I); returns: new hidden and cell lists of (B, H)
        """
        new_hidden, new_cell = [], []
        for i, layer in enumerate(self.cells):
            if i > 0:
                x = self.dropout(x)
            if self.is_lstm:
                assert cell is not None
                h, c = layer(x, (hidden[i], cell[i]))
                new_cell.append(c)
            else:
                h = layer(x, hidden[i])
            new_hidden.append(h)
            x = h
        return new_hidden, new_cell if self.is_lstm else None


class InitBridge(nn.Module):
    """Initial decoder state s_0 = tanh(W_s [h->_S; h<-_1]) for every decoder layer, as
    Bahdanau et al. (2015), App. A.2.2 (which uses h<-_1 only). LSTM cell states start at zero."""

    def __init__(self, enc_size: int, hidden_size: int, layers: int, cell: str):
        super().__init__()
        self.layers, self.hidden_size, self.is_lstm = layers, hidden_size, cell == "lstm"
        self.proj = nn.Linear(enc_size, layers * hidden_size)

    def forward(self, final: Tensor, feed_size: int | None) -> RNNState:
        """Shapes: final (B, 2H) -> RNNState with hidden (B, L, H)."""
        B = final.size(0)
        hidden = torch.tanh(self.proj(final)).view(B, self.layers, self.hidden_size)
        cell = torch.zeros_like(hidden) if self.is_lstm else None
        feed = None if feed_size is None else final.new_zeros(B, feed_size)
        return RNNState(hidden, cell, feed)


def _unstack(state: RNNState) -> tuple[list[Tensor], list[Tensor] | None]:
    """(B, L, H) state tensors -> per-layer lists of (B, H), as :class:`StackedCell` wants."""
    cell = None if state.cell is None else list(state.cell.unbind(1))
    return list(state.hidden.unbind(1)), cell


def _stack(hidden: list[Tensor], cell: list[Tensor] | None, feed: Tensor | None) -> RNNState:
    return RNNState(torch.stack(hidden, dim=1),
                    None if cell is None else torch.stack(cell, dim=1), feed)


class BahdanauDecoder(nn.Module):
    """Bahdanau et al. (2015), §3.1 and App. A.2.2: e_tj = a(s_{t-1}, h_j) (additive score),
    c_t = sum_j alpha_tj h_j, s_t = RNN([E y_{t-1}; c_t], s_{t-1}).

    Output: the paper's deep output with maxout (App. A.2.2), t~ = U_o s_t + V_o E y_{t-1} +
    C_o c_t (size 2H), t = max over pairs of t~ (size H), logits = W_o t. The appendix writes
    s_{t-1} in t~; we use s_t as in the paper's eq. 4, p(y_t | ...) = g(y_{t-1}, s_t, c_t).
    With several decoder layers the context enters the first layer and s_t is the top layer.
    """

    def __init__(self, vocab: int, embed_size: int, hidden_size: int, enc_size: int,
                 layers: int, cell: str, dropout: float, pad_id: int):
        super().__init__()
        self.embed = nn.Embedding(vocab, embed_size, padding_idx=pad_id)
        self.score = AdditiveScore(hidden_size, enc_size, hidden_size)
        self.rnn = StackedCell(cell, embed_size + enc_size, hidden_size, layers, dropout)
        self.bridge = InitBridge(enc_size, hidden_size, layers, cell)
        self.deep_out = nn.Linear(hidden_size + embed_size + enc_size, 2 * hidden_size)
        self.out = nn.Linear(hidden_size, vocab)                    # W_o
        self.dropout = Dropout(dropout)

    def make_memory(self, outputs: Tensor, final: Tensor, src_pad: Tensor) -> RNNMemory:
        """Annotations are keys and values; U h_j is prepared once per batch."""
        return RNNMemory(outputs, self.score.prepare(outputs), src_pad, final)

    def init_state(self, memory: RNNMemory) -> RNNState:
        return self.bridge(memory.final, None)

    def _advance(self, emb: Tensor, hidden: list[Tensor], cell: list[Tensor] | None,
                 memory: RNNMemory) -> tuple[Tensor, Tensor, list[Tensor], list[Tensor] | None]:
        """Attend with s_{t-1}, then step the RNN on [E y_{t-1}; c_t].

        Shapes: emb (B, E) -> context (B, 2H), weights (B, S), new hidden/cell lists
        """
        query = hidden[-1].unsqueeze(1)                             # s_{t-1}: (B, 1, H)
        context, weights = attend(self.score(query, memory.keys), memory.values, memory.src_pad)
        context = context.squeeze(1)                                # (B, 2H)
        hidden, cell = self.rnn(torch.cat([emb, context], dim=-1), hidden, cell)
        return context, weights.squeeze(1), hidden, cell

    def _readout(self, s: Tensor, emb: Tensor, context: Tensor, project: bool = True) -> Tensor:
        """Deep output with maxout. Shapes: (B, T, H), (B, T, E), (B, T, 2H) -> (B, T, V)
        (the features W_o reads, (B, T, H), unless ``project``)."""
        t = self.deep_out(torch.cat([s, emb, context], dim=-1))    # (B, T, 2H)
        t = t.unflatten(-1, (-1, 2)).amax(dim=-1)                   # (B, T, H) maxout, pool 2
        t = self.dropout(t)
        return self.out(t) if project else t                        # (B, T, V)

    def forward(self, tgt_in: Tensor, memory: RNNMemory,
                project: bool = True) -> tuple[Tensor, Tensor]:
        """Teacher forcing: embeddings for all steps first, the readout once after the loop.

        Shapes:
            tgt_in: (B, T) long
            returns: logits (B, T, V) (features (B, T, H) unless ``project``), weights (B, T, S)
        """
        emb = self.dropout(self.embed(tgt_in))                      # (B, T, E)
        states, c, weights = self._teacher(emb, memory)
        return self._readout(states[:, -1], emb, c, project), weights

    def _teacher(self, emb: Tensor, memory: RNNMemory) -> tuple[Tensor, Tensor, Tensor]:
        """The recurrent loop under teacher forcing.

        Shapes: emb (B, T, E) -> every layer's s_t (B, L, T, H), c_t (B, T, 2H), weights (B, T, S)
        """
        hidden, cell = _unstack(self.init_state(memory))
        states, contexts, weights = [], [], []
        for emb_t in emb.unbind(1):                                 # (B, E) per step
            context, w, hidden, cell = self._advance(emb_t, hidden, cell, memory)
            states.append(torch.stack(hidden, dim=1))               # (B, L, H)
            contexts.append(context)
            weights.append(w)
        return (torch.stack(states, dim=2), torch.stack(contexts, dim=1),
                torch.stack(weights, dim=1))

    def hidden_states(self, tgt_in: Tensor, memory: RNNMemory) -> tuple[Tensor, Tensor]:
        """Shapes: tgt_in (B, T) -> every layer's s_t (B, L, T, H), weights (B, T, S)."""
        states, _, weights = self._teacher(self.dropout(self.embed(tgt_in)), memory)
        return states, weights

    def step(self, prev_tokens: Tensor, state: RNNState, memory: RNNMemory,
             project: bool = True) -> tuple[Tensor, RNNState, Tensor]:
        """Shapes: prev_tokens (B,) -> logits (B, V) (the maxout features (B, H) unless
        ``project``), state, weights (B, S)."""
        emb = self.dropout(self.embed(prev_tokens))                 # (B, E)
        hidden, cell = _unstack(state)
        context, weights, hidden, cell = self._advance(emb, hidden, cell, memory)
        logits = self._readout(hidden[-1].unsqueeze(1), emb.unsqueeze(1), context.unsqueeze(1),
                               project)
        return logits.squeeze(1), _stack(hidden, cell, None), weights


class FixedContextDecoder(BahdanauDecoder):
    """The RNN encoder-decoder without attention (Cho et al. 2014, "Learning Phrase
    Representations using RNN Encoder-Decoder", §2.2; Bahdanau et al. 2015 call it RNNencdec):
    the source is squeezed into one vector c, the encoder's final state [h->_S; h<-_1], and
    every step reads that same c: s_t = RNN([E y_{t-1}; c], s_{t-1}), t~ = U_o s_t +
    V_o E y_{t-1} + C_o c. Everything else (encoder, bridge, deep output with maxout) is
    :class:`BahdanauDecoder`'s, so the two differ only in c_t = c.

    Its weights have zero layers: (B, 0, S) per step, so decoding code needs no special case
    and alignment code sees a model with no attention to read.
    """

    def __init__(self, vocab: int, embed_size: int, hidden_size: int, enc_size: int,
                 layers: int, cell: str, dropout: float, pad_id: int):
        super().__init__(vocab, embed_size, hidden_size, enc_size, layers, cell, dropout,
                         pad_id)
        del self.score                                              # nothing to score

    def make_memory(self, outputs: Tensor, final: Tensor, src_pad: Tensor) -> RNNMemory:
        """Only ``final`` is read; the annotations are dropped (keys and values of width 0)."""
        empty = outputs[:, :, :0]                                   # (B, S, 0)
        return RNNMemory(empty, empty, src_pad, final)

    def _advance(self, emb: Tensor, hidden: list[Tensor], cell: list[Tensor] | None,
                 memory: RNNMemory) -> tuple[Tensor, Tensor, list[Tensor], list[Tensor] | None]:
        """Step the RNN on [E y_{t-1}; c] with the fixed c.

        Shapes: emb (B, E) -> context (B, 2H), weights (B, 0, S), new hidden/cell lists
        """
        context = memory.final                                      # (B, 2H), every step
        hidden, cell = self.rnn(torch.cat([emb, context], dim=-1), hidden, cell)
        B, S = memory.src_pad.shape
        return context, emb.new_zeros(B, 0, S), hidden, cell


class LuongDecoder(nn.Module):
    """Luong et al. (2015), §3: h_t = RNN(x_t, h_{t-1}), a_t = align(h_t, h̄_s) with the dot,
    general or concat score (eq. 8), c_t = sum_s a_ts h̄_s, h~_t = tanh(W_c [c_t; h_t]) (eq. 5),
    logits = W_s h~_t (eq. 6). Input feeding (§3.3): x_t = [E y_{t-1}; h~_{t-1}].

    Deviation: the paper's encoder is unidirectional with states of size H. Ours is
    bidirectional (2H), so a "key/value bridge" h̄_s = W_b [h->_s; h<-_s] (no bias) maps it to H
    once per batch; after it the three scores are exactly eq. 8 (dot needs equal sizes).
    Dropout is applied to h~_t before W_s, not to the fed-back h~_t.
    """

    def __init__(self, vocab: int, embed_size: int, hidden_size: int, enc_size: int,
                 layers: int, cell: str, score: str, input_feeding: bool, dropout: float,
                 pad_id: int):
        super().__init__()
        self.hidden_size, self.input_feeding = hidden_size, input_feeding
        self.embed = nn.Embedding(vocab, embed_size, padding_idx=pad_id)
        self.kv_bridge = nn.Linear(enc_size, hidden_size, bias=False)   # W_b
        self.score: Score = build_score(score, hidden_size, hidden_size)
        rnn_input = embed_size + (hidden_size if input_feeding else 0)
        self.rnn = StackedCell(cell, rnn_input, hidden_size, layers, dropout)
        self.bridge = InitBridge(enc_size, hidden_size, layers, cell)
        self.w_c = nn.Linear(2 * hidden_size, hidden_size, bias=False)
        self.out = nn.Linear(hidden_size, vocab)                    # W_s
        self.dropout = Dropout(dropout)

    def make_memory(self, outputs: Tensor, final: Tensor, src_pad: Tensor) -> RNNMemory:
        """Bridge the annotations to H (keys and values) and prepare the score once."""
        values = self.kv_bridge(outputs)                            # (B, S, H)
        return RNNMemory(values, self.score.prepare(values), src_pad, final)

    def init_state(self, memory: RNNMemory) -> RNNState:
        return self.bridge(memory.final, self.hidden_size if self.input_feeding else None)

    def _attend(self, h: Tensor, memory: RNNMemory) -> tuple[Tensor, Tensor]:
        """Global attention for any number of queries.

        Shapes: h (B, T, H) -> h~ (B, T, H), weights (B, T, S)
        """
        context, weights = attend(self.score(h, memory.keys), memory.values, memory.src_pad)
        return torch.tanh(self.w_c(torch.cat([context, h], dim=-1))), weights

    def _advance(self, emb: Tensor, hidden: list[Tensor], cell: list[Tensor] | None,
                 feed: Tensor | None,
                 memory: RNNMemory) -> tuple[Tensor, Tensor, list[Tensor], list[Tensor] | None]:
        """RNN first, then attention with h_t. Shapes: emb (B, E) -> h~ (B, H), weights (B, S)."""
        x = emb if feed is None else torch.cat([emb, feed], dim=-1)  # (B, E [+ H])
        hidden, cell = self.rnn(x, hidden, cell)
        attn_h, weights = self._attend(hidden[-1].unsqueeze(1), memory)
        return attn_h.squeeze(1), weights.squeeze(1), hidden, cell

    def forward(self, tgt_in: Tensor, memory: RNNMemory,
                project: bool = True) -> tuple[Tensor, Tensor]:
        """Teacher forcing. Without input feeding attention does not feed back into the RNN, so
        it runs once for all steps after the recurrent loop.

        Shapes:
            tgt_in: (B, T) long
            returns: logits (B, T, V) (features (B, T, H) unless ``project``), weights (B, T, S)
        """
        states, w_all = self.hidden_states(tgt_in, memory)          # (B, L, T, H), (B, T, S)
        features = self.dropout(states[:, -1])                      # (B, T, H)
        return (self.out(features) if project else features), w_all

    def hidden_states(self, tgt_in: Tensor, memory: RNNMemory) -> tuple[Tensor, Tensor]:
        """Teacher forcing: the lower layers' h_t and the top layer's attentional h~_t.

        Shapes: tgt_in (B, T) -> (B, L, T, H), weights (B, T, S)
        """
        emb = self.dropout(self.embed(tgt_in))                      # (B, T, E)
        state = self.init_state(memory)
        hidden, cell = _unstack(state)
        feed, outputs, lower, weights = state.feed, [], [], []
        for emb_t in emb.unbind(1):                                 # (B, E) per step
            if feed is None:
                hidden, cell = self.rnn(emb_t, hidden, cell)
                outputs.append(hidden[-1])                          # h_t, attention comes later
            else:
                feed, w, hidden, cell = self._advance(emb_t, hidden, cell, feed, memory)
                outputs.append(feed)                                # h~_t
                weights.append(w)
            lower.append(hidden[:-1])                               # L - 1 of (B, H)
        out = torch.stack(outputs, dim=1)                           # (B, T, H)
        if self.input_feeding:
            w_all = torch.stack(weights, dim=1)                     # (B, T, S)
        else:
            out, w_all = self._attend(out, memory)                  # (B, T, H), (B, T, S)
        below = [torch.stack(layer, dim=1) for layer in zip(*lower)]  # L - 1 of (B, T, H)
        return torch.stack([*below, out], dim=1), w_all             # (B, L, T, H), (B, T, S)

    def step(self, prev_tokens: Tensor, state: RNNState, memory: RNNMemory,
             project: bool = True) -> tuple[Tensor, RNNState, Tensor]:
        """Shapes: prev_tokens (B,) -> logits (B, V) (the attentional state (B, H) unless
        ``project``), state, weights (B, S)."""
        emb = self.dropout(self.embed(prev_tokens))                 # (B, E)
        hidden, cell = _unstack(state)
        attn_h, weights, hidden, cell = self._advance(emb, hidden, cell, state.feed, memory)
        feed = attn_h if self.input_feeding else None
        features = self.dropout(attn_h)
        return (self.out(features) if project else features), _stack(hidden, cell, feed), weights


class RNNSeq2Seq(nn.Module):
    """Encoder-decoder wrapper that gives the RNN models the common ``Seq2Seq`` interface
    (see :mod:`seqattn.models`). Attention weights have L = 1 layer and H = 1 head."""

    #: an RNN has no hard source limit; this bounds time and memory
    max_source_len = 1024
    max_target_len = None

    def __init__(self, encoder: Encoder, decoder: BahdanauDecoder | LuongDecoder):
        super().__init__()
        self.encoder = encoder
        self.decoder = decoder
        self.attends = not isinstance(decoder, FixedContextDecoder)

    def attention_shape(self, kind: str = "cross") -> tuple[int, int] | None:
        """One layer, one head of cross-attention (none without attention); no self-attention."""
        return (1, 1) if kind == "cross" and self.attends else None

    def encode(self, src: Tensor, src_pad: Tensor) -> RNNMemory:
        """Shapes: src (B, S) long, src_pad (B, S) bool -> RNNMemory."""
        outputs, final = self.encoder(src, src_pad)                 # (B, S, 2H), (B, 2H)
        return self.decoder.make_memory(outputs, final, src_pad)

    def init_state(self, memory: RNNMemory) -> RNNState:
        return self.decoder.init_state(memory)

    def step(self, prev_tokens: Tensor, state: RNNState, memory: RNNMemory,
             project: bool = True) -> tuple[Tensor, RNNState, Tensor]:
        """One decoding step.

        Shapes:
            prev_tokens: (B,) long
            returns: logits (B, V) (the features ``output_layer()`` reads unless ``project``),
            new state, weights (B, 1, 1, S) ((B, 0, 1, S) without attention: zero layers)
        """
        logits, state, weights = self.decoder.step(prev_tokens, state, memory, project)
        if not self.attends:                                        # (B, 0, S)
            return logits, state, weights[:, :, None]               # (B, V), _, (B, 0, 1, S)
        return logits, state, weights[:, None, None]                # (B, V), _, (B, 1, 1, S)

    def hidden_states(self, src: Tensor, src_pad: Tensor, tgt_in: Tensor,
                      weights: list[Tensor] | None = None) -> tuple[Tensor, Tensor]:
        """Teacher-forced representations, as :meth:`Transformer.hidden_states` gives them: the
        encoder's annotations and every decoder layer's state at each input step (for a model
        built on top of this one). With a ``weights`` list the cross-attention (B, 1, T, S) is
        appended to it.

        Shapes:
            src: (B, S) long; src_pad: (B, S) bool; tgt_in: (B, T) long (bos y1 .. yn)
            returns: encoder (B, S, 2H), decoder (B, L, T, H)
        """
        outputs, final = self.encoder(src, src_pad)                 # (B, S, 2H), (B, 2H)
        states, w = self.decoder.hidden_states(tgt_in,
                                               self.decoder.make_memory(outputs, final, src_pad))
        if weights is not None and self.attends:                    # no layers: nothing
            weights.append(w[:, None])                              # (B, 1, T, S)
        return outputs, states                                      # (B, S, 2H), (B, L, T, H)

    def forward(self, src: Tensor, src_pad: Tensor, tgt_in: Tensor,
                need_weights: bool = False, project: bool = True) -> tuple[Tensor, Tensor | None]:
        """Teacher-forced decoding; ``project=False`` returns the features the output layer
        reads instead of logits.

        Shapes:
            src: (B, S) long; src_pad: (B, S) bool, True = padding; tgt_in: (B, T) long
            returns: logits (B, T, V) or features (B, T, H), weights (B, 1, 1, T, S) or None
        """
        logits, weights = self.decoder(tgt_in, self.encode(src, src_pad), project)
        if not need_weights:
            return logits, None
        if not self.attends:                                        # (B, T, 0, S): no layers
            return logits, weights.permute(0, 2, 1, 3)[:, :, None]  # (B, 0, 1, T, S)
        return logits, weights[:, None, None]                       # (B, 1, 1, T, S)

    def output_layer(self) -> nn.Linear:
        """The layer that turns the decoder's features into logits."""
        return self.decoder.out


def build_rnn(cfg: ModelConfig, src_vocab: int, tgt_vocab: int, pad_id: int = 0) -> RNNSeq2Seq:
    """Build an RNN encoder-decoder from ``cfg`` (``cfg.attention`` picks the decoder flow)."""
    H, E = cfg.hidden_size, cfg.embed_size
    encoder = Encoder(src_vocab, E, H, cfg.enc_layers, cfg.cell, cfg.dropout, pad_id)
    decoder: BahdanauDecoder | LuongDecoder
    if cfg.attention == "bahdanau":
        decoder = BahdanauDecoder(tgt_vocab, E, H, 2 * H, cfg.dec_layers, cfg.cell,
                                  cfg.dropout, pad_id)
    elif cfg.attention == "none":
        decoder = FixedContextDecoder(tgt_vocab, E, H, 2 * H, cfg.dec_layers, cfg.cell,
                                      cfg.dropout, pad_id)
    else:
        assert cfg.score is not None                               # resolved by ModelConfig
        decoder = LuongDecoder(tgt_vocab, E, H, 2 * H, cfg.dec_layers, cfg.cell, cfg.score,
                               cfg.input_feeding, cfg.dropout, pad_id)
    return RNNSeq2Seq(encoder, decoder)
