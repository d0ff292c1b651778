"""``seqattn export``: a training directory → a compact model directory to ship or share."""

from __future__ import annotations

from typing import Annotated

import typer

from seqattn.cli.app import app, err_console

EXAMPLES = """
[bold]Examples[/bold]

  seqattn export runs/en-de models/en-de              [dim]# fp16 weights, no training state[/dim]

  seqattn export runs/en-de ~/share/en-de --dtype fp32

  seqattn export runs/en-de models/en-de --average 5  [dim]# mean of the last 5 validations' weights[/dim]
"""


@app.command(epilog=EXAMPLES)
def export(
    run_dir: Annotated[str, typer.Argument(help="A model directory written by seqattn train, "
                                                "or a shipped model's short name (en-de).")],
    out: Annotated[str, typer.Argument(help="The new model directory (must not exist).")],
    dtype: Annotated[str, typer.Option(help="Stored weight type: fp16, bf16 or fp32; loading "
                                            "always computes in fp32.")] = "fp16",
    average: Annotated[int, typer.Option(min=0, help="Ship the mean of the newest N kept "
                                         "checkpoints (train with training.keep_checkpoints) "
                                         "instead of the best weights.")] = 0,
) -> None:
    """Copy a model's best weights, config and vocabulary into a new directory.

    Leaves out the training state and log; fp16 storage halves the size.
    """
    from seqattn.checkpoint import WEIGHTS, export_model
    from seqattn.cli.output import refuse_overwriting_inputs
    from seqattn.translate import resolve_model

    source = resolve_model(run_dir)  # a path, else a shipped model's short name
    refuse_overwriting_inputs([("OUT", out)], [("RUN_DIR", source)])
    done = export_model(source, out, dtype, average)
    size = sum(p.stat().st_size for p in done.iterdir()) / 2**20
    err_console().print(f"exported {source} → {done} ({size:.1f} MiB; weights {dtype}, "
                        f"{(done / WEIGHTS).stat().st_size / 2**20:.1f} MiB"
                        + (f"; mean of {average} checkpoints" if average else "") + ")")
