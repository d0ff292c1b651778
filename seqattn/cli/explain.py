"""``seqattn explain``: one attention step, shown (see seqattn.explain)."""

from __future__ import annotations

from enum import Enum
from pathlib import Path
from typing import Annotated, Any

import typer

from seqattn.cli.app import app, out_console
from seqattn.cli.output import emit

EXAMPLES = """
[bold]Examples[/bold]

  seqattn explain                                   [dim]# walk through the worked example[/dim]

  seqattn explain --query 0.7,0.3 -k 1,0 -k 0.5,0.5 -k 0,1 --score scaled-dot

  seqattn explain --query 1,2 -k 1,0 -k 0,1 --value 10 --value 20 --score additive --seed 3

  seqattn explain --file step.yaml --format json | jq .weights

[bold]File format[/bold] (JSON or YAML): query: [0.7, 0.3]; keys: [[1, 0], [0, 1]]; optional
values, score, seed, attn_dim and params (general: W (Dq×Dk); concat: W (A×(Dq+Dk)), v (A);
additive: W (A×Dq), U (A×Dk), v (A)). Flags override the file.
"""

BAR_WIDTH = 24


class Score(str, Enum):
    dot = "dot"
    scaled_dot = "scaled-dot"
    general = "general"
    concat = "concat"
    additive = "additive"
    gaussian = "gaussian"


class Format(str, Enum):
    table = "table"
    json = "json"


@app.command(epilog=EXAMPLES)
def explain(
    query: Annotated[
        str | None, typer.Option("--query", help="Query vector, e.g. 0.7,0.3.", show_default=False)
    ] = None,
    keys: Annotated[
        list[str] | None,
        typer.Option("--key", "-k", help="A key vector; repeat for each key.", show_default=False),
    ] = None,
    values: Annotated[
        list[str] | None,
        typer.Option("--value", help="A value vector per key \\[default: the keys].",
                     show_default=False),
    ] = None,
    score: Annotated[
        Score | None, typer.Option("--score", "-s", help="Score function \\[default: dot].",
                                   show_default=False)
    ] = None,
    file: Annotated[
        Path | None, typer.Option("--file", help="Read the step from a JSON or YAML file.")
    ] = None,
    seed: Annotated[
        int | None, typer.Option("--seed", help="Seed for the matrices of general, concat and "
                                 "additive scores when none are given \\[default: 0].",
                                 show_default=False)
    ] = None,
    attn_dim: Annotated[
        int | None, typer.Option("--attn-dim", min=1, help="Hidden size A of concat/additive "
                                 "\\[default: key size].", show_default=False)
    ] = None,
    fmt: Annotated[Format, typer.Option("--format", "-f", help="table or json.")] = Format.table,
    digits: Annotated[int, typer.Option("--digits", min=0, max=12, help="Decimals shown.")] = 4,
) -> None:
    """Show one attention step: each key's score, its softmax weight and the context vector.

    With no arguments it walks through a worked example: one decoder query scored against three
    encoder states.
    """
    from seqattn import explain as lib

    problem = _gather(lib, query, keys, values, score, file, seed, attn_dim)
    walkthrough = problem.pop("walkthrough")
    step = lib.explain_step(**problem)
    if fmt is Format.json:
        emit(lib.step_to_json(step))
    else:
        _render(step, digits, walkthrough)


def _gather(lib: Any, query: str | None, keys: list[str] | None, values: list[str] | None,
            score: Score | None, file: Path | None, seed: int | None,
            attn_dim: int | None) -> dict[str, Any]:
    """Merge the file (if any) and the flags into explain_step's arguments."""
    given = file is not None or query is not None or keys or values
    data: dict[str, Any] = dict(lib.WORKED_EXAMPLE) if not given else {}
    if file is not None:
        data.update(lib.load_problem(file))
    if query is not None:
        data["query"] = lib.parse_vector(query, "--query")
    if keys:
        data["keys"] = [lib.parse_vector(k, f"--key #{i}") for i, k in enumerate(keys)]
    if values:
        data["values"] = [lib.parse_vector(v, f"--value #{i}") for i, v in enumerate(values)]
    if score is not None:
        data["score"] = score.value
    if seed is not None:
        data["seed"] = seed
    if attn_dim is not None:
        data["attn_dim"] = attn_dim
    from seqattn.errors import UsageError

    for needed, flag in (("query", "--query"), ("keys", "--key")):
        if needed not in data:
            raise UsageError(f"no {needed} given; pass {flag} (or --file), "
                             "or no arguments at all for the worked example")
    if not isinstance(data.get("seed", 0), int) or isinstance(data.get("seed"), bool):
        raise UsageError(f"seed must be an integer, got {data['seed']!r}")
    data.setdefault("score", "dot")
    data["walkthrough"] = not given
    return data


