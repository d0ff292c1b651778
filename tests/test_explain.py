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
