"""`seqattn explain --num-heads / --self --causal / --positions` (issue 21): every number checked
value by value against plain-Python float64 loops written from the papers' formulas, and the
prose checked to say only what those numbers show."""

from __future__ import annotations

import json
import math
import random

import pytest

from seqattn.cli import run
from seqattn.errors import UsageError
from seqattn.explain_views import (
    describe_heads,
    describe_positions,
    explain_heads,
    explain_positions,
)


def _matmul(a: list[list[float]], b: list[list[float]]) -> list[list[float]]:
    return [[sum(a[i][k] * b[k][j] for k in range(len(b))) for j in range(len(b[0]))]
            for i in range(len(a))]


def _softmax(row: list[float | None]) -> list[float]:
    real = [x for x in row if x is not None]
    top = max(real)
    exps = [0.0 if x is None else math.exp(x - top) for x in row]
    total = sum(exps)
    return [e / total for e in exps]


def reference_heads(queries, keys, values, W, heads, causal):
    """Vaswani et al. (2017) §3.2.1-3.2.2 with loops: head_i = softmax(Q_i K_iᵀ / √d) V_i with
    Q_i = Q W_Q[:, i·d:(i+1)·d], output = [head_1; ...; head_h] W_O."""
    D = len(keys[0])
    d = D // heads
    Q, K, V = _matmul(queries, W["W_Q"]), _matmul(keys, W["W_K"]), _matmul(values, W["W_V"])
    out_heads = []
    for h in range(heads):
        cols = range(h * d, (h + 1) * d)
        scores = [[None if causal and s > t else
                   sum(Q[t][c] * K[s][c] for c in cols) / math.sqrt(d)
                   for s in range(len(keys))] for t in range(len(queries))]
        weights = [_softmax(row) for row in scores]
        output = [[sum(weights[t][s] * V[s][c] for s in range(len(keys))) for c in cols]
                  for t in range(len(queries))]
        out_heads.append((scores, weights, output))
    concat = [[x for h in range(heads) for x in out_heads[h][2][t]]
              for t in range(len(queries))]
    return out_heads, concat, _matmul(concat, W["W_O"])


def _close(a, b, tol=1e-12):
    if isinstance(a, list):
        assert len(a) == len(b)
        for x, y in zip(a, b):
            _close(x, y, tol)
    elif a is None or b is None:
        assert a is None and b is None
    else:
        assert math.isclose(a, b, rel_tol=tol, abs_tol=tol), (a, b)


def _random(rows: int, cols: int, rng: random.Random) -> list[list[float]]:
    return [[rng.uniform(-1.5, 1.5) for _ in range(cols)] for _ in range(rows)]


@pytest.mark.parametrize("heads, causal, self_attention", [
    (1, False, False), (2, False, False), (4, False, True), (2, True, True), (3, True, True)])
def test_heads_equal_the_loop_reference(heads, causal, self_attention):
    rng = random.Random(heads * 10 + causal)
    D = 12
    keys = _random(5, D, rng)
    values = _random(5, D, rng)
    queries = keys if self_attention else _random(2, D, rng)
    W = {name: _random(D, D, rng) for name in ("W_Q", "W_K", "W_V", "W_O")}
    step = explain_heads(None if self_attention else queries, keys,
                         None if self_attention else values, heads, causal, params=W)
    vals = keys if self_attention else values
    ref_heads, concat, output = reference_heads(queries, keys, vals, W, heads, causal)
    assert step.params == W and step.seed is None and step.head_dim == D // heads
    for got, (scores, weights, out) in zip(step.heads, ref_heads):
        _close(got.scores, scores)
        _close(got.weights, weights)
        _close(got.output, out)
    _close(step.concat, concat)
    _close(step.output, output)
    if causal:   # exactly zero, not merely small
        assert all(w == 0.0 for h in step.heads for t, row in enumerate(h.weights)
                   for s, w in enumerate(row) if s > t)
        assert all(h.weights[0][0] == 1.0 for h in step.heads)