def _vec(values: list[float], digits: int) -> str:
    return "[" + ", ".join(f"{v:.{digits}f}" for v in values) + "]"


def _render(step: Any, digits: int, walkthrough: bool) -> None:
    from rich.markup import escape
    from rich.table import Table

    from seqattn.explain import summarise, top_keys

    console = out_console()
    if walkthrough:
        console.print(
            "[bold]Worked example[/bold]: a decoder looks for [italic]query[/italic] "
            f"{_vec(step.query, 1)} among three encoder states (the keys, also used as values).\n"
            "1. score each key against the query   2. softmax the scores into weights   "
            "3. average the values with those weights\n"
        )
    # escape: concat's "[q; k]" would otherwise be read as Rich markup and vanish
    console.print(f"[bold]{step.score.replace('_', '-')}[/bold]: {escape(step.formula)}")
    for name, matrix in step.params.items():
        console.print(f"  {name} = {_matrix(matrix, digits)}")
    if step.seed is not None:
        console.print(f"  [dim](parameters drawn with --seed {step.seed})[/dim]")
    show_values = step.values is not step.keys and step.values != step.keys
    table = Table(show_edge=False, header_style="bold")
    table.add_column("#", justify="right")
    table.add_column("key")
    if show_values:
        table.add_column("value")
    table.add_column("score", justify="right")
    table.add_column("weight", justify="right")
    table.add_column("")
    top = set(top_keys(step.weights))
    for i, (k, s, w) in enumerate(zip(step.keys, step.scores, step.weights)):
        bar = "█" * round(w * BAR_WIDTH)
        style = "bold" if i in top else ""
        row = [str(i), _vec(k, digits)] + ([_vec(step.values[i], digits)] if show_values else [])
        table.add_row(*row, f"{s:.{digits}f}", f"{w:.{digits}f}", f"[cyan]{bar}[/cyan]",
                      style=style)
    console.print(table)
    console.print(f"context = Σ weight · value = {_vec(step.context, digits)}")
    summary = escape(summarise(step, digits))
    if not walkthrough:
        console.print(summary)
        return
    # Every sentence below follows from step's numbers: the score, seed and attn_dim may vary.
    n = len(step.weights)
    mixes = (f"Yet the context still mixes all {'three' if n == 3 else n} values: attention is "
             "a weighted read, not a lookup." if all(w > 0 for w in step.weights) else
             "The context mixes only the values of the keys with weight above 0.")
    hand = ""
    if step.score == "dot":  # the hand-worked versions of this example use the dot score
        hand = (" (Averaging with weights first rounded to 4 places gives "
                f"{_vec(_rounded_context(step), 4)}, the figure printed by hand-worked versions "
                "of this example.)")
    others = [f"--score {name.replace('_', '-')}" for name in ("scaled_dot", "additive", "gaussian")
              if name != step.score][:2]
    console.print(f"\n{summary} {mixes}{hand} Try {others[0]} or {others[1]}, or your "
                  "own vectors with --query and -k.")


def _rounded_context(step: Any) -> list[float]:
    weights = [round(w, 4) for w in step.weights]
    return [sum(w * v[d] for w, v in zip(weights, step.values)) for d in range(len(step.context))]


def _matrix(matrix: Any, digits: int) -> str:
    if matrix and isinstance(matrix[0], list):
        return "[" + ", ".join(_vec(row, digits) for row in matrix) + "]"
    return _vec(matrix, digits)
