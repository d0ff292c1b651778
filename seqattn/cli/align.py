"""``seqattn align``: word alignments from a model's attention (see seqattn.align)."""

from __future__ import annotations

import json
import logging
import sys
from collections.abc import Iterator
from enum import Enum
from pathlib import Path
from typing import Annotated, Any

import typer

from seqattn.align.checks import EOS_MASS, FLAT_ENTROPY, OMISSION_MASS
from seqattn.align.names import Attention, Merge, Method, Sym
from seqattn.cli.app import app, out_console, tune_cpu
from seqattn.cli.output import check_output_path, emit
from seqattn.device import DEVICE_HELP

log = logging.getLogger("seqattn.cli")

EXAMPLES = f"""
[bold]Examples[/bold]

  seqattn align -m models/en-de test.en test.de > test.align    [dim]# Pharaoh i-j, 0-based[/dim]

  echo "a dog runs ||| ein Hund rennt" | seqattn align -m en-de - --format table --check

  seqattn align -m en-de --reverse-model de-en --sym grow-diag-final test.en test.de

  seqattn align -m runs/ende --calibrate GOLD_DIR        [dim]# pick a view, store it in runs/ende[/dim]

  seqattn align -m en-de --calibrate GOLD_DIR --save-to my-en-de   [dim]# a calibrated copy[/dim]

  seqattn align -m en-de test.en test.de -f jsonl --html test.html | jq .links

[bold]How it works[/bold]: each given target is force-decoded (teacher forcing, one batched pass)
and the cross-attention of the view (--layer, --heads, --shift-att; default: the model's
calibrated view, else the penultimate layer averaged over heads) is merged from pieces into the
whitespace words you gave (--merge). --shift-att (Chen et al. 2020) reads, for each target word,
the step where it is the decoder input; the last word reads the step that predicts
end-of-sentence. Attention on end-of-sentence is reported (jsonl 'eos'), never linked.

[bold]Calibration[/bold]: GOLD_DIR holds *.src, *.tgt (whitespace-tokenized) and *.talp (i-j
sure, ipj possible links), e.g. ../shared/data/gold/multi30k_test2016_ende_dev from a checkout.
The winner is stored in the model's own directory, or with --save-to DIR in a new copy of the
model; a shipped model is never changed.

[bold]Policies[/bold]: one output line per input pair, in order, flushed per line; a pair with an
empty side gives an empty line (pharaoh, table, heatmap) or an object with no links (jsonl).
With '-', each stdin line is 'source ||| target'; an empty line is an empty pair. Mismatched
files and malformed lines are errors (exit 2) naming the files or the line.

[bold]--check[/bold] flags, per pair: [italic]omission[/italic] (a source word whose total
attention is < OMISSION_MASS = {OMISSION_MASS}), [italic]repeat[/italic] (target words that
repeat at once, 'a dog a dog'), [italic]flat[/italic] (a row whose normalised entropy is >=
FLAT_ENTROPY = {FLAT_ENTROPY}: possible hallucination), [italic]eos[/italic] (a target word with
>= EOS_MASS = {EOS_MASS} of its attention on end-of-sentence). See seqattn/align/checks.py.
"""


class Format(str, Enum):
    pharaoh = "pharaoh"
    jsonl = "jsonl"
    table = "table"
    heatmap = "heatmap"