def test_without_heads_the_vectors_are_read_as_they_are():
    keys = [[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]]
    step = explain_heads(None, keys, causal=True)
    eye = [[1.0, 0.0], [0.0, 1.0]]
    ref_heads, _, output = reference_heads(keys, keys, keys, dict.fromkeys(
        ("W_Q", "W_K", "W_V", "W_O"), eye), 1, True)
    _close(step.heads[0].weights, ref_heads[0][1])
    _close(step.output, output)
    assert not step.projected and step.params == {}
    # row 1: scores 0 and 1/√2 -> weights 1/(1+e^{1/√2}) and the rest, by hand
    w = 1 / (1 + math.exp(1 / math.sqrt(2)))
    _close(step.heads[0].weights[1], [w, 1 - w, 0.0])
    text = " ".join(describe_heads(step))
    assert "exactly 0" in text and "Position 0 sees only itself" in text


def test_seeded_matrices_are_reported_and_reproduce():
    keys = [[1.0, 0.0, 0.5, 0.0], [0.0, 1.0, 0.0, 0.5]]
    a = explain_heads([[1.0, 1.0, 0.0, 0.0]], keys, num_heads=2, seed=7)
    b = explain_heads([[1.0, 1.0, 0.0, 0.0]], keys, num_heads=2, params=a.params)
    assert a.seed == 7 and a.output == b.output
    ref = reference_heads([[1.0, 1.0, 0.0, 0.0]], keys, keys, a.params, 2, False)
    _close(a.output, ref[2])


def test_heads_prose_follows_the_numbers():
    # two heads built to look at different keys: W_K reverses the key entries for head 1 only
    eye = [[1.0 if i == j else 0.0 for j in range(4)] for i in range(4)]
    keys = [[3.0, 0.0, 3.0, 0.0], [0.0, 3.0, 0.0, 3.0]]
    w_k = [row[:] for row in eye]
    w_k[2], w_k[3] = [0.0, 0.0, 0.0, 1.0], [0.0, 0.0, 1.0, 0.0]
    step = explain_heads([[1.0, 0.0, 1.0, 0.0]], keys, num_heads=2,
                         params={"W_Q": eye, "W_K": w_k, "W_V": eye, "W_O": eye})
    tops = [h.weights[0].index(max(h.weights[0])) for h in step.heads]
    assert tops == [0, 1]
    text = " ".join(describe_heads(step))
    assert "Head 0, most weight: query 0 → #0" in text
    assert "Head 1, most weight: query 0 → #1" in text and "heads differ" in text


@pytest.mark.parametrize("dim, length", [(8, 10), (6, 7), (5, 4), (1, 3)])
def test_positions_equal_the_formula(dim, length):
    view = explain_positions(dim, length, seed=3)
    for pos in range(length):
        for k in range(dim):
            i = k // 2
            angle = pos / 10000 ** (2 * i / dim)
            expected = math.sin(angle) if k % 2 == 0 else math.cos(angle)
            assert math.isclose(view.table[pos][k], expected, rel_tol=1e-12, abs_tol=1e-12)
    dots = [[sum(a * b for a, b in zip(view.table[p], view.table[q])) for q in range(length)]
            for p in range(length)]
    _close(view.dots, dots)
    e, p = view.embedding, view.query_position
    x = [[e[k] + view.table[j][k] for k in range(dim)] for j in range(length)]
    with_pe = [sum(x[p][k] * x[j][k] for k in range(dim)) / math.sqrt(dim) for j in range(length)]
    _close(view.scores_with, with_pe)
    _close(view.weights_with, _softmax(with_pe))
    assert view.scores_without == [view.scores_without[0]] * length
    assert view.weights_without == [1 / length] * length or all(
        math.isclose(w, 1 / length, rel_tol=1e-15) for w in view.weights_without)
    text = " ".join(describe_positions(view))
    if dim % 2 == 0:
        assert "depends only on the distance" in text and f"D/2 = {dim / 2:g}" in text
    else:
        assert "is odd" in text and "depends only on the distance" not in text
    assert "weighs every position alike" in text


def test_positions_prose_names_the_closest_other_position():
    view = explain_positions(8, 10)
    text = " ".join(describe_positions(view))
    row = view.dots[0]
    far = max(range(1, 10), key=lambda k: row[k])
    assert f"The most similar other position is {far} away ({row[far]:.4f})" in text
    assert "Every position is most similar to itself" in text
    # D = 3 is odd: rows far from 0 are not most similar to themselves, and nothing is said
    odd = explain_positions(3, 60)
    assert any(odd.dots[a][b] >= odd.dots[a][a] for a in range(60) for b in range(60) if a != b)
    assert "most similar" not in " ".join(describe_positions(odd))
    one = " ".join(describe_positions(explain_positions(4, 1)))
    assert "nothing to tell apart" in one and "cannot tell" not in one


