"""Attention: score functions, masked softmax, multi-head attention, sinusoidal positions.

Attention turns a query into a weighted average of values. It happens in three steps:

1. **Score** every key against the query: ``scores[b, t, s] = score(query[b, t], key[b, s])``.
   Each score class below is one formula from one paper (dot, scaled dot, general, concat,
   additive, Gaussian). Keys are the same at every decoder step, so each class splits its work
   into ``prepare(keys)`` (run once per batch) and ``forward(query, prepared)`` (run every step).
   The prepared keys are passed around as a value; nothing is cached on the module.
2. **Normalise** the scores over the source axis with :func:`masked_softmax`. Padding positions
   get exactly zero weight, so a sentence gets the same result alone as in a padded batch.
3. **Average** the values with those weights (:func:`attend`), giving one context vector per query.

:class:`MultiHeadAttention` runs scaled dot-product attention several times in parallel on learned
projections (the Transformer), and :func:`sinusoidal_positions` gives the Transformer its fixed
position encodings.

Masks follow one convention: ``key_pad`` is a ``(B, S)`` bool tensor where True marks padding.
Every row must keep at least one real position, otherwise its softmax would be 0/0 = NaN.
"""

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn


def _check_key_pad(key_pad: Tensor) -> None:
    # One reduction and one host sync: cheap next to the attention itself.
    if bool(key_pad.all(dim=-1).any()):
        raise ValueError("key_pad has a row where every position is padding; "
                         "each row must keep at least one real (False) position")


def masked_softmax(scores: Tensor, key_pad: Tensor | None) -> Tensor:
    """Softmax over the last axis that gives padded positions exactly zero weight.

    Raises ``ValueError`` if a row of ``key_pad`` is all padding (its softmax would be NaN).

    Shapes:
        scores: (B, ..., T, S), e.g. (B, T, S) or (B, nh, T, S)
        key_pad: (B, S) bool, True = padding; broadcast over the middle axes. None = no padding.
        returns: same shape as ``scores`` (float32 for half-precision scores), rows sum to 1.
    """
    if scores.dtype in (torch.float16, torch.bfloat16):  # float32 weights under autocast
        scores = scores.float()
    if key_pad is None:
        return scores.softmax(dim=-1)
    _check_key_pad(key_pad)
    B, S = key_pad.shape
    pad = key_pad.view(B, *([1] * (scores.dim() - 2)), S)          # (B, 1.., 1, S)
    # -inf becomes exp(-inf) = 0 exactly; masked_fill also stops gradients to padded scores.
    return scores.masked_fill(pad, float("-inf")).softmax(dim=-1)


def attend(scores: Tensor, values: Tensor, key_pad: Tensor | None = None) -> tuple[Tensor, Tensor]:
    """Normalise ``scores`` and average ``values`` with the resulting weights.

    Shapes:
        scores: (B, T, S)
        values: (B, S, Dv)
        key_pad: (B, S) bool, True = padding, or None
        returns: context (B, T, Dv), weights (B, T, S)
    """
    weights = masked_softmax(scores, key_pad)                       # (B, T, S)
    return weights @ values, weights                                # (B, T, Dv), (B, T, S)


class Score(nn.Module):
    """What every score module offers: ``prepare(keys)`` once per batch (precomputed keys, reused
    at every step), then ``forward(query, prepared)`` -> scores (B, T, S)."""

    def prepare(self, keys: Tensor) -> Tensor:
        return keys

    def forward(self, query: Tensor, prepared: Tensor) -> Tensor:
        raise NotImplementedError


class DotScore(Score):
    """Luong et al. (2015), eq. 8, *dot*: score(q, k) = q^T k. Needs Dq == Dk; no parameters.

    Shapes (``forward``): query (B, T, D), prepared (B, S, D) -> scores (B, T, S).
    """

    def prepare(self, keys: Tensor) -> Tensor:
        return keys                                                 # (B, S, D)

    def forward(self, query: Tensor, prepared: Tensor) -> Tensor:
        return query @ prepared.transpose(1, 2)                     # (B, T, S)


