"""A full-context alignment layer on top of a frozen translation model (Garg et al. 2019,
"Jointly Learning to Align and Translate with Transformer Models", §4.2-4.3).

A translation decoder's cross-attention at target step t has seen only y_<t (causal masking): it
must guess where the word it is about to write comes from. Garg et al. align with the *full*
target visible. Here that is one small layer over the frozen model's representations:

    x_t   = W_in [h^1_t; ..; h^L_t]                      every decoder layer's output at input t
    x     = x + SelfAttn(LN(x)) ;  x = x + FF(LN(x))      no causal mask: each position sees all
    A_t,s = softmax_s( (W_q LN(x_t)) · (W_k e_s) / √d )   e: encoder output, s over source + eos

trained with the guided-alignment loss (Garg et al. eq. 2) against links of an external aligner,
the translation model left untouched (its translations stay exactly the same). The decoder input
is ``bos y1 .. yn``: the row for target piece k is read at input position k + 1, where y_k itself
is in the input (the whole sentence is visible anyway). :meth:`FullContextAligner.rows` lays the
rows out as the decoder's attention is laid out (pieces y1..yn, then one row for end-of-sentence,
here a copy of the bos position's row, which no link uses), so every view, blend and extraction of
:mod:`seqattn.align` reads it as one more layer.

The same layer sits on an RNN (Bahdanau, Luong): h^l_t is then decoder layer l's hidden state
after reading input t (Luong's attentional h~_t for the top layer), and e_s the encoder's
bidirectional annotation, whose width ``enc_dim`` differs from the decoder's.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from seqattn.attention import MultiHeadAttention, masked_softmax


@dataclass(frozen=True)
class AlignerConfig:
    """The aligner's sizes: the frozen model's decoder width ``d_model`` and decoder
    ``layers`` and its encoder width ``enc_dim`` (inputs; ``None``: ``d_model``, as in a
    Transformer; an RNN's bidirectional encoder is twice its decoder), and the aligner's own
    ``heads`` and ``ff_size``. The aligner works at width ``d_model``."""

    d_model: int
    layers: int
    heads: int = 4
    ff_size: int = 512
    dropout: float = 0.1
    enc_dim: int | None = None

    def as_dict(self) -> dict[str, int | float]:
        out: dict[str, int | float] = {"d_model": self.d_model, "layers": self.layers,
                                       "heads": self.heads, "ff_size": self.ff_size,
                                       "dropout": self.dropout}
        if self.enc_dim is not None:
            out["enc_dim"] = self.enc_dim
        return out


class FullContextAligner(nn.Module):
    """See the module docstring. Shapes: dec (B, L, T, D), tgt_pad (B, T), enc (B, S, De),
    src_pad (B, S) -> alignment (B, T, S); De = ``enc_dim`` (default D)."""

    def __init__(self, cfg: AlignerConfig):
        super().__init__()
        D = cfg.d_model
        self.cfg = cfg
        self.w_in = nn.Linear(cfg.layers * D, D)
        self.norm_self = nn.LayerNorm(D)
        self.self_attn = MultiHeadAttention(D, cfg.heads, cfg.dropout)
        self.norm_ff = nn.LayerNorm(D)
        self.ff = nn.Sequential(nn.Linear(D, cfg.ff_size), nn.ReLU(), nn.Dropout(cfg.dropout),
                                nn.Linear(cfg.ff_size, D))
        self.norm_q = nn.LayerNorm(D)
        self.w_q = nn.Linear(D, D)
        self.w_k = nn.Linear(cfg.enc_dim or D, D)
        self.dropout = nn.Dropout(cfg.dropout)

    def forward(self, dec: Tensor, tgt_pad: Tensor, enc: Tensor, src_pad: Tensor) -> Tensor:
        B, L, T, D = dec.shape
        x = self.w_in(dec.permute(0, 2, 1, 3).reshape(B, T, L * D))           # (B, T, D)
        h = self.norm_self(x)
        a, _ = self.self_attn(h, h, h, key_pad=tgt_pad)                        # full context
        x = x + self.dropout(a)
        x = x + self.dropout(self.ff(self.norm_ff(x)))                         # (B, T, D)
        q, k = self.w_q(self.norm_q(x)), self.w_k(enc)                         # (B, T|S, D)
        scores = q @ k.transpose(1, 2) / math.sqrt(D)                          # (B, T, S)
        return masked_softmax(scores, src_pad)                                 # (B, T, S)

    def rows(self, dec: Tensor, tgt_pad: Tensor, enc: Tensor, src_pad: Tensor) -> Tensor:
        """The alignment in the decoder attention's row layout: row k (k < n) is target piece
        k, read at input position k + 1; the last row stands for end-of-sentence.

        Shapes: as :meth:`forward`; returns (B, T, S), T = n + 1 with the input ``bos y1..yn``
        """
        a = self(dec, tgt_pad, enc, src_pad)                                   # (B, T, S)
        return torch.cat([a[:, 1:], a[:, :1]], dim=1)                          # (B, T, S)