def test_json_outputs(capsys):
    assert run(["explain", "--positions", "--dim", "4", "--length", "3", "-f", "json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert len(doc["table"]) == 3 and len(doc["table"][0]) == 4
    assert run(["explain", "--self", "--causal", "-k", "1,0", "-k", "0,1", "-f", "json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["heads"][0]["scores"][0][1] is None and doc["heads"][0]["weights"][0] == [1, 0]
    assert run(["explain", "--num-heads", "2", "--query", "1,0", "-k", "1,0", "-k", "0,1",
                "--seed", "4", "-f", "json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["seed"] == 4 and set(doc["params"]) == {"W_Q", "W_K", "W_V", "W_O"}


def test_table_outputs(capsys):
    assert run(["explain", "--positions"]) == 0
    out = capsys.readouterr().out
    assert "PE (10 × 8)" in out and "PE(p) · PE(q)" in out
    assert run(["explain", "--self", "--causal", "-k", "1,0", "-k", "0,1", "-k", "1,1"]) == 0
    out = capsys.readouterr().out
    assert "−∞ → 0" in out and "masked (causal) self-attention" in out


def test_heads_from_a_file(tmp_path, capsys):
    eye = [[1.0, 0.0], [0.0, 1.0]]
    f = tmp_path / "mha.yaml"
    f.write_text(json.dumps({"query": [1, 0], "keys": [[1, 0], [0, 1]],
                             "params": {"W_Q": eye, "W_K": eye, "W_V": eye, "W_O": eye}}))
    assert run(["explain", "--num-heads", "1", "--file", str(f), "-f", "json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    w = 1 / (1 + math.exp(-1 / math.sqrt(2)))
    _close(doc["heads"][0]["weights"][0], [w, 1 - w])
    f.write_text(json.dumps({"query": [1, 0], "keys": [[1, 0]], "params": {"W_Q": [[1.0]]}}))
    assert run(["explain", "--num-heads", "1", "--file", str(f)]) == 2
    assert "has shape 1x1 but this attention needs 2x2" in capsys.readouterr().err


@pytest.mark.parametrize("args, message", [
    (["--causal", "--query", "1,0", "-k", "1,0"], "give --self with it"),
    (["--self", "--query", "1,0", "-k", "1,0"], "--self takes no query"),
    (["--self", "-k", "1,0", "--value", "2,0"], "--self takes no query and no values"),
    (["--num-heads", "0", "--query", "1,0", "-k", "1,0"], "must be a positive integer"),
    (["--positions", "--dim", "0"], "--dim must be a positive integer"),
    (["--self", "-k", "1,0", "--seed", "-1e30"], "seed"),
    (["--num-heads", "1", "--query", "1e200,0", "-k", "-1e200,0", "-k", "0,0", "-f", "json"],
     "overflows float64"),
    (["--num-heads", "3", "--query", "1,0", "-k", "1,0"], "cannot split evenly"),
    (["--num-heads", "2", "--query", "1,0", "-k", "1,0", "--score", "additive"],
     "scaled dot-product"),
    (["--positions", "--query", "1,0"], "does not take --query"),
    (["--length", "3"], "belong to --positions"),
    (["--positions", "--dim", "5000", "--length", "5000"], "more than explain shows"),
    (["--self"], "give the vectors with -k"),
])
def test_bad_combinations_are_one_line_errors(args, message, capsys):
    assert run(["explain", *args]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and message in err[0]


def test_library_checks():
    with pytest.raises(UsageError, match="same size"):
        explain_heads([[1.0, 0.0, 0.0]], [[1.0, 0.0]], num_heads=1)
    with pytest.raises(UsageError, match="need --num-heads"):
        explain_heads([[1.0, 0.0]], [[1.0, 0.0]], params={"W_Q": [[1, 0], [0, 1]]})
    with pytest.raises(UsageError, match="no parameter 'W'"):
        explain_heads([[1.0, 0.0]], [[1.0, 0.0]], num_heads=1, params={"W": [[1]]})
    with pytest.raises(UsageError, match="query position"):
        explain_positions(4, 3, query_position=3)