class ScaledDotScore(Score):
    """Vaswani et al. (2017), §3.2.1: score(q, k) = q^T k / sqrt(d_k). Needs Dq == Dk.

    Dividing by sqrt(d_k) keeps the scores' variance near 1 as d_k grows, so the softmax does not
    saturate. Shapes (``forward``): query (B, T, D), prepared (B, S, D) -> scores (B, T, S).
    """

    def prepare(self, keys: Tensor) -> Tensor:
        return keys                                                 # (B, S, D)

    def forward(self, query: Tensor, prepared: Tensor) -> Tensor:
        d_k = prepared.size(-1)
        return query @ prepared.transpose(1, 2) / math.sqrt(d_k)    # (B, T, S)


class GeneralScore(Score):
    """Luong et al. (2015), eq. 8, *general*: score(q, k) = q^T W k, with W of shape (Dq, Dk).

    ``prepare`` computes W k once per batch, so each step is a plain dot product.
    Shapes (``forward``): query (B, T, Dq), prepared (B, S, Dq) -> scores (B, T, S).
    """

    def __init__(self, query_dim: int, key_dim: int):
        super().__init__()
        self.w = nn.Linear(key_dim, query_dim, bias=False)         # weight (Dq, Dk) = W

    def prepare(self, keys: Tensor) -> Tensor:
        return self.w(keys)                                         # (B, S, Dq)

    def forward(self, query: Tensor, prepared: Tensor) -> Tensor:
        return query @ prepared.transpose(1, 2)                     # (B, T, S)


class ConcatScore(Score):
    """Luong et al. (2015), eq. 8, *concat*: score(q, k) = v^T tanh(W [q; k]).

    W has shape (A, Dq + Dk) as in the paper. W [q; k] = W[:, :Dq] q + W[:, Dq:] k, so ``prepare``
    applies the key half once per batch and ``forward`` only the query half.
    Shapes (``forward``): query (B, T, Dq), prepared (B, S, A) -> scores (B, T, S).
    """

    def __init__(self, query_dim: int, key_dim: int, attn_dim: int):
        super().__init__()
        self.query_dim = query_dim
        self.w = nn.Linear(query_dim + key_dim, attn_dim, bias=False)  # weight (A, Dq + Dk)
        self.v = nn.Linear(attn_dim, 1, bias=False)

    def prepare(self, keys: Tensor) -> Tensor:
        return F.linear(keys, self.w.weight[:, self.query_dim:])   # (B, S, A)

    def forward(self, query: Tensor, prepared: Tensor) -> Tensor:
        q = F.linear(query, self.w.weight[:, : self.query_dim])    # (B, T, A)
        hidden = torch.tanh(q.unsqueeze(2) + prepared.unsqueeze(1))  # (B, T, S, A)
        return self.v(hidden).squeeze(-1)                           # (B, T, S)


class AdditiveScore(Score):
    """Bahdanau et al. (2015), App. A.1.2: score(q, k) = v^T tanh(W q + U k).

    ``prepare`` computes U k once per batch (the paper notes this saves computation).
    Shapes (``forward``): query (B, T, Dq), prepared (B, S, A) -> scores (B, T, S).
    """

    def __init__(self, query_dim: int, key_dim: int, attn_dim: int):
        super().__init__()
        self.w_q = nn.Linear(query_dim, attn_dim, bias=False)      # W
        self.w_k = nn.Linear(key_dim, attn_dim, bias=False)        # U
        self.v = nn.Linear(attn_dim, 1, bias=False)

    def prepare(self, keys: Tensor) -> Tensor:
        return self.w_k(keys)                                       # (B, S, A)

    def forward(self, query: Tensor, prepared: Tensor) -> Tensor:
        q = self.w_q(query)                                         # (B, T, A)
        hidden = torch.tanh(q.unsqueeze(2) + prepared.unsqueeze(1))  # (B, T, S, A)
        return self.v(hidden).squeeze(-1)                           # (B, T, S)


