"""Tests for seqattn.attention: each vectorised piece against a plain float64 loop."""

import math

import pytest
import torch
from torch import nn

from seqattn.attention import (
    SCORES,
    AdditiveScore,
    ConcatScore,
    DotScore,
    GaussianScore,
    GeneralScore,
    MultiHeadAttention,
    ScaledDotScore,
    attend,
    build_score,
    masked_softmax,
    sinusoidal_positions,
)

SCORE_NAMES = ["dot", "scaled_dot", "general", "concat", "additive", "gaussian"]


def make_score(name: str, dq: int = 4, dk: int = 3, attn: int = 5) -> tuple[nn.Module, int, int]:
    if name in ("dot", "scaled_dot", "gaussian"):
        dk = dq
    return build_score(name, dq, dk, attn), dq, dk


def score_of(module: nn.Module, query: torch.Tensor, keys: torch.Tensor) -> torch.Tensor:
    return module(query, module.prepare(keys))


def as_lists(t: torch.Tensor) -> list:
    return t.detach().double().tolist()


def dot(a: list[float], b: list[float]) -> float:
    return sum(x * y for x, y in zip(a, b, strict=True))


def matvec(m: list[list[float]], x: list[float]) -> list[float]:
    return [dot(row, x) for row in m]


def loop_score(name: str, module: nn.Module, q: list[float], k: list[float]) -> float:
    """The paper's formula for one (query, key) pair, in Python floats."""
    if name == "dot":
        return dot(q, k)
    if name == "scaled_dot":
        return dot(q, k) / math.sqrt(len(k))
    if name == "gaussian":
        return -0.5 * sum((a - b) ** 2 for a, b in zip(q, k, strict=True))
    if name == "general":                                   # q^T W k
        return dot(q, matvec(as_lists(module.w.weight), k))
    if name == "concat":                                    # v^T tanh(W [q; k]), W unsplit
        hidden = matvec(as_lists(module.w.weight), q + k)
        return dot(as_lists(module.v.weight)[0], [math.tanh(h) for h in hidden])
    if name == "additive":                                  # v^T tanh(W q + U k)
        wq = matvec(as_lists(module.w_q.weight), q)
        uk = matvec(as_lists(module.w_k.weight), k)
        hidden = [a + b for a, b in zip(wq, uk, strict=True)]
        return dot(as_lists(module.v.weight)[0], [math.tanh(h) for h in hidden])
    raise AssertionError(name)


@pytest.mark.parametrize("name", SCORE_NAMES)
def test_score_matches_python_loop(name):
    torch.manual_seed(0)
    module, dq, dk = make_score(name)
    query, keys = torch.randn(2, 3, dq), torch.randn(2, 4, dk)
    got = score_of(module, query, keys)
    assert got.shape == (2, 3, 4)
    q_list, k_list = as_lists(query), as_lists(keys)
    for b in range(2):
        for t in range(3):
            for s in range(4):
                want = loop_score(name, module, q_list[b][t], k_list[b][s])
                assert got[b, t, s].item() == pytest.approx(want, abs=1e-5)


class _PrepareThenScore(nn.Module):
    """Wraps a score so functional_call can swap its parameters for gradcheck inputs."""

    def __init__(self, score: nn.Module):
        super().__init__()
        self.score = score

    def forward(self, query, keys):
        return self.score(query, self.score.prepare(keys))


@pytest.mark.parametrize("name", SCORE_NAMES)
def test_score_gradcheck(name):
    torch.manual_seed(1)
    module, dq, dk = make_score(name, dq=3, dk=2, attn=3)
    wrapper = _PrepareThenScore(module).double()
    names = [n for n, _ in wrapper.named_parameters()]
    params = [p.detach().clone().requires_grad_() for _, p in wrapper.named_parameters()]
    query = torch.randn(2, 2, dq, dtype=torch.float64, requires_grad=True)
    keys = torch.randn(2, 3, dk, dtype=torch.float64, requires_grad=True)

    def f(q, k, *ps):
        return torch.func.functional_call(wrapper, dict(zip(names, ps, strict=True)), (q, k))

    assert torch.autograd.gradcheck(f, (query, keys, *params))


