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
    """Build a model's vocabulary shortlist from its training corpus, for translate --shortlist.

    For every source piece it keeps the target pieces that co-occur with it most (Dice
    coefficient over sentence pairs), plus the most frequent target pieces; translate
    --shortlist then scores only a batch's candidates. Written to MODEL/shortlist.safetensors
    (seqattn export copies it with the native weights); a shipped model is never changed.
    """
    from seqattn.checkpoint import SHORTLIST
    from seqattn.cli.output import refuse_overwriting_inputs
    from seqattn.errors import UsageError
    from seqattn.shipped import is_shipped, resolve_model
    from seqattn.shortlist import shortlist_from_files

    path = resolve_model(model)
    if is_shipped(path):
        raise UsageError(f"'{path}' is a shipped model and is never changed; copy it first "
                         f"(seqattn export {model} DIR) and build the shortlist of DIR")
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