class GaussianScore(Score):
    """Nadaraya (1964) and Watson (1964) kernel regression, read as attention pooling
    (Zhang et al., *Dive into Deep Learning*, "Attention Pooling by Similarity"):
    score(q, k) = -||q - k||^2 / 2.

    softmax of these scores equals the normalised Gaussian kernel weights exp(-||q - k||^2 / 2).
    Needs Dq == Dk; no parameters.
    Shapes (``forward``): query (B, T, D), prepared (B, S, D) -> scores (B, T, S).
    """

    def prepare(self, keys: Tensor) -> Tensor:
        return keys                                                 # (B, S, D)

    def forward(self, query: Tensor, prepared: Tensor) -> Tensor:
        diff = query.unsqueeze(2) - prepared.unsqueeze(1)           # (B, T, S, D)
        return -0.5 * diff.pow(2).sum(dim=-1)                       # (B, T, S)


SCORES: dict[str, type[Score]] = {
    "dot": DotScore,
    "scaled_dot": ScaledDotScore,
    "general": GeneralScore,
    "concat": ConcatScore,
    "additive": AdditiveScore,
    "gaussian": GaussianScore,
}
_SAME_DIM_SCORES = ("dot", "scaled_dot", "gaussian")


def build_score(name: str, query_dim: int, key_dim: int, attn_dim: int | None = None) -> Score:
    """Build the score module called ``name`` (hyphens accepted: ``scaled-dot``).

    ``attn_dim`` (used by concat and additive) defaults to ``key_dim``. Raises ``ValueError`` for
    an unknown name, or when dot, scaled_dot or gaussian get ``query_dim != key_dim``.
    """
    key = name.replace("-", "_")
    if key not in SCORES:
        choices = ", ".join(sorted(SCORES))
        raise ValueError(f"unknown attention score {name!r}; choose one of: {choices}")
    if key in _SAME_DIM_SCORES:
        if query_dim != key_dim:
            raise ValueError(f"attention score {key!r} needs query_dim == key_dim, "
                             f"got query_dim={query_dim}, key_dim={key_dim}")
        return SCORES[key]()
    if key == "general":
        return GeneralScore(query_dim, key_dim)
    return SCORES[key](query_dim, key_dim, key_dim if attn_dim is None else attn_dim)


