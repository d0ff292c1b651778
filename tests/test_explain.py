"""`seqattn explain`: the worked example, parameterised scores, files, and bad vectors."""

import json
import math

import pytest

from seqattn.cli import run
from seqattn.errors import UsageError
from seqattn.explain import explain_step, parse_vector


def test_worked_example_through_the_library():
    step = explain_step([0.7, 0.3], [[1.0, 0.0], [0.5, 0.5], [0.0, 1.0]])
    assert step.scores == pytest.approx([0.7, 0.5, 0.3], abs=1e-12)
    assert step.weights == pytest.approx([0.4018, 0.3289, 0.2693], abs=5e-5)
    # The background text prints [0.5663, 0.4337] because it rounds the weights to 4 places
    # before averaging; the exact context is 0.566226..., within 1e-4 of it.
    assert step.context == pytest.approx([0.5663, 0.4337], abs=1e-4)
    assert step.context == pytest.approx([0.566226, 0.433774], abs=1e-6)


def test_worked_example_is_the_default_and_json_parses(capsys):
    assert run(["explain", "--format", "json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["scores"] == pytest.approx([0.7, 0.5, 0.3])
    assert [round(w, 4) for w in data["weights"]] == [0.4018, 0.3289, 0.2693]
    assert data["score"] == "dot" and data["params"] == {} and data["seed"] is None


def test_table_shows_weights_and_context(capsys):
    assert run(["explain"]) == 0
    out = capsys.readouterr().out
    for text in ("0.4018", "0.3289", "0.2693", "context", "[0.5663, 0.4337]"):
        assert text in out


def test_scaled_dot_divides_by_sqrt_d(capsys):
    assert run(["explain", "--query", "1,1,1,1", "-k", "1,0,0,0", "-k", "2,2,2,2",
                "--score", "scaled-dot", "-f", "json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["scores"] == pytest.approx([0.5, 4.0])
    e = [math.exp(0.5), math.exp(4.0)]
    assert data["weights"] == pytest.approx([e[0] / sum(e), e[1] / sum(e)])


def test_additive_with_given_params_matches_hand_computation():
    W, U, v = [[1.0, 0.0], [0.0, 2.0]], [[0.5, 0.5], [-1.0, 0.0]], [1.0, -1.0]
    q, keys, values = [0.2, -0.4], [[1.0, 2.0], [-1.0, 0.5]], [[3.0], [5.0]]
    step = explain_step(q, keys, values, score="additive", params={"W": W, "U": U, "v": v})

    def hand(k):
        hidden = [math.tanh(sum(W[a][i] * q[i] for i in range(2)) +
                            sum(U[a][j] * k[j] for j in range(2))) for a in range(2)]
        return sum(v[a] * hidden[a] for a in range(2))

    scores = [hand(k) for k in keys]
    z = sum(math.exp(s) for s in scores)
    weights = [math.exp(s) / z for s in scores]
    assert step.scores == pytest.approx(scores, abs=1e-12)
    assert step.context == pytest.approx([weights[0] * 3.0 + weights[1] * 5.0], abs=1e-12)
    assert step.params == {"W": W, "U": U, "v": v} and step.seed is None


def test_general_with_given_matrix():
    step = explain_step([1.0, 2.0], [[3.0, 4.0, 5.0]], score="general",
                        params={"W": [[1.0, 0.0, 0.0], [0.0, 1.0, 1.0]]})
    assert step.scores == pytest.approx([1 * 3 + 2 * (4 + 5)])
    assert step.weights == [1.0]


def test_seeded_params_are_reproducible_and_reported():
    a = explain_step([1.0, 0.0], [[0.0, 1.0], [1.0, 1.0]], score="concat", seed=7)
    b = explain_step([1.0, 0.0], [[0.0, 1.0], [1.0, 1.0]], score="concat", seed=7)
    c = explain_step([1.0, 0.0], [[0.0, 1.0], [1.0, 1.0]], score="concat", seed=8)
    assert a == b and a.scores != c.scores and a.seed == 7
    again = explain_step([1.0, 0.0], [[0.0, 1.0], [1.0, 1.0]], score="concat", params=a.params)
    assert again.scores == pytest.approx(a.scores, abs=1e-12)


def test_gaussian_kernel_weights():
    step = explain_step([0.0], [[0.0], [1.0], [2.0]], score="gaussian")
    kernel = [math.exp(-x * x / 2) for x in (0.0, 1.0, 2.0)]
    assert step.weights == pytest.approx([k / sum(kernel) for k in kernel])


def test_file_input_json_and_yaml(tmp_path, capsys):
    (tmp_path / "s.json").write_text(json.dumps({"query": [0.7, 0.3], "keys": [[1, 0], [0, 1]]}))
    (tmp_path / "s.yaml").write_text("query: [0.7, 0.3]\nkeys:\n  - [1, 0]\n  - [0, 1]\n"
                                     "score: scaled-dot\n")
    assert run(["explain", "--file", str(tmp_path / "s.json"), "-f", "json"]) == 0
    assert json.loads(capsys.readouterr().out)["scores"] == pytest.approx([0.7, 0.3])
    assert run(["explain", "--file", str(tmp_path / "s.yaml"), "-f", "json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["score"] == "scaled_dot"
    assert out["scores"] == pytest.approx([0.7 / math.sqrt(2), 0.3 / math.sqrt(2)])


@pytest.mark.parametrize("args, message", [
    (["--query", "1,x", "-k", "1,0"], "--query holds 'x', which is not a number"),
    (["--query", "1,nan", "-k", "1,0"], "only finite numbers"),
    (["--query", "", "-k", "1,0"], "--query is empty"),
    (["--query", "1,0", "-k", "1,0", "-k", "1"], "ragged"),
    (["--query", "1,0,0", "-k", "1,0"], "needs the query and the keys to have the same size"),
    (["--query", "1,0", "-k", "1,0", "--value", "1", "--value", "2"], "2 values"),
    (["-k", "1,0"], "no query given"),
    (["--query", "1,0"], "no keys given"),
    (["--file", "missing.yaml"], "does not exist"),
])
def test_bad_vectors_one_line_exit_2(args, message, capsys):
    assert run(["explain", *args]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and message in lines[0]


@pytest.mark.parametrize("content, message", [
    ("query: [1, 0]\nkeys: [[1, 0]]\nscore: additive\nparams: {W: [[1, 0]]}\n", "shape 1x2"),
    ("query: [1, 0]\nkeys: [[1, 0]]\nscore: dot\nparams: {W: [[1]]}\n", "has no parameter 'W'"),
    ("query: [1, 0]\nkeys: 3\n", "non-empty list of vectors"),
    ("query: [1, 0]\nkeys: [[1, 0]]\nkye: 1\n", "unknown key 'kye'"),
    ("[1, 2]\n", "must hold a mapping"),
    ("query: [1, 0\n", "neither valid JSON nor YAML"),
])
def test_bad_files(tmp_path, content, message, capsys):
    path = tmp_path / "bad.yaml"
    path.write_text(content)
    assert run(["explain", "--file", str(path)]) == 2
    assert message in capsys.readouterr().err


def test_parse_vector_forms():
    assert parse_vector("[0.7, 0.3]", "q") == [0.7, 0.3]
    assert parse_vector("0.7 -0.3", "q") == [0.7, -0.3]
    with pytest.raises(UsageError):
        parse_vector("[]", "q")


# ---------------------------------------------------------------- overflow: one line, exit 2

def _one_error_line(capsys) -> str:
    captured = capsys.readouterr()
    assert captured.out == ""
    assert "internal error" not in captured.err and "Traceback" not in captured.err
    lines = [line for line in captured.err.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), captured.err
    return lines[0]


@pytest.mark.parametrize("args, message", [
    (["--query", "1e308,1", "-k", "1e308,0", "-k", "0,1"], "dot score (qᵀk) of key #0 overflows"),
    (["--query", "1e308,1", "-k", "1e308,0", "-k", "0,1", "-f", "json"], "of key #0 overflows"),
    (["--query", "1e308,1e308", "-k", "1e308,1e308", "-k", "0,1", "-s", "scaled-dot"],
     "scaled-dot score (qᵀk) of key #0 overflows"),
    (["--query", "1e308,1e308", "-k", "1e308,1e308", "-k", "0,1", "-s", "general"],
     "general score"),                                     # 1e308·w·1e308 - ... = NaN
    (["--query", "1e200,1", "-k", "-1e200,0", "-k", "0,1", "-s", "gaussian"],
     "gaussian score (‖q − k‖²) of keys #0, #1 overflow"),
    (["--query", "1e200,1", "-k", "1e200,0", "-k", "0,1", "-s", "gaussian"], "of key #1"),
    (["--query", "inf,1", "-k", "1,0"], "--query holds 'inf'; only finite numbers"),
    (["--query", "1,-inf", "-k", "1,0"], "only finite numbers"),
    (["--query", "1,1", "-k", "nan,0"], "--key #0 holds 'nan'"),
    (["--query", "1e309,1", "-k", "1,0"], "'1e309', which overflows float64"),
    (["--query", "1,0", "-k", "1,0", "--value", "1e400"], "--value #0 holds '1e400'"),
    (["-s", "concat", "--seed", str(2**64)], "out of range"),
    (["-s", "additive", "--attn-dim", str(10**20)], "would need 5e+20 parameters"),
])
def test_overflowing_flags_give_one_error_line_exit_2(args, message, capsys):
    assert run(["explain", *args]) == 2
    line = _one_error_line(capsys)
    assert message in line
    if "score" in message:
        assert "use smaller numbers" in line


@pytest.mark.parametrize("name, content, message", [
    ("big.json", '{"query": [1e309, 1], "keys": [[1, 0]]}', "'1e309', which overflows"),
    ("nan.json", '{"query": [NaN, 1], "keys": [[1, 0]]}', "only finite numbers"),
    ("dot.json", '{"query": [1e200, 1], "keys": [[1e200, 0], [0, 1]]}',
     "dot score (qᵀk) of key #0 overflows"),
    ("inf.yaml", "query: [.inf, 1]\nkeys: [[1, 0]]\n", "only finite numbers"),
    ("e400.yaml", "query: [1.0e+400, 1]\nkeys: [[1, 0]]\n", "overflow float64 to inf"),
    ("int.yaml", f"query: [1{'0' * 400}, 1]\nkeys: [[1, 0]]\n", "too large for float64"),
    ("digits.yaml", f"query: [1{'0' * 5000}, 1]\nkeys: [[1, 0]]\n", "more than 4300 digits"),
    ("general.yaml", "query: [1, 1]\nkeys: [[1, 0]]\nscore: general\n"
     "params: {W: [[1.0e+308, 1.0e+308], [1.0e+308, 1.0e+308]]}\n", "general score"),
    # tanh(inf) = 1 would hide these: the score comes out finite, but W q + U k overflowed
    ("additive.yaml", "query: [1.0e+308, 1.0e+308]\nkeys: [[1, 0], [0, 1]]\nscore: additive\n"
     "params: {W: [[2, 2], [1, 0]], U: [[1, 0], [0, 1]], v: [1, 1]}\n",
     "computing the additive score overflows float64 (W q + U k"),
    ("concat.yaml", "query: [1.0e+308, 1.0e+308]\nkeys: [[1, 0], [0, 1]]\nscore: concat\n"
     "params: {W: [[2, 2, 0, 0], [1, 0, 1, 1]], v: [1, 1]}\n",
     "computing the concat score overflows float64 (W [q; k]"),
    ("seed.yaml", f"query: [1, 1]\nkeys: [[1, 0]]\nscore: concat\nseed: {10**30}\n",
     "out of range"),
    ("dim.yaml", "query: [1, 1]\nkeys: [[1, 0]]\nscore: concat\nattn_dim: 2.5\n",
     "attn_dim must be a positive integer"),
    ("score.yaml", "query: [1, 1]\nkeys: [[1, 0]]\nscore: 3\n", "unknown score 3"),
])
@pytest.mark.parametrize("fmt", ["table", "json"])
def test_overflowing_files_give_one_error_line_exit_2(tmp_path, name, content, message, fmt,
                                                       capsys):
    (tmp_path / name).write_text(content)
    assert run(["explain", "--file", str(tmp_path / name), "-f", fmt]) == 2
    assert message in _one_error_line(capsys)


@pytest.mark.parametrize("score, query, keys", [
    ("dot", [1e308, 1.0], [[1e308, 0.0], [0.0, 1.0]]),
    ("scaled_dot", [1e308, 1.0], [[1e308, 0.0], [0.0, 1.0]]),
    ("general", [1e308, 1e308], [[1e308, 1e308], [0.0, 1.0]]),
    ("gaussian", [1e200, 1.0], [[-1e200, 0.0], [0.0, 1.0]]),
])
def test_library_raises_usage_error_for_overflowing_scores(score, query, keys):
    with pytest.raises(UsageError, match="overflow"):
        explain_step(query, keys, score=score)


def _strict_json(text: str) -> dict:
    def refuse(constant):
        raise AssertionError(f"{constant} is not JSON")
    return json.loads(text, parse_constant=refuse)


@pytest.mark.parametrize("args", [
    ["--query", "1e154,1", "-k", "1e154,0", "-k", "0,1"],          # score 1e308: still finite
    ["--query", "1000,0", "-k", "1,0", "-k", "0,1"],                # weight exp(-1000) = 0
    ["--query", "1e308,1", "-k", "1e308,0", "-k", "0,1", "-s", "concat"],   # tanh saturates
    ["--query", "1,0", "-k", "1,0", "-k", "1,0", "--value", "1.7e308", "--value", "1.7e308"],
])
def test_huge_but_well_defined_inputs_give_strict_json(args, capsys):
    assert run(["explain", *args, "-f", "json"]) == 0
    data = _strict_json(capsys.readouterr().out)
    for numbers in (data["scores"], data["weights"], data["context"]):
        assert all(math.isfinite(x) for x in numbers)
    assert sum(data["weights"]) == pytest.approx(1.0)


def test_huge_but_well_defined_inputs_are_exact():
    step = explain_step([1e154, 1.0], [[1e154, 0.0], [0.0, 1.0]])
    assert step.scores == pytest.approx([1e308, 1.0]) and step.weights == [1.0, 0.0]
    step = explain_step([0.0, 0.0], [[1e150, 1e150], [1.0, 1.0]], values=[[1.7e308], [1.0]],
                        score="gaussian")                 # scores -1e300 and -1: weights 0, 1
    assert step.weights == [0.0, 1.0] and step.context == [1.0]


def test_step_to_json_refuses_nan():
    from dataclasses import replace

    from seqattn.explain import step_to_json

    step = explain_step([1.0], [[1.0]])
    assert _strict_json(step_to_json(step))["weights"] == [1.0]
    with pytest.raises(ValueError):
        step_to_json(replace(step, scores=[float("nan")]))


# ---------------------------------------------------------------- the prose follows the numbers

def _hand_weights(score: str, q: list[float], keys: list[list[float]], p: dict) -> list[float]:
    """The six scores and the softmax in plain Python, independently of seqattn."""
    def dot(a, b):
        return sum(x * y for x, y in zip(a, b))

    def mat(m, x):
        return [dot(row, x) for row in m]

    def one(k):
        if score == "dot":
            return dot(q, k)
        if score == "scaled_dot":
            return dot(q, k) / math.sqrt(len(k))
        if score == "general":
            return dot(q, mat(p["W"], k))
        if score == "concat":
            return dot(p["v"], [math.tanh(h) for h in mat(p["W"], q + k)])
        if score == "additive":
            return dot(p["v"], [math.tanh(a + b) for a, b in zip(mat(p["W"], q), mat(p["U"], k))])
        return -sum((a - b) ** 2 for a, b in zip(q, k)) / 2     # gaussian

    scores = [one(k) for k in keys]
    top = max(scores)
    e = [math.exp(s - top) for s in scores]
    return [x / sum(e) for x in e]


def _flags(q, keys):
    return ["--query", ",".join(map(str, q))] + [a for k in keys
                                                 for a in ("-k", ",".join(map(str, k)))]


Q3 = [0.6, -0.2, 0.9]
K3 = [[0.1, 0.8, -0.4], [0.5, 0.5, 0.5], [-0.7, 0.2, 0.3], [0.9, -0.6, 0.1]]


@pytest.mark.parametrize("score, extra, q, keys", [
    ("dot", [], Q3, K3),
    ("dot", [], [0.7, 0.3], [[0.0, 1.0], [1.0, 0.0], [0.5, 0.5]]),
    ("scaled_dot", [], Q3, K3),
    ("scaled_dot", [], [0.1, 0.9], [[1.0, 0.0], [0.5, 0.5], [0.0, 1.0]]),
    ("gaussian", [], Q3, K3),
    ("gaussian", [], [0.7, 0.3], [[1.0, 0.0], [0.5, 0.5], [0.0, 1.0]]),
    *[("general", ["--seed", str(s)], Q3, K3) for s in (2, 4, 5)],
    *[("concat", ["--seed", str(s)], Q3, K3) for s in (0, 1, 2)],
    *[("additive", ["--seed", str(s)], Q3, K3) for s in (0, 2, 3)],
    ("additive", ["--seed", "5", "--attn-dim", "5"], [1.0, 2.0], [[1.0, 0.0], [0.0, 1.0]]),
])
def test_summary_names_the_key_with_the_most_weight(score, extra, q, keys, capsys):
    args = ["explain", *_flags(q, keys), "-s", score.replace("_", "-"), *extra]
    assert run([*args, "-f", "json"]) == 0
    params = json.loads(capsys.readouterr().out)["params"]
    weights = _hand_weights(score, q, keys, params)
    best = max(range(len(weights)), key=weights.__getitem__)
    assert best != 0 and sorted(weights)[-1] - sorted(weights)[-2] > 1e-3  # a clear winner
    assert run(args) == 0
    out = " ".join(capsys.readouterr().out.split())
    assert f"Key #{best} gets the most weight ({weights[best]:.4f})." in out
    assert out.count("gets the most weight") == 1 and "first" not in out


@pytest.mark.parametrize("score, extra", [
    ("dot", []), ("scaled-dot", []), ("gaussian", []),
    *[(s, ["--seed", str(seed)]) for s in ("general", "concat", "additive") for seed in range(4)],
    ("additive", ["--attn-dim", "7", "--seed", "3"]),
])
def test_walkthrough_prose_follows_the_weights(score, extra, capsys):
    assert run(["explain", "-s", score, *extra, "-f", "json"]) == 0
    data = json.loads(capsys.readouterr().out)
    q, keys = data["query"], data["keys"]
    weights = _hand_weights(data["score"], q, keys, data["params"])
    best = max(range(3), key=weights.__getitem__)
    assert run(["explain", "-s", score, *extra]) == 0
    out = " ".join(capsys.readouterr().out.split())
    assert f"Key #{best} gets the most weight ({weights[best]:.4f})" in out  # "." or ", just"
    assert "first state" not in out and "mixes all three values" in out
    assert f"Try --score {score} " not in out and f"or --score {score}," not in out
    # the hand-rounded figure belongs to the dot example only
    assert ("hand-worked" in out) == (score == "dot")


def test_gaussian_walkthrough_is_won_by_the_middle_state(capsys):
    assert run(["explain", "-s", "gaussian"]) == 0
    out = " ".join(capsys.readouterr().out.split())
    assert "Key #1 gets the most weight (0.3863)." in out


@pytest.mark.parametrize("args, sentence", [
    (["--query", "1,1", "-k", "1,0", "-k", "0,1", "-k", "0,0"],
     "Keys #0 and #1 tie for the most weight (0.4223 each)."),
    (["--query", "1,1", "-k", "1,0", "-k", "0,1", "-k", "0.5,0.5"],
     "All 3 keys get the same weight (0.3333 each)."),
    (["--query", "0", "-k", "1", "-k", "-1", "-s", "gaussian"],
     "Both keys get the same weight (0.5000 each)."),
    (["--query", "0", "-k", "3", "-k", "-3", "-k", "0.5", "-s", "gaussian"],
     "Key #2 gets the most weight"),
    (["--query", "1,0", "-k", "1,0", "-k", "0,1", "-k", "0.5,0.5", "-s", "concat",
      "--seed", "1"], "Key #"),
    (["--query", "1", "-k", "5"], "There is only one key, so key #0 gets all the weight (1.0000)."),
    (["--query", "1000,0", "-k", "1,0", "-k", "0,1", "-k", "1.00000001,0"],
     "Key #2 gets the most weight (0.5000), just ahead of key #0 (by 5.0e-06). Key #1 gets no "
     "weight at all"),
])
def test_summary_states_ties_and_near_ties(args, sentence, capsys):
    assert run(["explain", *args]) == 0
    out = " ".join(capsys.readouterr().out.split())
    assert sentence in out


def test_concat_formula_is_printed_whole(capsys):
    assert run(["explain", "-s", "concat"]) == 0
    assert "score(q, k) = vᵀ tanh(W [q; k])" in capsys.readouterr().out


def test_top_keys_and_summary_in_the_library():
    from seqattn.explain import summarise, top_keys

    assert top_keys([0.2, 0.5, 0.3]) == [1]
    assert top_keys([0.4, 0.2, 0.4 * (1 + 1e-12)]) == [0, 2]
    step = explain_step([0.0, 1.0], [[1.0, 0.0], [0.0, 1.0], [0.0, 2.0]], score="gaussian")
    assert step.weights.index(max(step.weights)) == 1
    assert summarise(step).startswith("Key #1 gets the most weight")