def test_masked_softmax_and_attend_gradcheck():
    torch.manual_seed(2)
    scores = torch.randn(2, 3, 4, dtype=torch.float64, requires_grad=True)
    values = torch.randn(2, 4, 2, dtype=torch.float64, requires_grad=True)
    key_pad = torch.tensor([[False, False, True, True], [False, False, False, False]])
    assert torch.autograd.gradcheck(lambda s: masked_softmax(s, key_pad), (scores,))
    assert torch.autograd.gradcheck(lambda s, v: attend(s, v, key_pad), (scores, values))
    assert torch.autograd.gradcheck(lambda s, v: attend(s, v), (scores, values))


def test_masked_softmax_matches_python_loop_on_4d_scores():
    torch.manual_seed(3)
    scores = torch.randn(2, 2, 3, 4, dtype=torch.float64)   # (B, nh, T, S)
    key_pad = torch.tensor([[False, True, False, True], [False, False, False, True]])
    got = masked_softmax(scores, key_pad)
    for b in range(2):
        real = [s for s in range(4) if not key_pad[b, s]]
        for h in range(2):
            for t in range(3):
                z = sum(math.exp(scores[b, h, t, s].item()) for s in real)
                for s in range(4):
                    want = math.exp(scores[b, h, t, s].item()) / z if s in real else 0.0
                    assert got[b, h, t, s].item() == pytest.approx(want, abs=1e-12)


@pytest.mark.parametrize("name", SCORE_NAMES)
def test_weights_sum_to_one_and_padding_gets_exactly_zero(name):
    torch.manual_seed(4)
    module, dq, dk = make_score(name)
    query, keys = torch.randn(3, 2, dq), torch.randn(3, 5, dk)
    key_pad = torch.tensor([[False] * 5, [False] * 3 + [True] * 2, [False] + [True] * 4])
    _, weights = attend(score_of(module, query, keys), keys, key_pad)
    torch.testing.assert_close(weights.sum(-1), torch.ones(3, 2))
    padded = key_pad.unsqueeze(1).expand_as(weights)
    assert (weights[padded] == 0.0).all()
    assert (weights[~padded] > 0.0).all()


@pytest.mark.parametrize("name", SCORE_NAMES)
def test_padding_invariance_and_no_gradient_to_padding(name):
    torch.manual_seed(5)
    module, dq, dk = make_score(name)
    query, keys = torch.randn(2, 3, dq), torch.randn(2, 4, dk)
    values = torch.randn(2, 4, 6)
    ctx, weights = attend(score_of(module, query, keys), values)

    junk_keys = torch.cat([keys, 100 * torch.randn(2, 3, dk)], dim=1).requires_grad_()
    junk_values = torch.cat([values, 100 * torch.randn(2, 3, 6)], dim=1).requires_grad_()
    key_pad = torch.tensor([[False] * 4 + [True] * 3] * 2)
    ctx2, weights2 = attend(score_of(module, query, junk_keys), junk_values, key_pad)
    torch.testing.assert_close(ctx2, ctx)
    torch.testing.assert_close(weights2[..., :4], weights)

    ctx2.pow(2).sum().backward()
    assert (junk_keys.grad[:, 4:] == 0.0).all()
    assert (junk_values.grad[:, 4:] == 0.0).all()
    assert junk_values.grad[:, :4].abs().sum() > 0


def test_all_padding_row_raises():
    scores = torch.zeros(2, 1, 3)
    key_pad = torch.tensor([[False, True, True], [True, True, True]])
    with pytest.raises(ValueError, match="every position is padding"):
        masked_softmax(scores, key_pad)
    mha = MultiHeadAttention(4, 2).eval()
    x = torch.zeros(2, 3, 4)
    for need_weights in (False, True):
        with pytest.raises(ValueError, match="every position is padding"):
            mha(x, x, x, key_pad=key_pad, need_weights=need_weights)


def test_worked_example_dot_attention():
    query = torch.tensor([[[0.7, 0.3]]])
    keys = torch.tensor([[[1.0, 0.0], [0.5, 0.5], [0.0, 1.0]]])
    score = DotScore()
    scores = score(query, score.prepare(keys))
    assert scores[0, 0].tolist() == pytest.approx([0.7, 0.5, 0.3], abs=1e-6)
    context, weights = attend(scores, keys)
    assert weights[0, 0].tolist() == pytest.approx([0.4018, 0.3289, 0.2693], abs=1e-4)
    # The exact context is (0.566226, 0.433774). The source text rounded the weights to 4 places
    # first (0.4018 + 0.5 * 0.3289 = 0.56625 -> 0.5663), which still lies within 1e-4.
    assert context[0, 0].tolist() == pytest.approx([0.5663, 0.4337], abs=1e-4)
    assert context[0, 0].tolist() == pytest.approx([0.566226, 0.433774], abs=1e-6)


