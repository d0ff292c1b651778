"""One attention step, computed in the open for learners (``seqattn explain``).

Given a query, keys (and optionally values) and a score function, :func:`explain_step` returns
each key's score, its softmax weight and the context vector, through the same
:mod:`seqattn.attention` code the models use, in float64. Parameterised scores (general, concat,
additive) take their matrices from ``params`` or draw them from a seed; either way the matrices
used are returned, so a result can always be reproduced.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from seqattn.errors import UsageError

#: The worked example of our background reading: one decoder query against three encoder states.
WORKED_EXAMPLE: dict[str, Any] = {
    "query": [0.7, 0.3],
    "keys": [[1.0, 0.0], [0.5, 0.5], [0.0, 1.0]],
    "score": "dot",
}

FORMULAS = {
    "dot": "score(q, k) = qᵀk",
    "scaled_dot": "score(q, k) = qᵀk / √d",
    "general": "score(q, k) = qᵀ W k",
    "concat": "score(q, k) = vᵀ tanh(W [q; k])",
    "additive": "score(q, k) = vᵀ tanh(W q + U k)",
    "gaussian": "score(q, k) = −‖q − k‖² / 2",
}

# Public parameter names (as the papers write them) -> parameter names inside the score module.
PARAM_NAMES = {
    "general": {"W": "w.weight"},
    "concat": {"W": "w.weight", "v": "v.weight"},
    "additive": {"W": "w_q.weight", "U": "w_k.weight", "v": "v.weight"},
}


@dataclass(frozen=True)
class Step:
    """The result of one attention step (plain Python numbers, ready for JSON)."""

    score: str
    formula: str
    query: list[float]
    keys: list[list[float]]
    values: list[list[float]]
    scores: list[float]
    weights: list[float]
    context: list[float]
    params: dict[str, Any]
    seed: int | None


def normalise_score(name: str) -> str:
    key = name.strip().lower().replace("-", "_")
    if key not in FORMULAS:
        choices = ", ".join(k.replace("_", "-") for k in FORMULAS)
        raise UsageError(f"unknown score '{name}'; choose one of: {choices}")
    return key


def parse_vector(text: str, what: str) -> list[float]:
    """``'0.7,0.3'``, ``'0.7 0.3'`` or ``'[0.7, 0.3]'`` -> ``[0.7, 0.3]``."""
    parts = [p for p in text.strip().strip("[]").replace(",", " ").split() if p]
    if not parts:
        raise UsageError(f"{what} is empty; give numbers separated by commas, e.g. 0.7,0.3")
    return check_vector([_number(p, what) for p in parts], what)


def _number(token: Any, what: str) -> float:
    if isinstance(token, bool):
        raise UsageError(f"{what} holds {token!r}, which is not a number")
    try:
        value = float(token)
    except (TypeError, ValueError):
        raise UsageError(f"{what} holds {token!r}, which is not a number") from None
    if not math.isfinite(value):
        raise UsageError(f"{what} holds {token!r}; only finite numbers are allowed")
    return value


def check_vector(value: Any, what: str) -> list[float]:
    if not isinstance(value, (list, tuple)) or not value:
        raise UsageError(f"{what} must be a non-empty list of numbers, got {value!r}")
    return [_number(v, what) for v in value]


def check_matrix(rows: Any, what: str) -> list[list[float]]:
    """A non-empty list of equally long vectors."""
    if not isinstance(rows, (list, tuple)) or not rows:
        raise UsageError(f"{what} must be a non-empty list of vectors")
    out = [check_vector(r, f"{what} #{i}") for i, r in enumerate(rows)]
    dims = {len(r) for r in out}
    if len(dims) > 1:
        raise UsageError(f"{what} are ragged: their lengths are {[len(r) for r in out]}; "
                         "every vector must have the same number of entries")
    return out


def load_problem(path: str | Path) -> dict[str, Any]:
    """Read ``query``, ``keys`` and optional ``values``, ``score``, ``params``, ``attn_dim``,
    ``seed`` from a JSON or YAML file."""
    import yaml

    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise UsageError(f"file '{path}' does not exist") from None
    except IsADirectoryError:
        raise UsageError(f"'{path}' is a directory; give a JSON or YAML file") from None
    except UnicodeDecodeError:
        raise UsageError(f"file '{path}' is not UTF-8 text") from None
    except OSError as e:  # a path through a regular file, EIO, permission denied, ...
        raise UsageError(f"cannot read file '{path}': {e.strerror or e}") from None
    try:  # YAML is a superset of JSON, so one parser reads both
        data = yaml.safe_load(text)
    except yaml.YAMLError as e:
        raise UsageError(f"file '{path}' is neither valid JSON nor YAML: "
                         f"{getattr(e, 'problem', None) or e}") from None
    if not isinstance(data, dict):
        raise UsageError(f"file '{path}' must hold a mapping with 'query' and 'keys'")
    allowed = {"query", "keys", "values", "score", "params", "attn_dim", "seed"}
    unknown = sorted(set(data) - allowed)
    if unknown:
        raise UsageError(f"file '{path}': unknown key '{unknown[0]}'; "
                         f"valid keys: {', '.join(sorted(allowed))}")
    return data


def explain_step(query: list[float], keys: list[list[float]],
                 values: list[list[float]] | None = None, score: str = "dot",
                 params: dict[str, Any] | None = None, seed: int = 0,
                 attn_dim: int | None = None) -> Step:
    """Score ``query`` against ``keys``, softmax, and average ``values`` (default: the keys)."""
    import torch

    from seqattn.attention import attend, build_score

    name = normalise_score(score)
    query = check_vector(query, "the query")
    keys = check_matrix(keys, "the keys")
    values = keys if values is None else check_matrix(values, "the values")
    dq, dk = len(query), len(keys[0])
    if len(values) != len(keys):
        raise UsageError(f"there are {len(keys)} keys but {len(values)} values; "
                         "give one value per key")
    if name in ("dot", "scaled_dot", "gaussian") and dq != dk:
        raise UsageError(f"the {name.replace('_', '-')} score needs the query and the keys to have "
                         f"the same size; the query has {dq} entries, the keys {dk}")
    if attn_dim is not None and attn_dim < 1:
        raise UsageError(f"attn_dim must be a positive integer, got {attn_dim}")
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        module = build_score(name, dq, dk, attn_dim).double()
    used = _load_params(module, name, params or {})
    q = torch.tensor([[query]], dtype=torch.float64)               # (1, 1, Dq)
    k = torch.tensor([keys], dtype=torch.float64)                  # (1, S, Dk)
    v = torch.tensor([values], dtype=torch.float64)                # (1, S, Dv)
    with torch.no_grad():
        scores = module(q, module.prepare(k))                      # (1, 1, S)
        context, weights = attend(scores, v)                       # (1, 1, Dv), (1, 1, S)
    return Step(score=name, formula=FORMULAS[name], query=query, keys=keys, values=values,
                scores=scores[0, 0].tolist(), weights=weights[0, 0].tolist(),
                context=context[0, 0].tolist(), params=used,
                seed=seed if name in PARAM_NAMES and not params else None)


def _load_params(module: Any, name: str, given: dict[str, Any]) -> dict[str, Any]:
    """Copy user-given matrices into ``module``; return every matrix in use, by public name."""
    import torch

    names = PARAM_NAMES.get(name, {})
    if not isinstance(given, dict):
        raise UsageError("params must be a mapping such as {W: [[...]], v: [...]}")
    for public in given:
        if public not in names:
            valid = ", ".join(names) if names else "none (this score has no parameters)"
            raise UsageError(f"the {name} score has no parameter '{public}'; valid: {valid}")
    state = dict(module.named_parameters())
    used: dict[str, Any] = {}
    for public, internal in names.items():
        tensor = state[internal]
        if public in given:
            raw = given[public]
            if public == "v" and raw and not isinstance(raw[0], (list, tuple)):
                raw = [raw]                                        # v is a row vector (1, A)
            matrix = check_matrix(raw, f"parameter {public}")
            shape = (len(matrix), len(matrix[0]))
            if shape != tuple(tensor.shape):
                raise UsageError(f"parameter {public} has shape {shape[0]}x{shape[1]} but this "
                                 f"score needs {tensor.shape[0]}x{tensor.shape[1]}")
            with torch.no_grad():
                tensor.copy_(torch.tensor(matrix, dtype=torch.float64))
        value = tensor.detach().tolist()
        used[public] = value[0] if public == "v" else value
    return used


def step_to_json(step: Step) -> str:
    from dataclasses import asdict

    return json.dumps(asdict(step), ensure_ascii=False)
