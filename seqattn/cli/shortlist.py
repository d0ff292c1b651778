"""``seqattn shortlist``: a model's vocabulary shortlist from its training corpus
(:mod:`seqattn.shortlist`), for ``translate --shortlist``."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Annotated

import typer

from seqattn.cli.app import app
from seqattn.shortlist import FREQUENT, PER_SOURCE

log = logging.getLogger("seqattn.cli")

EXAMPLES = """
[bold]Examples[/bold]

  seqattn shortlist runs/en-de --src train.en --tgt train.de

  seqattn translate -m runs/en-de --engine native --shortlist -i test.en
"""


@app.command(epilog=EXAMPLES)
def shortlist(
    model: Annotated[str, typer.Argument(help="Model directory (or shipped model name).",
                                         show_default=False)],
    src: Annotated[Path, typer.Option("--src", show_default=False,
                                      help="Source side of the corpus (its training data).")],
    tgt: Annotated[Path, typer.Option("--tgt", show_default=False,
                                      help="Target side, line-aligned with --src.")],
    per_source: Annotated[int, typer.Option(
        "--per-source", help="Candidate target pieces kept per source piece.")] = PER_SOURCE,
    frequent: Annotated[int, typer.Option(
        "--frequent", help="Most frequent target pieces every batch may produce.")] = FREQUENT,
    force: Annotated[bool, typer.Option(
        "--force", help="Replace the model's shortlist if it has one.")] = False,
) -> None:
    """Build a model's vocabulary shortlist from a parallel corpus: for every source piece, the
    target pieces that co-occur with it most (Dice coefficient over sentence pairs), plus the
    most frequent target pieces. translate --shortlist then scores only a batch's candidates.
    Written to MODEL/shortlist.safetensors (copied by seqattn export)."""
    from seqattn.checkpoint import SHORTLIST
    from seqattn.cli.output import refuse_overwriting_inputs
    from seqattn.errors import UsageError
    from seqattn.shipped import resolve_model
    from seqattn.shortlist import check_sizes, shortlist_from_files

    check_sizes(per_source, frequent)
    path = resolve_model(model)
    out = path / SHORTLIST
    for flag, given in (("--src", src), ("--tgt", tgt)):
        if not given.is_file():
            raise UsageError(f"{flag} '{given}' is not a file")
    refuse_overwriting_inputs([("the shortlist", out)], [("--src", src), ("--tgt", tgt)])
    if out.exists() and not force:
        raise UsageError(f"'{out}' exists; --force replaces it")
    built = shortlist_from_files(path, src, tgt, per_source, frequent)
    try:
        built.save(out)
    except OSError as e:
        raise UsageError(f"cannot write '{out}': {e.strerror or e}; copy the model "
                         "somewhere writable (seqattn export MODEL DIR) and build it there") from None
    log.info("shortlist of %s: %d source pieces × %d candidates, %d always, from %d sentence "
             "pairs → %s", path, built.candidates.shape[0], per_source, built.always.size,
             built.pairs, out)
