"""``seqattn translate``: text in, translations out (see seqattn.translate)."""

from __future__ import annotations

from typing import Annotated

import typer

from seqattn.cli.app import app

EXAMPLES = """
[bold]Examples[/bold]

  seqattn translate "A man is riding a bike."

  seqattn translate --align "Two dogs play in the snow."   [dim]# show the alignment table[/dim]

  seqattn translate -i test.en -m models/en-de-rnn --beam 5 > test.hyp.de

  cat test.en | seqattn translate --format jsonl | jq .translation
"""


@app.command(epilog=EXAMPLES)
def translate(
    text: Annotated[
        list[str] | None, typer.Argument(help="Sentences to translate; none: read -i or stdin.")
    ] = None,
    input: Annotated[
        str | None, typer.Option("--input", "-i", help="Input file, one sentence per line ('-' = stdin).")
    ] = None,
    model: Annotated[
        str | None, typer.Option("--model", "-m", help="Model directory or shipped model name.")
    ] = None,
    beam: Annotated[int, typer.Option("--beam", "-b", min=1, help="Beam size (1 = greedy).")] = 5,
    n_best: Annotated[int, typer.Option("--n-best", min=1, help="Hypotheses per sentence.")] = 1,
    batch_tokens: Annotated[
        int, typer.Option("--batch-tokens", min=1, help="Source tokens per batch.")
    ] = 4096,
    fmt: Annotated[
        str, typer.Option("--format", "-f", help="Output format: text, tsv or jsonl.")
    ] = "text",
    align: Annotated[
        bool, typer.Option("--align", help="Show each sentence's alignment table.")
    ] = False,
) -> None:
    """Translate sentences with a trained model, one output line per input line."""
    from seqattn.errors import SeqattnError

    raise SeqattnError("'seqattn translate' is not available in this version yet")
