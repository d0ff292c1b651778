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

  seqattn explain --num-heads 2 --query 1,0,1,0 -k 1,0,0,0 -k 0,1,0,0 -k 0,0,1,1 --seed 1

  seqattn explain --self --causal -k 1,0 -k 0,1 -k 1,1     [dim]# a decoder's masked self-attention[/dim]

  seqattn explain --positions --dim 8 --length 10           [dim]# sinusoidal positions[/dim]

[bold]File format[/bold] (JSON or YAML): query: [0.7, 0.3]; keys: [[1, 0], [0, 1]]; optional
values, score, seed, attn_dim and params (general: W (Dq×Dk); concat: W (A×(Dq+Dk)), v (A);
additive: W (A×Dq), U (A×Dk), v (A)). Flags override the file.
"""

BAR_WIDTH = 24
BEYOND = "Beyond one step"  # help panel


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
    num_heads: Annotated[
        int | None, typer.Option("--num-heads", rich_help_panel=BEYOND,
                                 help="Split the query, keys and values into N heads through "
                                 "projection matrices (from --seed or --file), as a "
                                 "Transformer does.", show_default=False)
    ] = None,
    self_: Annotated[
        bool, typer.Option("--self", rich_help_panel=BEYOND,
                           help="Self-attention: the -k vectors are a sequence attending to "
                           "itself (queries, keys and values alike).")
    ] = False,
    causal: Annotated[
        bool, typer.Option("--causal", rich_help_panel=BEYOND,
                           help="With --self: the decoder's mask, each position sees only "
                           "itself and the positions before it.")
    ] = False,
    positions: Annotated[
        bool, typer.Option("--positions", rich_help_panel=BEYOND,
                           help="The sinusoidal position table and what adding it to "
                           "embeddings does to dot-product scores.")
    ] = False,
    dim: Annotated[
        int | None, typer.Option("--dim", rich_help_panel=BEYOND, show_default=False,
                                 help="With --positions: entries per position \\[default: 8].")
    ] = None,
    length: Annotated[
        int | None, typer.Option("--length", rich_help_panel=BEYOND, show_default=False,
                                 help="With --positions: number of positions \\[default: 10].")
    ] = None,
    fmt: Annotated[Format, typer.Option("--format", "-f", help="table or json.")] = Format.table,
    digits: Annotated[int, typer.Option("--digits", min=0, max=12, help="Decimals shown.")] = 4,
) -> None:
    """Show one attention step: each key's score, its softmax weight and the context vector.

    With no arguments it walks through a worked example: one decoder query scored against three
    encoder states. --num-heads, --self (with --causal) and --positions show the steps that
    lead to the Transformer.
    """
    from seqattn import explain as lib

    if positions or dim is not None or length is not None:
        _positions(query, keys, values, score, file, attn_dim, num_heads, self_, causal,
                   positions, dim, length, seed, fmt, digits)
        return
    if num_heads is not None or self_ or causal:
        _heads(lib, query, keys, values, score, file, seed, attn_dim, num_heads, self_, causal,
               fmt, digits)
        return
    problem = _gather(lib, query, keys, values, score, file, seed, attn_dim)
    walkthrough = problem.pop("walkthrough")
    step = lib.explain_step(**problem)
    if fmt is Format.json:
        emit(lib.step_to_json(step))
    else:
        _render(step, digits, walkthrough)


def _gather(lib: Any, query: str | None, keys: list[str] | None, values: list[str] | None,
            score: Score | None, file: Path | None, seed: int | None,
            attn_dim: int | None, self_: bool | None = None) -> dict[str, Any]:
    """Merge the file (if any) and the flags into explain_step's arguments (``self_`` not
    None: into explain_heads', a query needed unless ``self_``)."""
    from seqattn.errors import UsageError

    given = file is not None or query is not None or keys or values
    if self_ is not None and not given:
        raise UsageError("give the vectors with -k (and --query unless --self), or --file")
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
    if self_ is not None:   # heads and self-attention: scaled dot products, no attn_dim
        if data.get("score", "scaled-dot") not in ("scaled-dot", "scaled_dot") or \
                "attn_dim" in data:
            raise UsageError("heads and self-attention use the scaled dot-product score "
                             "(--score scaled-dot, the default here) and take no --attn-dim")
        if self_ and ("query" in data or "values" in data):
            raise UsageError("--self takes no query and no values: each vector of the "
                             "sequence (-k or the file's keys) is a query, key and value")
        data.pop("score", None)
    for needed, flag in (("query", "--query"), ("keys", "--key")):
        if needed not in data and not (needed == "query" and self_):
            raise UsageError(f"no {needed} given; pass {flag} (or --file)" +
                             (", or --self for self-attention" if self_ is not None else
                              ", or no arguments at all for the worked example"))
    if self_ is not None:
        return data
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


# --------------------------------------------------------------------------- beyond one step