class MultiHeadAttention(nn.Module):
    """Vaswani et al. (2017), §3.2.2: MultiHead(Q, K, V) = Concat(head_1..head_h) W^O,
    head_i = Attention(Q W^Q_i, K W^K_i, V W^V_i) with scaled dot-product attention (§3.2.1).

    The per-head projections are stored as one (D, D) linear layer each for Q, K and V.
    ``project_kv`` and ``attend_projected`` are split so a decoder can project the encoder memory
    once, and append self-attention keys/values one step at a time.
    """

    def __init__(self, d_model: int, n_heads: int, dropout: float = 0.0, bias: bool = True):
        super().__init__()
        if d_model % n_heads != 0:
            raise ValueError(f"d_model ({d_model}) must be divisible by n_heads ({n_heads})")
        self.n_heads = n_heads
        self.head_dim = d_model // n_heads
        self.dropout = dropout
        self.w_q = nn.Linear(d_model, d_model, bias=bias)
        self.w_k = nn.Linear(d_model, d_model, bias=bias)
        self.w_v = nn.Linear(d_model, d_model, bias=bias)
        self.w_o = nn.Linear(d_model, d_model, bias=bias)

    def _split_heads(self, x: Tensor) -> Tensor:
        B, L, _ = x.shape
        return x.view(B, L, self.n_heads, self.head_dim).transpose(1, 2)  # (B, nh, L, hd)

    def project_kv(self, key: Tensor, value: Tensor) -> tuple[Tensor, Tensor]:
        """Project and split keys and values into heads: (B, S, D) -> k, v each (B, nh, S, hd)."""
        return self._split_heads(self.w_k(key)), self._split_heads(self.w_v(value))

    def attend_projected(self, query: Tensor, k: Tensor, v: Tensor, key_pad: Tensor | None = None,
                         causal: bool = False,
                         need_weights: bool = False) -> tuple[Tensor, Tensor | None]:
        """Attend with already projected keys and values (see :meth:`project_kv`).

        With ``causal=True`` query position t sees key positions <= t + (S - T): the last T keys
        line up with the T queries, so a cached prefix of S - T keys stays fully visible.
        ``need_weights=False`` uses torch's fused ``scaled_dot_product_attention``; True computes
        the weights explicitly and returns them per head (after softmax, before dropout).

        Shapes:
            query: (B, T, D); k, v: (B, nh, S, hd)
            key_pad: (B, S) bool, True = padding, or None
            returns: out (B, T, D), weights (B, nh, T, S) or None
        """
        B, T, D = query.shape
        S = k.size(2)
        q = self._split_heads(self.w_q(query))                      # (B, nh, T, hd)
        p = self.dropout if self.training else 0.0
        future = None
        if causal:
            assert T <= S, f"causal attention needs T <= S, got T={T}, S={S}"
            ones = torch.ones(T, S, dtype=torch.bool, device=query.device)
            future = ones.triu(diagonal=S - T + 1)                  # (T, S) True = future key
        if need_weights:
            scores = q @ k.transpose(-2, -1) / math.sqrt(self.head_dim)  # (B, nh, T, S)
            if future is not None:
                scores = scores.masked_fill(future, float("-inf"))
            weights = masked_softmax(scores, key_pad)               # (B, nh, T, S)
            ctx = F.dropout(weights, p, training=self.training) @ v  # (B, nh, T, hd)
        else:
            weights = None
            keep = None                                             # SDPA wants True = attend
            if key_pad is not None:
                _check_key_pad(key_pad)
                keep = ~key_pad.view(B, 1, 1, S)                    # (B, 1, 1, S)
            if future is not None:
                keep = ~future if keep is None else keep & ~future  # (B, 1, T, S)
            ctx = F.scaled_dot_product_attention(q, k, v, attn_mask=keep, dropout_p=p)
        ctx = ctx.transpose(1, 2).reshape(B, T, D)                  # (B, T, D)
        return self.w_o(ctx), weights

    def forward(self, query: Tensor, key: Tensor, value: Tensor, key_pad: Tensor | None = None,
                causal: bool = False, need_weights: bool = False) -> tuple[Tensor, Tensor | None]:
        """Project keys and values, then :meth:`attend_projected`.

        Shapes:
            query: (B, T, D); key, value: (B, S, D)
            key_pad: (B, S) bool, True = padding, or None
            returns: out (B, T, D), weights (B, nh, T, S) or None
        """
        k, v = self.project_kv(key, value)
        return self.attend_projected(query, k, v, key_pad=key_pad, causal=causal,
                                     need_weights=need_weights)


def sinusoidal_positions(max_len: int, d_model: int) -> Tensor:
    """Vaswani et al. (2017), §3.5: PE(pos, 2i) = sin(pos / 10000^(2i/d)),
    PE(pos, 2i+1) = cos(pos / 10000^(2i/d)). An odd ``d_model`` ends with a sine column.

    Shapes:
        returns: (max_len, d_model) in the default dtype
    """
    pos = torch.arange(max_len, dtype=torch.float64).unsqueeze(1)  # (L, 1)
    two_i = torch.arange(0, d_model, 2, dtype=torch.float64)       # (ceil(d/2),)
    angles = pos / torch.pow(10000.0, two_i / d_model)              # (L, ceil(d/2))
    pe = torch.zeros(max_len, d_model, dtype=torch.float64)
    pe[:, 0::2] = torch.sin(angles)
    pe[:, 1::2] = torch.cos(angles[:, : d_model // 2])
    return pe.to(torch.get_default_dtype())                         # (L, D)
