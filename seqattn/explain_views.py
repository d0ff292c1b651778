"""``seqattn explain`` beyond one step: several heads, self-attention with a causal mask, and
sinusoidal positions, each computed in the open in float64 for learners.

- :func:`explain_heads` runs :class:`seqattn.attention.MultiHeadAttention` (the module the
  Transformer uses, without biases) on given vectors: the query, key and value projections
  split into heads (Vaswani et al. 2017, §3.2.2), each head's scaled dot-product scores and
  weights (§3.2.1), the heads' outputs concatenated and the output projection. With
  ``self_attention`` the queries, keys and values are one sequence (§3.2.3); ``causal`` adds
  the mask a decoder uses, so position t sees positions 0..t only (a masked score is −∞ and
  its weight exactly 0). Without ``num_heads`` there are no projections: one head reads the
  vectors as they are.
- :func:`explain_positions` builds the sinusoidal table of :func:`seqattn.attention.
  sinusoidal_positions` (§3.5) and shows what adding it to embeddings does to dot-product
  scores between positions.

Projection matrices are written as the paper writes them, x W (D×D; head i uses columns
i·d..(i+1)·d − 1, d = D / heads); drawn from ``seed`` unless given. :func:`describe_heads`
and :func:`describe_positions` say in words only what the numbers show.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from seqattn.errors import UsageError
from seqattn.explain import MAX_PARAMETERS, check_matrix, check_seed, top_keys

#: the projection matrices of :func:`explain_heads`, in the paper's names
PROJECTIONS = ("W_Q", "W_K", "W_V", "W_O")
#: the largest table explain_positions builds (entries), as MAX_PARAMETERS for matrices
MAX_TABLE = 1_000_000


@dataclass(frozen=True)
class Head:
    """One head. Shapes: q (T, d), k (S, d), v (S, d), scores and weights (T, S) (a masked
    score is None), output (T, d)."""

    q: list[list[float]]
    k: list[list[float]]
    v: list[list[float]]
    scores: list[list[float | None]]
    weights: list[list[float]]
    output: list[list[float]]


@dataclass(frozen=True)
class HeadsStep:
    """Multi-head (or plain) attention of T queries over S keys, every number float64."""

    num_heads: int
    head_dim: int
    self_attention: bool
    causal: bool
    projected: bool                       # False: no projections (the vectors as they are)
    queries: list[list[float]]            # (T, D)
    keys: list[list[float]]               # (S, D)
    values: list[list[float]]             # (S, D)
    params: dict[str, list[list[float]]]  # W_Q, W_K, W_V, W_O (D, D) when projected
    heads: list[Head]
    concat: list[list[float]]             # (T, D) the heads' outputs side by side
    output: list[list[float]]             # (T, D) concat · W_O
    seed: int | None


def explain_heads(queries: list[list[float]] | None, keys: list[list[float]],
                  values: list[list[float]] | None = None, num_heads: int | None = None,
                  causal: bool = False, params: dict[str, Any] | None = None,
                  seed: int = 0) -> HeadsStep:
    """Attention of ``queries`` over ``keys`` (``queries=None``: self-attention, the keys
    attend to themselves). See the module docstring."""
    import torch

    from seqattn.attention import MultiHeadAttention

    self_attention = queries is None
    keys = check_matrix(keys, "the sequence" if self_attention else "the keys")
    queries = keys if queries is None else check_matrix(queries, "the queries")
    values = keys if values is None else check_matrix(values, "the values")
    D = len(keys[0])
    if len(queries[0]) != D or len(values[0]) != D:
        raise UsageError(f"queries, keys and values must have the same size here (the heads' "
                         f"projections are D×D); got {len(queries[0])}, {D} and "
                         f"{len(values[0])} entries")
    if len(values) != len(keys):
        raise UsageError(f"there are {len(keys)} keys but {len(values)} values; give one "
                         "value per key")
    if causal and not self_attention:
        raise UsageError("--causal is the mask of self-attention: give --self with it (a "
                         "decoder position may not see the positions after it)")
    projected = num_heads is not None
    heads = 1 if num_heads is None else num_heads
    if not isinstance(heads, int) or isinstance(heads, bool) or heads < 1:
        raise UsageError(f"the number of heads must be a positive integer, got {heads!r}")
    if D % heads:
        raise UsageError(f"the vectors have {D} entries, which {heads} heads cannot split "
                         f"evenly; give a number of heads that divides {D}")
    if 4 * D * D > MAX_PARAMETERS:
        raise UsageError(f"vectors of {D} entries need 4 projection matrices of {D}×{D}, more "
                         f"than the {MAX_PARAMETERS:,} numbers explain builds")
    if params and not projected:
        raise UsageError("projection matrices (params) need --num-heads: without it the "
                         "vectors are read as they are")
    check_seed(seed)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        mha = MultiHeadAttention(D, heads, bias=False).double().eval()
    used = _projections(mha, D, params or {}, projected)
    q_in = torch.tensor([queries], dtype=torch.float64)            # (1, T, D)
    k_in = torch.tensor([keys], dtype=torch.float64)               # (1, S, D)
    v_in = torch.tensor([values], dtype=torch.float64)             # (1, S, D)
    T, S, d = len(queries), len(keys), D // heads
    with torch.no_grad():
        out, weights = mha(q_in, k_in, v_in, causal=causal, need_weights=True)
        assert weights is not None                                 # (1, nh, T, S)
        q = mha._split_heads(mha.w_q(q_in))[0]                     # (nh, T, d)
        k, v = (x[0] for x in mha.project_kv(k_in, v_in))          # (nh, S, d) each
        scores = q @ k.transpose(-2, -1) / math.sqrt(d)            # (nh, T, S)
        per_head = weights[0] @ v                                  # (nh, T, d)
    concat = per_head.transpose(0, 1).reshape(T, D)                # (T, D)
    masked = [[causal and s > t for s in range(S)] for t in range(T)]
    keep = ~torch.tensor(masked, dtype=torch.bool)                  # (T, S) scores shown
    for what, t in (("the projected queries, keys and values", torch.cat(
            [q.flatten(), k.flatten(), v.flatten()])), ("a score qᵀk / √d", scores[:, keep]),
            ("the weights", weights), ("the output", out)):
        _finite(t, what)
    heads_out = [Head(q[h].tolist(), k[h].tolist(), v[h].tolist(),
                      [[None if masked[t][s] else float(scores[h, t, s]) for s in range(S)]
                       for t in range(T)],
                      weights[0, h].tolist(), per_head[h].tolist()) for h in range(heads)]
    return HeadsStep(heads, d, self_attention, causal, projected, queries, keys, values, used,
                     heads_out, concat.tolist(), out[0].tolist(),
                     seed if projected and not params else None)


def _projections(mha: Any, D: int, given: dict[str, Any], projected: bool) -> dict[str, Any]:
    """Put given (or, unprojected, identity) matrices into ``mha``; return those in use."""
    import torch

    layers = {"W_Q": mha.w_q, "W_K": mha.w_k, "W_V": mha.w_v, "W_O": mha.w_o}
    if not isinstance(given, dict):
        raise UsageError("params must be a mapping such as {W_Q: [[...]], W_O: [[...]]}")
    for name in given:
        if name not in layers:
            raise UsageError(f"multi-head attention has no parameter '{name}'; valid: "
                             f"{', '.join(PROJECTIONS)}")
    used = {}
    for name, layer in layers.items():
        with torch.no_grad():
            if not projected:
                layer.weight.copy_(torch.eye(D, dtype=torch.float64))
            elif name in given:
                m = check_matrix(given[name], f"parameter {name}")
                if (len(m), len(m[0])) != (D, D):
                    raise UsageError(f"parameter {name} has shape {len(m)}x{len(m[0])} but "
                                     f"this attention needs {D}x{D}")
                layer.weight.copy_(torch.tensor(m, dtype=torch.float64).T)  # x W = x (Wᵀ)ᵀ
        if projected:
            used[name] = layer.weight.detach().T.tolist()         # the paper's x W form
    return used


def _finite(t: Any, what: str) -> None:
    import torch

    if not bool(torch.isfinite(t).all()):
        raise UsageError(f"{what} overflows float64 (the largest number is about 1.8e308); "
                         "use smaller values")


def describe_heads(step: HeadsStep, digits: int = 4) -> list[str]:
    """Sentences that follow from the numbers of ``step`` alone."""
    lines = []
    T = len(step.queries)
    if step.projected:
        lines.append(f"Each of the {step.num_heads} head(s) sees its own {step.head_dim}-entry "
                     f"slice of x W_Q, x W_K and x W_V, scores with qᵀk / √{step.head_dim}, "
                     f"and the heads' outputs side by side ({len(step.concat[0])} entries) "
                     "pass through W_O.")
    else:
        lines.append("No projections: the vectors are queries, keys and values as they are, "
                     f"scored with qᵀk / √{step.head_dim}.")
    if step.self_attention:
        lines.append(f"Self-attention: each of the {T} positions is a query over all "
                     f"{'earlier positions and itself' if step.causal else 'positions'}.")
    if step.causal:
        zero = all(w == 0.0 for h in step.heads for t, row in enumerate(h.weights)
                   for s, w in enumerate(row) if s > t)
        if zero:
            lines.append("The causal mask sets every score above the diagonal to −∞, so "
                         "those weights are exactly 0: a position never reads the ones after "
                         "it.")
        if all(h.weights[0][0] == 1.0 for h in step.heads):
            lines.append("Position 0 sees only itself: its weight on itself is exactly 1.")
    for i, h in enumerate(step.heads):
        tops = []
        for t, row in enumerate(h.weights):
            best = top_keys(row)
            who = " and ".join(f"#{s}" for s in best)
            tops.append(f"query {t} → {who} ({row[best[0]]:.{digits}f})")
        name = f"Head {i}" if step.num_heads > 1 else "The head"
        lines.append(f"{name}, most weight: " + "; ".join(tops) + ".")
    if step.num_heads > 1:
        picks = {tuple(tuple(top_keys(row)) for row in h.weights) for h in step.heads}
        lines.append("The heads agree on the most-attended key of every query." if len(picks)
                     == 1 else "The heads differ in where they look: the same vectors, "
                     "projected differently, give each head its own weights.")
    return lines


@dataclass(frozen=True)
class PositionsView:
    """The sinusoidal table and its effect on dot-product scores between positions."""

    dim: int
    length: int
    formula: str
    frequencies: list[float]              # ω_i = 1 / 10000^(2i/D), one per sin/cos pair
    table: list[list[float]]              # (N, D) PE
    dots: list[list[float]]               # (N, N) PE(p) · PE(q)
    embedding: list[float]                # (D,) one word's embedding e, drawn from seed
    query_position: int
    scores_without: list[float]           # (N,) e · e / √D at every position
    scores_with: list[float]              # (N,) (e + PE(p)) · (e + PE(j)) / √D
    weights_without: list[float]          # (N,) softmax of scores_without
    weights_with: list[float]             # (N,)
    seed: int


#: --positions without --dim / --length
DIM, LENGTH = 8, 10

FORMULA = "PE(pos, 2i) = sin(pos / 10000^(2i/D)), PE(pos, 2i+1) = cos(pos / 10000^(2i/D))"


def explain_positions(dim: int | None = None, length: int | None = None, seed: int = 0,
                      query_position: int | None = None) -> PositionsView:
    """The table, PE·PEᵀ, and one word repeated at every position scored without and with
    the positions added (the query at ``query_position``, default the middle); ``None``:
    :data:`DIM`, :data:`LENGTH`."""
    import torch

    from seqattn.attention import sinusoidal_positions

    dim = DIM if dim is None else dim
    length = LENGTH if length is None else length

    for name, value in (("--dim", dim), ("--length", length)):
        if not isinstance(value, int) or isinstance(value, bool) or value < 1:
            raise UsageError(f"{name} must be a positive integer, got {value!r}")
    if dim * length > MAX_TABLE or length * length > MAX_TABLE:
        raise UsageError(f"a table of {length} positions × {dim} entries is more than explain "
                         f"shows ({MAX_TABLE:,} numbers); use a smaller --dim or --length")
    check_seed(seed)
    p = length // 2 if query_position is None else query_position
    if not 0 <= p < length:
        raise UsageError(f"the query position must be in 0..{length - 1}, got {p}")
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        e = torch.randn(dim, dtype=torch.float64)                  # (D,)
    previous = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    try:
        pe = sinusoidal_positions(length, dim)                     # (N, D) float64
    finally:
        torch.set_default_dtype(previous)
    x_without = e.expand(length, dim)                              # (N, D) the same word
    x_with = x_without + pe                                        # (N, D)
    s_without = x_without @ x_without[p] / math.sqrt(dim)          # (N,)
    s_with = x_with @ x_with[p] / math.sqrt(dim)                   # (N,)
    freqs = [1.0 / 10000 ** (2 * i / dim) for i in range((dim + 1) // 2)]
    return PositionsView(dim, length, FORMULA, freqs, pe.tolist(), (pe @ pe.T).tolist(),
                         e.tolist(), p, s_without.tolist(), s_with.tolist(),
                         s_without.softmax(-1).tolist(), s_with.softmax(-1).tolist(), seed)


def describe_positions(view: PositionsView, digits: int = 4) -> list[str]:
    """Sentences that follow from the numbers of ``view`` alone."""
    D, N, dots = view.dim, view.length, view.dots
    lines = []
    norms = [dots[i][i] for i in range(N)]
    if all(math.isclose(n, D / 2, rel_tol=1e-12, abs_tol=1e-12) for n in norms):
        lines.append(f"Every position's encoding has squared length D/2 = {D / 2:g}: each of "
                     "the D/2 sin/cos pairs adds sin² + cos² = 1.")
    by_offset = all(math.isclose(dots[a][b], dots[0][abs(a - b)], rel_tol=1e-9, abs_tol=1e-9)
                    for a in range(N) for b in range(N))
    if by_offset:
        lines.append("PE(p) · PE(q) depends only on the distance |p − q|: it is "
                     "Σᵢ cos((p − q) ωᵢ), so the same offset gives the same score anywhere "
                     "in the sentence.")
    elif D % 2:
        lines.append(f"D = {D} is odd: the last entry is a sine without its cosine, so "
                     "PE(p) · PE(q) is not a function of p − q alone.")
    if N > 1 and all(dots[a][a] > dots[a][b] for a in range(N) for b in range(N) if a != b):
        lines.append(f"Every position is most similar to itself ({dots[0][0]:.{digits}f}).")
        if by_offset:   # then the row of position 0 holds every offset's score
            far = max(range(1, N), key=lambda k: dots[0][k])
            lines.append(f"The most similar other position is the next one "
                         f"({dots[0][1]:.{digits}f})." if far == 1 else
                         f"The most similar other position is {far} away "
                         f"({dots[0][far]:.{digits}f}), not the next one: the fast sin/cos "
                         "pairs turn round.")
    if N == 1:
        lines.append("With one position there is nothing to tell apart: it gets all the "
                     "weight.")
        return lines
    w0, w1 = view.weights_without, view.weights_with
    p = view.query_position
    if len(set(view.scores_without)) == 1:
        lines.append(f"Without positions, one word repeated {N} times scores the same "
                     f"everywhere (e · e / √D = {view.scores_without[0]:.{digits}f}), so a "
                     f"query at position {p} weighs every position alike ({w0[0]:.{digits}f} "
                     "each): attention alone cannot tell positions apart.")
    best = top_keys(w1)
    lines.append(f"With the encoding added, the same query's weights range from "
                 f"{min(w1):.{digits}f} to {max(w1):.{digits}f}, the most on position "
                 f"{' and '.join(map(str, best))}: the scores now depend on where the words "
                 "are.")
    return lines

