"""``seqattn evaluate``: sacreBLEU scores and alignment error rate."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from seqattn.cli.app import app

EXAMPLES = """
[bold]Examples[/bold]

  seqattn evaluate -r test.de system1.de system2.de
"""


@app.command(epilog=EXAMPLES)
def evaluate(
    hyps: Annotated[list[Path] | None, typer.Argument(help="Hypothesis files.")] = None,
    refs: Annotated[list[Path] | None, typer.Option("--ref", "-r", help="Reference file.")] = None,
) -> None:
    """Score translations with sacreBLEU (BLEU, chrF, TER)."""
    from seqattn.errors import SeqattnError

    raise SeqattnError("'seqattn evaluate' is not available in this version yet")
