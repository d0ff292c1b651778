"""``seqattn train``: train a model from a YAML config (see seqattn.train)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from seqattn.cli.app import app

EXAMPLES = """
[bold]Examples[/bold]

  seqattn train --preset transformer-small --set data.train_src=train.en --set data.train_tgt=train.de --set data.valid_src=val.en --set data.valid_tgt=val.de --out runs/ende

  seqattn train my.yaml --set model.hidden_size=512 --set training.max_steps=20000

  seqattn train my.yaml --out runs/ende --resume        [dim]# continue an interrupted run[/dim]

  torchrun --nproc_per_node=2 -m seqattn train my.yaml  [dim]# data-parallel[/dim]
"""


@app.command(epilog=EXAMPLES)
def train(
    config: Annotated[
        Path | None, typer.Argument(help="YAML config (sections: data, model, training, decoding).")
    ] = None,
    preset: Annotated[
        str | None, typer.Option("--preset", help="Start from a shipped preset config by name.")
    ] = None,
    overrides: Annotated[
        list[str] | None,
        typer.Option("--set", metavar="KEY=VALUE", help="Override a config key, e.g. model.hidden_size=512."),
    ] = None,
    out: Annotated[
        Path | None, typer.Option("--out", "-o", help="Model directory to write [default: runs/NAME].")
    ] = None,
    resume: Annotated[
        bool, typer.Option("--resume", help="Continue the run saved in --out exactly where it stopped.")
    ] = False,
    device: Annotated[
        str | None, typer.Option("--device", help="cpu, cuda, cuda:N (overrides training.device).")
    ] = None,
) -> None:
    """Train a Bahdanau / Luong RNN or a Transformer on plain parallel text.

    Writes a self-contained model directory: weights (safetensors), the resolved config (YAML),
    the sentencepiece model(s), a JSON-lines training log and the training state.
    """
    from seqattn.errors import SeqattnError

    raise SeqattnError("'seqattn train' is not available in this version yet")