@pytest.mark.parametrize("d_model", [6, 7])
def test_sinusoidal_positions_match_formula(d_model):
    pe = sinusoidal_positions(50, d_model)
    assert pe.shape == (50, d_model)
    for pos in range(50):
        for j in range(d_model):
            angle = pos / 10000 ** ((j - j % 2) / d_model)
            want = math.sin(angle) if j % 2 == 0 else math.cos(angle)
            assert pe[pos, j].item() == pytest.approx(want, abs=1e-6)


def test_build_score_names_and_errors():
    assert isinstance(build_score("scaled-dot", 4, 4), ScaledDotScore)
    assert isinstance(build_score("scaled_dot", 4, 4), ScaledDotScore)
    assert isinstance(build_score("gaussian", 4, 4), GaussianScore)
    assert isinstance(build_score("general", 4, 3), GeneralScore)
    additive = build_score("additive", 4, 3)
    assert isinstance(additive, AdditiveScore) and additive.v.weight.shape == (1, 3)
    concat = build_score("concat", 4, 3, attn_dim=7)
    assert isinstance(concat, ConcatScore) and concat.w.weight.shape == (7, 7)
    assert set(SCORES) == set(SCORE_NAMES)
    with pytest.raises(ValueError, match="unknown attention score 'luong'; choose one of: "
                                         "additive, concat, dot, gaussian, general, scaled_dot"):
        build_score("luong", 4, 4)
    for name in ("dot", "scaled-dot", "gaussian"):
        with pytest.raises(ValueError, match="query_dim == key_dim"):
            build_score(name, 4, 3)


# --- MultiHeadAttention -------------------------------------------------------------------


def make_mha(d_model=8, n_heads=2, seed=6) -> MultiHeadAttention:
    torch.manual_seed(seed)
    return MultiHeadAttention(d_model, n_heads).double().eval()


def test_mha_rejects_indivisible_heads():
    with pytest.raises(ValueError, match="divisible"):
        MultiHeadAttention(10, 3)


@pytest.mark.parametrize("causal", [False, True])
def test_mha_fast_path_equals_explicit_path(causal):
    mha = make_mha()
    x, memory = torch.randn(2, 4, 8, dtype=torch.float64), torch.randn(2, 4, 8, dtype=torch.float64)
    key_pad = torch.tensor([[False, False, False, True], [False] * 4])
    fast, none = mha(x, memory, memory, key_pad=key_pad, causal=causal)
    slow, weights = mha(x, memory, memory, key_pad=key_pad, causal=causal, need_weights=True)
    assert none is None
    torch.testing.assert_close(fast, slow)
    assert weights.shape == (2, 2, 4, 4)
    torch.testing.assert_close(weights.sum(-1), torch.ones(2, 2, 4, dtype=torch.float64))
    assert (weights[0, :, :, 3] == 0.0).all()
    if causal:
        future = torch.ones(4, 4, dtype=torch.bool).triu(1)
        assert (weights[:, :, future] == 0.0).all()


def linear_by_hand(x: list[float], layer: nn.Linear) -> list[float]:
    out = matvec(as_lists(layer.weight), x)
    return [o + b for o, b in zip(out, as_lists(layer.bias), strict=True)]


def test_mha_matches_loop_reference():
    mha = make_mha()
    query, memory = torch.randn(2, 3, 8), torch.randn(2, 5, 8)
    key_pad = torch.tensor([[False] * 5, [False, False, False, True, True]])
    got, _ = mha(query.double(), memory.double(), memory.double(), key_pad=key_pad)
    nh, hd = 2, 4
    for b in range(2):
        real = [s for s in range(5) if not key_pad[b, s]]
        ks = [linear_by_hand(as_lists(memory[b, s]), mha.w_k) for s in range(5)]
        vs = [linear_by_hand(as_lists(memory[b, s]), mha.w_v) for s in range(5)]
        for t in range(3):
            q = linear_by_hand(as_lists(query[b, t]), mha.w_q)
            concat = []
            for h in range(nh):
                cut = slice(h * hd, (h + 1) * hd)
                e = {s: math.exp(dot(q[cut], ks[s][cut]) / math.sqrt(hd)) for s in real}
                z = sum(e.values())
                concat += [sum(e[s] / z * vs[s][cut][i] for s in real) for i in range(hd)]
            want = linear_by_hand(concat, mha.w_o)
            assert got[b, t].tolist() == pytest.approx(want, abs=1e-10)


