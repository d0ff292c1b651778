"""``seqattn align``: word alignments from a model's attention (see seqattn.align)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from seqattn.cli.app import app

EXAMPLES = """
[bold]Examples[/bold]

  seqattn align -m models/en-de test.en test.de > test.align    [dim]# Pharaoh i-j[/dim]

  echo "a dog runs ||| ein hund rennt" | seqattn align -m models/en-de - --format table
"""


@app.command(epilog=EXAMPLES)
def align(
    src: Annotated[str, typer.Argument(help="Source file ('-': 'source ||| target' lines on stdin).")],
    tgt: Annotated[Path | None, typer.Argument(help="Target file, line-aligned with SRC.")] = None,
    model: Annotated[
        str | None, typer.Option("--model", "-m", help="Model directory or shipped model name.")
    ] = None,
    fmt: Annotated[
        str, typer.Option("--format", "-f", help="pharaoh, jsonl or table.")
    ] = "pharaoh",
) -> None:
    """Force-decode given translations and link source words to target words."""
    from seqattn.errors import SeqattnError

    raise SeqattnError("'seqattn align' is not available in this version yet")