def _positions(query: Any, keys: Any, values: Any, score: Any, file: Any, attn_dim: Any,
               num_heads: Any, self_: bool, causal: bool, positions: bool, dim: int | None,
               length: int | None, seed: int | None, fmt: Format, digits: int) -> None:
    import json
    from dataclasses import asdict

    from seqattn.errors import UsageError
    from seqattn.explain_views import describe_positions, explain_positions

    if not positions:
        raise UsageError("--dim and --length belong to --positions")
    clash = next((flag for flag, given in (
        ("--query", query), ("--key", keys), ("--value", values), ("--score", score),
        ("--file", file), ("--attn-dim", attn_dim), ("--num-heads", num_heads),
        ("--self", self_), ("--causal", causal)) if given), None)
    if clash:
        raise UsageError(f"--positions shows the position table on its own; it does not take "
                         f"{clash}")
    view = explain_positions(dim, length, 0 if seed is None else seed)
    if fmt is Format.json:
        emit(json.dumps(asdict(view), ensure_ascii=False, allow_nan=False))
        return
    from rich.markup import escape
    from rich.table import Table

    console = out_console()
    console.print(f"[bold]sinusoidal positions[/bold] (Vaswani et al. 2017, §3.5): "
                  f"{escape(view.formula)}")
    console.print("  ωᵢ = 1 / 10000^(2i/D): " + _vec(view.frequencies, digits))
    table = Table(show_edge=False, header_style="bold", title=f"PE ({view.length} × {view.dim})",
                  title_justify="left")
    table.add_column("pos", justify="right")
    for d in range(view.dim):
        table.add_column(f"{'sin' if d % 2 == 0 else 'cos'} {d // 2}", justify="right")
    for pos, row in enumerate(view.table):
        table.add_row(str(pos), *(f"{x:.{digits}f}" for x in row))
    console.print(table)
    dots = Table(show_edge=False, header_style="bold", title="PE(p) · PE(q)",
                 title_justify="left")
    dots.add_column("p \\ q", justify="right")
    for q in range(view.length):
        dots.add_column(str(q), justify="right")
    for p, row in enumerate(view.dots):
        dots.add_row(str(p), *(f"{x:.{min(digits, 2)}f}" for x in row))
    console.print(dots)
    p = view.query_position
    same = Table(show_edge=False, header_style="bold", title_justify="left",
                 title=f"one word e (--seed {view.seed}) at every position; the query at "
                       f"position {p}; score = x_p · x_j / √{view.dim}")
    for name in ("j", "score, e alone", "weight", "score, e + PE", "weight", ""):
        same.add_column(name, justify="right" if name else "left")
    for j in range(view.length):
        w = view.weights_with[j]
        same.add_row(str(j), f"{view.scores_without[j]:.{digits}f}",
                     f"{view.weights_without[j]:.{digits}f}", f"{view.scores_with[j]:.{digits}f}",
                     f"{w:.{digits}f}", f"[cyan]{'█' * round(w * BAR_WIDTH)}[/cyan]")
    console.print(same)
    console.print(escape(" ".join(describe_positions(view, digits))))


def _heads(lib: Any, query: str | None, keys: list[str] | None, values: list[str] | None,
           score: Score | None, file: Path | None, seed: int | None, attn_dim: int | None,
           num_heads: int | None, self_: bool, causal: bool, fmt: Format, digits: int) -> None:
    import json
    from dataclasses import asdict

    from seqattn.explain_views import describe_heads, explain_heads

    data = _gather(lib, query, keys, values, score, file, seed, attn_dim, self_)
    step = explain_heads(None if self_ else [lib.check_vector(data["query"], "the query")],
                         data["keys"], data.get("values"), num_heads, causal,
                         data.get("params"), data.get("seed", 0))
    if fmt is Format.json:
        emit(json.dumps(asdict(step), ensure_ascii=False, allow_nan=False))
        return
    _render_heads(step, digits)
    from rich.markup import escape

    out_console().print(escape(" ".join(describe_heads(step, digits))))


def _render_heads(step: Any, digits: int) -> None:
    from rich.markup import escape
    from rich.table import Table

    console = out_console()
    what = ("masked (causal) self-attention" if step.causal else "self-attention"
            if step.self_attention else "attention")
    heads = f"{step.num_heads} heads" if step.projected else "no projections"
    console.print(f"[bold]{what}, {heads}[/bold]: "
                  + escape("head_i = softmax((x W_Q)_i (x W_K)_iᵀ / √d) (x W_V)_i, "
                           "output = [head_1; …; head_h] W_O" if step.projected else
                           "softmax(Q Kᵀ / √d) V with Q, K, V the vectors themselves"))
    for name, matrix in step.params.items():
        console.print(f"  {name} = {_matrix(matrix, digits)}")
    if step.seed is not None:
        console.print(f"  [dim](matrices drawn with --seed {step.seed})[/dim]")
    T, S = len(step.queries), len(step.keys)
    for i, head in enumerate(step.heads):
        title = f"head {i}" if step.projected else "weights"
        if step.projected:
            title += f": q = {_matrix(head.q, digits)}, k = {_matrix(head.k, digits)}, " \
                     f"v = {_matrix(head.v, digits)}"
        table = Table(show_edge=False, header_style="bold", title=escape(title),
                      title_justify="left")
        table.add_column("query", justify="right")
        for s in range(S):
            table.add_column(f"key {s}", justify="right")
        table.add_column("output")
        for t in range(T):
            cells = [("−∞ → 0" if sc is None else f"{sc:.{digits}f} → {w:.{digits}f}")
                     for sc, w in zip(head.scores[t], head.weights[t])]
            table.add_row(str(t), *cells, _vec(head.output[t], digits))
        console.print(table)
    console.print("  [dim](each cell: score → weight)[/dim]")
    if step.projected:
        console.print(f"concat = {_matrix(step.concat, digits)}")
        console.print(f"output = concat · W_O = {_matrix(step.output, digits)}")
