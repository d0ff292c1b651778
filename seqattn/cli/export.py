"""``seqattn export``: a training directory → a compact model directory to ship or share."""

from __future__ import annotations

import logging
from typing import Annotated

import typer

from seqattn.cli.app import app

log = logging.getLogger("seqattn.cli")

EXAMPLES = """
[bold]Examples[/bold]

  seqattn export runs/en-de models/en-de              [dim]# fp16 weights, no training state[/dim]

  seqattn export runs/en-de ~/share/en-de --dtype fp32

  seqattn export runs/en-de models/en-de --average 5  [dim]# mean of the last 5 validations' weights[/dim]

  seqattn export en-de en-de-ct2 --format ctranslate2 --dtype int8   [dim]# translate with CTranslate2[/dim]

  seqattn export en-de en-de-ct2 --format ctranslate2 --no-native    [dim]# translation only, smaller[/dim]
"""


@app.command(epilog=EXAMPLES)
def export(
    run_dir: Annotated[str, typer.Argument(help="A model directory written by seqattn train, "
                                                "or a shipped model's short name (en-de).")],
    out: Annotated[str, typer.Argument(help="The new model directory (must not exist).")],
    dtype: Annotated[str | None, typer.Option(
        help="Stored weight type: fp16, bf16 or fp32 (loading computes in fp32) \\[default: "
             "fp16]; with --format ctranslate2 the CTranslate2 model's: those, int8, "
             "int8_float32, int8_float16, int8_bfloat16 or int16 \\[default: fp32; the native "
             "weights then stay fp16].", show_default=False)] = None,
    fmt: Annotated[str, typer.Option(
        "--format", help="native, or ctranslate2: a CTranslate2 model beside the native "
                         "weights, which seqattn translate then uses (Transformers only).")
    ] = "native",
    native: Annotated[bool, typer.Option(
        "--native/--no-native", help="With --format ctranslate2: keep the native weights "
                                     "(alignments, attention and checks need them).")] = True,
    average: Annotated[int, typer.Option(min=0, help="Ship the mean of the newest N kept "
                                         "checkpoints (train with training.keep_checkpoints) "
                                         "instead of the best weights.")] = 0,
) -> None:
    """Copy a model's best weights, config and vocabulary into a new directory.

    Leaves out the training state and log; fp16 storage halves the size.
    """
    from seqattn.checkpoint import CT2_DIR, WEIGHTS, read_meta
    from seqattn.cli.output import refuse_overwriting_inputs
    from seqattn.export import export_model
    from seqattn.translate import resolve_model

    source = resolve_model(run_dir)  # a path, else a shipped model's short name
    refuse_overwriting_inputs([("OUT", out)], [("RUN_DIR", source)])
    dtype = dtype or ("fp32" if fmt == "ctranslate2" else "fp16")
    done = export_model(source, out, dtype, average, fmt, native)
    size = sum(p.stat().st_size for p in done.rglob("*") if p.is_file()) / 2**20
    stored = read_meta(done).get("stored_dtype")
    parts = [f"weights {stored}, {(done / WEIGHTS).stat().st_size / 2**20:.1f} MiB"
             if (done / WEIGHTS).is_file() else "no native weights"]
    if fmt == "ctranslate2":
        ct2 = sum(p.stat().st_size for p in (done / CT2_DIR).rglob("*")) / 2**20
        parts.append(f"CTranslate2 {dtype}, {ct2:.1f} MiB")
    if average:
        parts.append(f"mean of {average} checkpoints")
    log.info("exported %s → %s (%.1f MiB; %s)", source, done, size, "; ".join(parts))