@app.command(epilog=EXAMPLES)
def align(
    src: Annotated[str | None, typer.Argument(
        help="Source file ('-': 'source ||| target' lines on stdin).", show_default=False)] = None,
    tgt: Annotated[Path | None, typer.Argument(
        help="Target file, line-aligned with SRC.", show_default=False)] = None,
    model: Annotated[str | None, typer.Option(
        "--model", "-m", show_default=False,
        help="Model directory or shipped model name \\[default: en-de].")] = None,
    fmt: Annotated[Format, typer.Option(
        "--format", "-f", help="pharaoh (i-j, 0-based), jsonl, table or heatmap.")] = Format.pharaoh,
    method: Annotated[Method | None, typer.Option(
        "--method", show_default=False,
        help="argmax (per target word its best source word), threshold (every pair with "
             "weight >= P), both (their union), confident (a best source word only if its "
             "weight >= P) or bidir (threshold P on the mean of the weights and their "
             "column-normalised copy) \\[default: argmax; threshold if --threshold is "
             "given].")] = None,
    threshold: Annotated[float | None, typer.Option(
        "--threshold", show_default=False,
        help="Link every word pair with weight >= P.")] = None,
    merge: Annotated[Merge, typer.Option(
        "--merge", help="Subword merge: sum (source pieces summed, target pieces averaged), "
                        "mean or max (on both sides).")] = Merge.sum,
    attention: Annotated[Attention, typer.Option(
        "--attention", "-a",
        help="cross (target words over source words: the alignment), or a Transformer's "
             "encoder or decoder self-attention (words over words of one sentence).")
    ] = Attention.cross,
    layer: Annotated[int | None, typer.Option(
        "--layer", show_default=False,
        help="Transformer layer (of the decoder; of the encoder with -a encoder).")] = None,
    heads: Annotated[str | None, typer.Option(
        "--heads", show_default=False, help="mean, max or a head number.")] = None,
    shift_att: Annotated[bool | None, typer.Option(
        "--shift-att/--no-shift-att", show_default=False,
        help="Read each target word at the step where it is the decoder input.")] = None,
    blend: Annotated[str | None, typer.Option(
        "--blend", show_default=False, metavar="LAYER:HEADS:WEIGHT",
        help="Mix a second view, read at the step that predicts each word, into the view: "
             "(1 - WEIGHT) · view + WEIGHT · (LAYER, HEADS), e.g. 2:mean:0.4; none turns a "
             "calibrated blend off \\[default: the model's].")] = None,
    reverse_model: Annotated[str | None, typer.Option(
        "--reverse-model", show_default=False,
        help="A target→source model: align both ways and symmetrize (it reads its own "
             "calibrated or default view).")] = None,
    sym: Annotated[Sym | None, typer.Option(
        "--sym", show_default=False,
        help="Symmetrization with --reverse-model: a heuristic on both directions' links, or "
             "mean/geomean of both directions' attention, then --method/--threshold "
             "\\[default: the one stored by --calibrate with --reverse-model, with its "
             "method and threshold unless given; else grow-diag-final].")] = None,
    check: Annotated[bool, typer.Option(
        "--check", help="Flag possible omissions, repetitions, flat rows, eos mass.")] = False,
    html: Annotated[Path | None, typer.Option(
        "--html", show_default=False, help="Also write a self-contained HTML heatmap page.")] = None,
    png: Annotated[Path | None, typer.Option(
        "--png", show_default=False, help="Also write a PNG of heatmaps (needs matplotlib).")] = None,
    calibrate: Annotated[str | None, typer.Option(
        "--calibrate", show_default=False,
        help="Gold set (directory with *.src *.tgt *.talp, or SRC,TGT,TALP): sweep the views, "
             "store the best in the model's seqattn.json (see --save-to); with "
             "--reverse-model also sweep the symmetrizations and store the best for later "
             "--reverse-model runs.")] = None,
    save_to: Annotated[Path | None, typer.Option(
        "--save-to", show_default=False, metavar="DIR",
        help="With --calibrate: write the calibrated settings here, a new (or empty) "
             "directory that gets a copy of the model, or the model's own directory "
             "\\[default: the model's own directory; required for a shipped model, which is "
             "never changed].")] = None,
    batch_tokens: Annotated[int, typer.Option(
        "--batch-tokens", min=1, help="Padded tokens per batch.")] = 4096,
    device: Annotated[str, typer.Option("--device", help=DEVICE_HELP)] = "auto",
    precision: Annotated[str, typer.Option(
        "--precision", help="fp32; bf16 runs the matrix products in bfloat16 (about twice "
                            "as fast on CPUs with AVX-512 BF16, slower on others; scores differ "
                            "slightly); fp16 on CUDA.")] = "fp32",
) -> None:
    """Force-decode given translations and link source words to target words."""
    # Long for its option declarations only (Typer reads the signature); the body is short.
    from seqattn.align import force, settings
    from seqattn.align.views import Blend
    from seqattn.errors import UsageError
    from seqattn.translate import load

    extraction = _extraction(method, threshold, sym, reverse_model)
    self_kind = None if attention is Attention.cross else attention.value
    blend_view = settings.STORED if blend is None else Blend.parse(blend)
    if save_to is not None and calibrate is None:
        raise UsageError("--save-to says where --calibrate stores its settings; give "
                         "--calibrate GOLD")
    _refuse_overwrites(src, tgt, calibrate, html, png, save_to)
    _check_outputs(src, tgt, calibrate, html, png, self_kind, reverse_model, shift_att, blend)
    tune_cpu()
    translator = load(model, device=device, precision=precision)
    if self_kind is not None:
        from seqattn.align.selfattn import resolve_self_view, self_attention

        view = resolve_self_view(translator, self_kind, layer, heads, merge.value)
        assert src is not None  # _check_outputs asked for it
        records = self_attention(translator, _pairs(src, tgt, self_kind), view, extraction)
        _write_all(records, fmt, html, png)
        return
    explicit = method is not None or threshold is not None
    reverse = load(reverse_model, device=device, precision=precision) if reverse_model else None
    if calibrate is not None:
        from seqattn.cli.calibration import calibrate_all

        calibrate_all(translator, reverse, calibrate, extraction if explicit else None,
                      merge.value, batch_tokens, save_to)
        if src is None:
            return
    view, extraction = settings.resolve_alignment(
        translator, reverse, method.value if method else None, threshold,
        sym.value if sym else None, layer, heads, shift_att, merge.value, blend=blend_view)
    assert src is not None  # _check_outputs asked for it (only --calibrate goes without)
    pairs = _pairs(src, tgt)
    interactive = src == "-" and sys.stdin.isatty()  # answer each typed line at once
    chunk = 1 if interactive else max(1, min(256, batch_tokens // 16))
    results = force.align(translator, pairs, view, extraction, reverse, check=check,
                       batch_tokens=batch_tokens, chunk=chunk)
    from seqattn.records import run_record

    _write_all(results, fmt, html, png, extraction if reverse else None,
               run_record(translator) if fmt is Format.jsonl else None)


def _write_all(records: Any, fmt: Format, html: Path | None, png: Path | None,
               extraction: Any = None, repro: dict[str, Any] | None = None) -> None:
    kept: list[Any] = []
    for rec in records:
        _write(rec, fmt, extraction, repro)
        if html is not None or png is not None:
            kept.append(rec)
    _pictures(kept, html, png)


def _refuse_overwrites(src: str | None, tgt: Path | None, calibrate: str | None,
                       html: Path | None, png: Path | None, save_to: Path | None) -> None:
    """No output may be an input (or another output): checked before the model loads."""
    from seqattn.align.calibrate import gold_files
    from seqattn.cli.output import refuse_overwriting_inputs, refuse_stdout_onto_inputs

    inputs: list[tuple[str, Any]] = [("SRC_FILE", src), ("TGT_FILE", tgt)]
    if calibrate is not None:
        inputs += [("gold file", p) for p in gold_files(calibrate)]
    outputs: list[tuple[str, Any]] = [("--html", html), ("--png", png)]
    if save_to is not None:
        from seqattn.checkpoint import META

        outputs.append(("--save-to", save_to / META))
    refuse_overwriting_inputs(outputs, inputs)
    refuse_stdout_onto_inputs(inputs)


def _extraction(method: Method | None, threshold: float | None, sym: Sym | None,
                reverse_model: str | None) -> Any:
    from seqattn.align.links import Extraction
    from seqattn.errors import UsageError

    if sym is not None and reverse_model is None:
        raise UsageError("--sym needs --reverse-model MODEL (a target→source model)")
    name = method.value if method else ("threshold" if threshold is not None else "argmax")
    return Extraction(name, threshold, sym.value if sym else "grow-diag-final")


def _check_outputs(src: str | None, tgt: Path | None, calibrate: str | None,
                   html: Path | None, png: Path | None, self_kind: str | None = None,
                   reverse_model: str | None = None, shift_att: bool | None = None,
                   blend: str | None = None) -> None:
    from seqattn.align.viz import have_matplotlib
    from seqattn.errors import UsageError

    if self_kind is not None:
        clash = next((flag for flag, given in (("--calibrate", calibrate),
                                               ("--reverse-model", reverse_model),
                                               ("--shift-att", shift_att),
                                               ("--blend", blend)) if given is not None),
                     None)
        if clash:
            raise UsageError(f"{clash} applies to cross-attention only, not to "
                             f"--attention {self_kind}")
        if src is None:
            need = ("SRC_FILE, or '-' to read sentences" if self_kind == "encoder" else
                    "SRC_FILE TGT_FILE, or '-' to read 'source ||| target' lines")
            raise UsageError(f"--attention {self_kind}: give {need} from stdin")
        if self_kind == "encoder":
            for flag, path in (("--html", html), ("--png", png)):
                check_output_path(path, flag)
            if src == "-" and tgt is not None:
                raise UsageError("with '-' the sentences come from stdin; give no TGT_FILE")
            return
    if src is None and calibrate is None:
        raise UsageError("give SRC_FILE TGT_FILE, or '-' to read 'source ||| target' lines "
                         "from stdin (or --calibrate GOLD)")
    if src == "-" and tgt is not None:
        raise UsageError("with '-' the pairs come from stdin as 'source ||| target' lines; "
                         "give no TGT_FILE")
    if src not in (None, "-") and tgt is None:
        raise UsageError(f"give TGT_FILE, line-aligned with '{src}' (or '-' to read "
                         "'source ||| target' lines from stdin)")
    for flag, path in (("--html", html), ("--png", png)):
        check_output_path(path, flag)  # before the model loads, not after all the work
    if png is not None and not have_matplotlib():
        raise UsageError("--png needs matplotlib, which is not installed: pip install matplotlib")


# --------------------------------------------------------------------------- input


def _pairs(src: str, tgt: Path | None, self_kind: str | None = None
           ) -> Iterator[tuple[str, str]]:
    """(source, target) pairs; for encoder self-attention a target is optional (a stdin line
    without '|||' is a source sentence alone)."""
    from seqattn.errors import UsageError
    from seqattn.textio import file_lines, file_pairs, stdin_pairs, stream_lines

    if self_kind == "encoder":
        if src == "-":
            return ((line.split("|||")[0].strip(), "")
                    for line in stream_lines(sys.stdin.buffer, "-"))
        if tgt is None:
            return ((line, "") for line in file_lines(Path(src)))
    if src == "-":
        return stdin_pairs(sys.stdin.buffer)
    if tgt is None:
        raise UsageError(f"give TGT_FILE, line-aligned with '{src}'")
    return file_pairs(Path(src), tgt)


# --------------------------------------------------------------------------- output


def _write(rec: Any, fmt: Format, extraction: Any, repro: dict[str, Any] | None = None) -> None:
    from seqattn.align.links import pharaoh

    if fmt is Format.pharaoh:
        emit(pharaoh(rec.links), flush=True)
    elif fmt is Format.jsonl:
        from seqattn.records import alignment_record

        sym = extraction.sym if extraction is not None else None
        obj = alignment_record(rec, sym)
        if repro is not None:  # what reproduces it, in every record (never a header line)
            obj["repro"] = repro
        emit(json.dumps(obj, ensure_ascii=False), flush=True)
    elif rec.empty:
        emit("", flush=True)
    else:
        from seqattn.align.viz import alignment_table, heatmap

        out_console().print(alignment_table(rec) if fmt is Format.table else heatmap(rec))
        sys.stdout.flush()


def _pictures(records: list[Any], html: Path | None, png: Path | None) -> None:
    from seqattn.align import viz as alignviz

    if html is not None:
        alignviz.write_html(html, records)
        log.info("wrote %s (%d pairs)", html, len(records))
    if png is not None:
        drawn = alignviz.write_png(png, records)
        log.info("wrote %s (%d pairs drawn)", png, drawn)