def test_mha_causal_ignores_future_keys():
    mha = make_mha()
    x = torch.randn(1, 5, 8, dtype=torch.float64)
    out, _ = mha(x, x, x, causal=True)
    changed = x.clone()
    changed[:, 3:] = torch.randn(1, 2, 8, dtype=torch.float64)
    out2, _ = mha(x, changed, changed, causal=True)
    torch.testing.assert_close(out2[:, :3], out[:, :3])
    assert not torch.allclose(out2[:, 3:], out[:, 3:])


@pytest.mark.parametrize("need_weights", [False, True])
def test_mha_causal_with_cache_prefix_equals_last_rows(need_weights):
    mha = make_mha()
    x = torch.randn(2, 6, 8, dtype=torch.float64)
    full, full_w = mha(x, x, x, causal=True, need_weights=need_weights)
    k, v = mha.project_kv(x, x)                             # the whole prefix, cached
    tail, tail_w = mha.attend_projected(x[:, 4:], k, v, causal=True, need_weights=need_weights)
    torch.testing.assert_close(tail, full[:, 4:])
    if need_weights:
        torch.testing.assert_close(tail_w, full_w[:, :, 4:])
    # step by step, appending K/V one position at a time
    k_cache = v_cache = None
    for t in range(6):
        k_t, v_t = mha.project_kv(x[:, t : t + 1], x[:, t : t + 1])
        k_cache = k_t if k_cache is None else torch.cat([k_cache, k_t], dim=2)
        v_cache = v_t if v_cache is None else torch.cat([v_cache, v_t], dim=2)
        step, _ = mha.attend_projected(x[:, t : t + 1], k_cache, v_cache, causal=True)
        torch.testing.assert_close(step, full[:, t : t + 1])


def test_mha_project_kv_then_attend_equals_forward():
    mha = make_mha()
    q, mem = torch.randn(2, 3, 8, dtype=torch.float64), torch.randn(2, 4, 8, dtype=torch.float64)
    key_pad = torch.tensor([[False, False, True, True], [False] * 4])
    out, w = mha(q, mem, mem, key_pad=key_pad, need_weights=True)
    out2, w2 = mha.attend_projected(q, *mha.project_kv(mem, mem), key_pad=key_pad,
                                    need_weights=True)
    torch.testing.assert_close(out2, out)
    torch.testing.assert_close(w2, w)


@pytest.mark.parametrize("causal", [False, True])
def test_mha_matches_torch_multihead_attention(causal):
    mha = make_mha(d_model=8, n_heads=4)
    ref = nn.MultiheadAttention(8, 4, batch_first=True).double().eval()
    with torch.no_grad():
        ref.in_proj_weight.copy_(torch.cat([mha.w_q.weight, mha.w_k.weight, mha.w_v.weight]))
        ref.in_proj_bias.copy_(torch.cat([mha.w_q.bias, mha.w_k.bias, mha.w_v.bias]))
        ref.out_proj.weight.copy_(mha.w_o.weight)
        ref.out_proj.bias.copy_(mha.w_o.bias)
    x = torch.randn(2, 5, 8, dtype=torch.float64)
    key_pad = torch.tensor([[False] * 5, [False, False, False, False, True]])
    future = torch.ones(5, 5, dtype=torch.bool).triu(1) if causal else None
    want, want_w = ref(x, x, x, key_padding_mask=key_pad, attn_mask=future,
                       average_attn_weights=False)
    got, got_w = mha(x, x, x, key_pad=key_pad, causal=causal, need_weights=True)
    torch.testing.assert_close(got, want)
    torch.testing.assert_close(got_w, want_w)


def test_mha_no_gradient_to_padded_memory():
    mha = make_mha()
    q = torch.randn(2, 3, 8, dtype=torch.float64)
    mem = torch.randn(2, 4, 8, dtype=torch.float64, requires_grad=True)
    key_pad = torch.tensor([[False, False, True, True], [False, False, False, True]])
    for need_weights in (False, True):
        mem.grad = None
        out, _ = mha(q, mem, mem, key_pad=key_pad, need_weights=need_weights)
        out.pow(2).sum().backward()
        assert (mem.grad[key_pad] == 0.0).all()
        assert mem.grad[~key_pad].abs().sum() > 0
