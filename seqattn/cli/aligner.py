"""``seqattn train-aligner``: a full-context aligner on top of a trained model (see
seqattn.models.aligner and seqattn.train.aligner)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from seqattn.cli.app import app, err_console, tune_cpu
from seqattn.device import DEVICE_HELP

EXAMPLES = """
[bold]Examples[/bold]

  seqattn train-aligner -m runs/ende --src train.en --tgt train.de --links train.en-de.align

  seqattn train-aligner -m en-de --src train.en --tgt train.de --links links.txt --save-to my-en-de

  seqattn train-aligner -m runs/ende --src train.en --tgt train.de --links eflomal --epochs 6

  seqattn train-aligner -m runs/ende --src train.en --tgt train.de --links agreement --reverse-model runs/deen --warm-start --epochs 2

[bold]What it does[/bold]: the translation model stays frozen (its translations do not change);
one small layer reads all its decoder layers with the whole target visible (Garg et al. 2019)
and learns the links: a file's (Pharaoh i-j per line, 0-based whitespace words), eflomal's
grow-diag-final-and links (--links eflomal), or the links this model and a reverse model agree
on (--links agreement: each direction supervising the other). With eflomal or agreement it
learns from the pairs as given and Moses-tokenized. It becomes the model's default alignment
view; `seqattn align --calibrate GOLD` then picks the extraction (and may blend it). A shipped
model is never changed: --save-to writes a copy with the aligner.
"""


@app.command("train-aligner", epilog=EXAMPLES)
def train_aligner(
    model: Annotated[str, typer.Option("--model", "-m", help="A model directory or shipped "
                                       "model name (Transformer or RNN).")],
    src: Annotated[Path, typer.Option("--src", help="Training sources, one per line.")],
    tgt: Annotated[Path, typer.Option("--tgt", help="Training targets, line-aligned.")],
    links: Annotated[str, typer.Option(
        "--links", help="Pharaoh links of each pair (a file), or 'eflomal' (eflomal's links, "
                        "made here) or 'agreement' (the links this model and --reverse-model "
                        "agree on); the last two learn from the pairs as given and "
                        "Moses-tokenized (needs pip install 'seqattn[align]').")],
    save_to: Annotated[Path | None, typer.Option(
        "--save-to", metavar="DIR", show_default=False,
        help="A new (or empty) directory for a copy of the model with the aligner \\[default: "
             "the model's own directory; required for a shipped model].")] = None,
    epochs: Annotated[int, typer.Option("--epochs", min=1, help="Passes over the data.")] = 4,
    batch_tokens: Annotated[int, typer.Option("--batch-tokens", min=1,
                                              help="Padded tokens per batch.")] = 4096,
    warm_start: Annotated[bool, typer.Option(
        "--warm-start", help="Start from the model's current aligner (fine-tune it on new "
                             "links) instead of fresh weights.")] = False,
    reverse_model: Annotated[str | None, typer.Option(
        "--reverse-model", show_default=False,
        help="A target-to-source model, for --links agreement.")] = None,
    device: Annotated[str, typer.Option("--device", help=DEVICE_HELP)] = "auto",
) -> None:
    """Train a full-context alignment layer on top of a frozen translation model."""
    from seqattn.align.calibrate import destination
    from seqattn.checkpoint import load_model_dir
    from seqattn.cli.output import refuse_overwriting_inputs
    from seqattn.device import pick_device
    from seqattn.errors import UsageError
    from seqattn.textio import count_lines
    from seqattn.train.aligner import LINK_SOURCES, AlignerTraining
    from seqattn.train.aligner import train_aligner as run
    from seqattn.translate import resolve_model

    tune_cpu()
    made = links in LINK_SOURCES  # links made here, not read from a file
    if (links == "agreement") != (reverse_model is not None):
        raise UsageError("--links agreement and --reverse-model go together")
    if made:
        from seqattn.align.statistical import require_extra

        require_extra()  # before anything is loaded
    source = resolve_model(model)
    target = destination(source, save_to)
    files = [("--src", src), ("--tgt", tgt)] + ([] if made else [("--links", Path(links))])
    refuse_overwriting_inputs([("--save-to", target)], files)
    dev = pick_device(device)
    counts = {path: count_lines(path) for _, path in files}  # before any copy
    if len(set(counts.values())) > 1:
        from seqattn.errors import DataError

        shown = ", ".join(f"'{p}' {n}" for p, n in counts.items())
        raise DataError(f"--src, --tgt and --links must have one line per pair; lines: {shown}")
    reverse = None
    if reverse_model is not None:
        reverse = load_model_dir(resolve_model(reverse_model), device=str(dev))
    loaded = load_model_dir(source, device=str(dev))
    console = err_console()
    summary = run(loaded, src, tgt, links, AlignerTraining(epochs=epochs,
                                                           batch_tokens=batch_tokens,
                                                           warm_start=warm_start),
                  progress=lambda e, s, loss: console.print(f"epoch {e} step {s}: alignment "
                                                            f"loss {loss:.4f}"),
                  save_to=None if target == source else target, reverse=reverse)
    console.print(f"aligner trained in {summary['seconds']:.0f} s on {summary['pairs']} pairs "
                  f"(held-out loss {summary['best_valid_loss']:.4f}); stored in {target} as "
                  "its default alignment view")
