"""One attention step, computed in the open for learners (``seqattn explain``).

Given a query, keys (and optionally values) and a score function, :func:`explain_step` returns
each key's score, its softmax weight and the context vector, through the same
:mod:`seqattn.attention` code the models use, in float64. Parameterised scores (general, concat,
additive) take their matrices from ``params`` or draw them from a seed; either way the matrices
used are returned, so a result can always be reproduced.

Every number that comes back is finite: an input whose scores, an intermediate value or the
context overflow float64 (about 1.8e308) raises :class:`~seqattn.errors.UsageError` instead of
returning inf or NaN. :func:`summarise` turns a step into sentences that only state what its
numbers show (which key gets the most weight, ties as ties).
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

#: The largest number of parameter entries explain builds (80 MB of float64): enough for any
#: step worth reading, and a clear error instead of an allocation failure for a typo'd attn_dim.
MAX_PARAMETERS = 10_000_000

#: Weights this close (relative) are one weight computed twice with different rounding: a tie.
TIE_REL_TOL = 1e-9

_SEED_RANGE = (-(2**63), 2**64 - 1)  # what torch.manual_seed accepts

# What can overflow inside each score, named as in its formula.
_INNER = {"dot": "qᵀk", "scaled_dot": "qᵀk", "general": "qᵀ W k", "concat": "W [q; k]",
          "additive": "W q + U k", "gaussian": "‖q − k‖²"}


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
    key = name.strip().lower().replace("-", "_") if isinstance(name, str) else None
    if key not in FORMULAS:
        choices = ", ".join(k.replace("_", "-") for k in FORMULAS)
        raise UsageError(f"unknown score {_show(name)}; choose one of: {choices}")
    return key


def _label(name: str) -> str:
    """``scaled_dot`` -> ``scaled-dot``, as the flag spells it."""
    return name.replace("_", "-")


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
    except OverflowError:  # an integer beyond float64, e.g. 1000...0 (400 digits) in a YAML file
        raise UsageError(f"{what} holds {_show(token)}, which is too large for float64 (the "
                         "largest is about 1.8e308); use smaller numbers") from None
    except (TypeError, ValueError):
        raise UsageError(f"{what} holds {_show(token)}, which is not a number") from None
    if math.isinf(value) and "inf" not in str(token).lower():  # '1e309' overflows to inf
        raise UsageError(f"{what} holds {_show(token)}, which overflows float64 (the largest "
                         "number is about 1.8e308); use smaller numbers")
    if math.isinf(value):  # YAML reads 1.0e+400 as inf itself
        raise UsageError(f"{what} holds {_show(token)}; only finite numbers are allowed "
                         "(numbers beyond about 1.8e308 overflow float64 to inf)")
    if math.isnan(value):
        raise UsageError(f"{what} holds {_show(token)}; only finite numbers are allowed")
    return value


def _show(token: Any) -> str:
    """``repr`` for an error message, cut short (a YAML integer may have hundreds of digits)."""
    try:
        text = str(token) if isinstance(token, int) else repr(token)
    except ValueError:  # an int beyond Python's 4300-digit str() limit
        return "a huge integer"
    return text if len(text) <= 40 else text[:30] + "…" + text[-8:]


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
    except ValueError as e:  # a YAML value Python cannot build: a 5000-digit integer, 2001-13-45
        reason = ("a number with more than 4300 digits; use smaller numbers"
                  if "digits" in str(e) else str(e).split(";")[0])
        raise UsageError(f"file '{path}' holds a value that cannot be read: {reason}") from None
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
    _check_sizes(name, dq, dk, attn_dim)
    check_seed(seed)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        module = build_score(name, dq, dk, attn_dim).double()
    used = _load_params(module, name, params or {})
    q = torch.tensor([[query]], dtype=torch.float64)               # (1, 1, Dq)
    k = torch.tensor([keys], dtype=torch.float64)                  # (1, S, Dk)
    v = torch.tensor([values], dtype=torch.float64)                # (1, S, Dv)
    watch = _overflow_watch()
    with torch.no_grad():
        with watch:  # tanh turns an overflowed W q + U k back into a finite, wrong score
            scores = module(q, module.prepare(k))                  # (1, 1, S)
        _check_scores(name, scores[0, 0].tolist(), watch.overflowed)
        context, weights = attend(scores, v)                       # (1, 1, Dv), (1, 1, S)
    _check_finite(weights[0, 0].tolist(), "the softmax weights")
    _check_finite(context[0, 0].tolist(), "the context vector (Σ weight · value)")
    return Step(score=name, formula=FORMULAS[name], query=query, keys=keys, values=values,
                scores=scores[0, 0].tolist(), weights=weights[0, 0].tolist(),
                context=context[0, 0].tolist(), params=used,
                seed=seed if name in PARAM_NAMES and not params else None)


def check_seed(seed: Any) -> None:
    """:raises UsageError: ``seed`` is not an integer torch can seed with."""
    if not isinstance(seed, int) or isinstance(seed, bool):
        raise UsageError(f"seed must be an integer, got {_show(seed)}")
    if not _SEED_RANGE[0] <= seed <= _SEED_RANGE[1]:
        raise UsageError(f"seed {_show(seed)} is out of range; use an integer from "
                         f"{_SEED_RANGE[0]} to {_SEED_RANGE[1]}")


def _check_sizes(name: str, dq: int, dk: int, attn_dim: Any) -> None:
    """attn_dim is a positive integer, and the matrices it asks for fit in MAX_PARAMETERS."""
    if attn_dim is not None and (not isinstance(attn_dim, int) or isinstance(attn_dim, bool)
                                 or attn_dim < 1):
        raise UsageError(f"attn_dim must be a positive integer, got {_show(attn_dim)}")
    a = dk if attn_dim is None else attn_dim
    count = {"general": dq * dk, "concat": a * (dq + dk) + a,
             "additive": a * dq + a * dk + a}.get(name, 0)
    if count > MAX_PARAMETERS:
        raise UsageError(f"the {_label(name)} score would need {count:.3g} parameters (attn_dim "
                         f"{_show(a)}), more than the {MAX_PARAMETERS:,} explain builds; "
                         "use a smaller attn_dim or shorter vectors")


def _overflow_watch() -> Any:
    """A torch function mode whose ``overflowed`` turns True when any operation run under it
    returns inf or NaN (built here, not at import time, so ``--help`` never imports torch)."""
    import torch
    from torch.overrides import TorchFunctionMode

    class WatchOverflow(TorchFunctionMode):
        overflowed = False

        def __torch_function__(self, func, types, args=(), kwargs=None):
            out = func(*args, **(kwargs or {}))  # the mode is off in here: no recursion
            if (isinstance(out, torch.Tensor) and out.is_floating_point()
                    and not bool(torch.isfinite(out).all())):
                self.overflowed = True
            return out

    return WatchOverflow()


def _check_scores(name: str, scores: list[float], overflowed: bool) -> None:
    """Raise UsageError if a score, or a value on the way to it, is not a finite float64."""
    where = "the query, keys or parameters" if name in PARAM_NAMES else "the query and keys"
    bad = [i for i, s in enumerate(scores) if not math.isfinite(s)]
    if bad:
        whose = (f"key #{bad[0]}" if len(bad) == 1
                 else "keys " + ", ".join(f"#{i}" for i in bad[:5]) + (", …" if len(bad) > 5
                                                                       else ""))
        verb = "overflows" if len(bad) == 1 else "overflow"
        raise UsageError(f"the {_label(name)} score ({_INNER[name]}) of {whose} {verb} float64 "
                         f"(it came out as {scores[bad[0]]}; the largest number is about "
                         f"1.8e308); use smaller numbers in {where}")
    if overflowed:
        raise UsageError(f"computing the {_label(name)} score overflows float64 ({_INNER[name]} "
                         "goes beyond about 1.8e308 on the way); use smaller numbers in "
                         f"{where}")


def _check_finite(numbers: list[float], what: str) -> None:
    if not all(math.isfinite(x) for x in numbers):
        raise UsageError(f"{what} overflows float64 (the largest number is about 1.8e308); "
                         "use smaller values")


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
    """Strict JSON: explain_step returns only finite numbers, and ``allow_nan=False`` makes sure
    no ``NaN`` or ``Infinity`` (which JSON does not have) could ever be written."""
    from dataclasses import asdict

    return json.dumps(asdict(step), ensure_ascii=False, allow_nan=False)


def top_keys(weights: list[float]) -> list[int]:
    """The keys with the most weight, in order: one, or several when they tie (within
    TIE_REL_TOL, i.e. equal but for rounding)."""
    top = max(weights)
    return [i for i, w in enumerate(weights) if math.isclose(w, top, rel_tol=TIE_REL_TOL)]


def _keys_phrase(indices: list[int]) -> str:
    names = [f"#{i}" for i in indices]
    return "key " + names[0] if len(names) == 1 else (
        "keys " + ", ".join(names[:-1]) + " and " + names[-1])


def summarise(step: Step, digits: int = 4) -> str:
    """What the weights show, in sentences that follow from the numbers alone: the key (or keys,
    when they tie) with the most weight, a runner-up too close to tell apart at ``digits``
    decimals, and any key whose weight is exactly 0."""
    weights, n = step.weights, len(step.weights)
    top = top_keys(weights)
    shown = f"{weights[top[0]]:.{digits}f}"
    if n == 1:
        text = f"There is only one key, so key #0 gets all the weight ({shown})."
    elif len(top) == n:
        text = f"{'Both' if n == 2 else f'All {n}'} keys get the same weight ({shown} each)."
    elif len(top) > 1:
        text = f"{_keys_phrase(top).capitalize()} tie for the most weight ({shown} each)."
    else:
        text = f"Key #{top[0]} gets the most weight ({shown})."
        rest = [i for i in range(n) if i != top[0]]
        second = max(rest, key=lambda i: weights[i])
        if f"{weights[second]:.{digits}f}" == shown:
            text = (f"Key #{top[0]} gets the most weight ({shown}), just ahead of key #{second} "
                    f"(by {weights[top[0]] - weights[second]:.1e}).")
    zero = [i for i, w in enumerate(weights) if w == 0.0]
    if zero:
        text += (f" {_keys_phrase(zero).capitalize()} get{'s' if len(zero) == 1 else ''} no "
                 "weight at all: exp(score − best score) underflows to 0.")
    return text
