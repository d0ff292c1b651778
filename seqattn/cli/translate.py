"""``seqattn translate``: text in, translations out (see seqattn.translate)."""

from __future__ import annotations

import json
import logging
import os
import shlex
import sys
from collections.abc import Iterator
from enum import Enum
from typing import Annotated, Any

import typer

from seqattn.cli.app import app, err_console, out_console, tune_cpu
from seqattn.cli.output import emit
from seqattn.device import DEVICE_HELP

log = logging.getLogger("seqattn.cli")

EXAMPLES = """
[bold]Examples[/bold]

  seqattn translate "A man is riding a bike."

  seqattn translate --align "Two dogs play in the snow."     [dim]# with the alignment table[/dim]

  seqattn translate -i test.en -m en-de-rnn --beam 5 > test.hyp.de

  cat test.en | seqattn translate --format jsonl | jq -r .alignment

[bold]Policies[/bold]: one output line per input line, in order; an empty line gives an empty
line; invalid UTF-8 is replaced by U+FFFD and a line longer than the model takes is cut, each
with a warning on stderr naming the line. A line of several sentences is translated sentence by
sentence and joined (--no-split: as one); its jsonl words, links and attention run over the
whole line, its score is the sum of the sentences' log-probabilities, and its k-th hypothesis
joins each sentence's k-th. An ALL-CAPS sentence is translated in sentence case and written in
capitals (--no-caps: as given). --n-best K > 1 writes the K hypotheses of a line on that line,
tab-separated (text) or as extra columns (tsv) or a list (jsonl).
"""


class Format(str, Enum):
    text = "text"
    tsv = "tsv"
    jsonl = "jsonl"


@app.command(epilog=EXAMPLES)
def translate(
    text: Annotated[
        list[str] | None, typer.Argument(help="Sentences to translate; none: read -i or stdin.",
                                         show_default=False)
    ] = None,
    input: Annotated[
        str | None, typer.Option("--input", "-i", show_default=False,
                                 help="Input file, one sentence per line ('-' = stdin).")
    ] = None,
    model: Annotated[
        str | None, typer.Option("--model", "-m", show_default=False,
                                 help="Model directory or shipped model name \\[default: en-de].")
    ] = None,
    beam: Annotated[
        int | None, typer.Option("--beam", "-b", min=1, show_default=False,
                                 help="Beam size, 1 = greedy \\[default: the model's, 5].")
    ] = None,
    n_best: Annotated[int, typer.Option("--n-best", min=1, help="Hypotheses per line.")] = 1,
    alpha: Annotated[
        float | None, typer.Option("--alpha", min=0.0, show_default=False,
                                   help="GNMT length penalty α \\[default: the model's].")
    ] = None,
    batch_tokens: Annotated[
        int, typer.Option("--batch-tokens", min=1, help="Source tokens per batch.")
    ] = 4096,
    batch_size: Annotated[
        int | None, typer.Option("--batch-size", min=1, show_default=False,
                                 help="Sentences per batch (instead of --batch-tokens).")
    ] = None,
    min_len: Annotated[
        int | None, typer.Option("--min-len", min=0, show_default=False,
                                 help="No end-of-sentence before this many pieces.")
    ] = None,
    max_len: Annotated[
        int | None, typer.Option("--max-len", min=1, show_default=False,
                                 help="At most this many pieces per sentence \\[default: "
                                 "a·source+b from the model's decoding config].")
    ] = None,
    max_output_len: Annotated[
        int | None, typer.Option("--max-output-len", show_default=False,
                                 help="Never more than this many pieces per sentence, however "
                                 "long the source: a·source+b is cut to it, --max-len may not "
                                 "exceed it \\[default: the model's decoding.max_output_len, "
                                 "256].")
    ] = None,
    fmt: Annotated[Format, typer.Option("--format", "-f", help="text, tsv or jsonl.")] = Format.text,
    align: Annotated[
        bool, typer.Option("--align", help="Show each sentence's alignment table (stdout on a "
                           "terminal with text format, stderr otherwise).")
    ] = False,
    attention: Annotated[
        bool, typer.Option("--attention", help="jsonl: add the soft word attention matrix.")
    ] = False,
    check: Annotated[
        bool, typer.Option("--check", help="Evidence card of each translation, as align "
                           "--check: possible omissions, repetitions, flat rows, eos mass (a "
                           "jsonl field, a flags column in the table, else a warning on stderr "
                           "naming the line).")
    ] = False,
    layer: Annotated[
        int | None, typer.Option("--layer", show_default=False,
                                 help="Transformer decoder layer for alignments \\[default: "
                                      "the model's calibrated view, else the penultimate].")
    ] = None,
    heads: Annotated[
        str | None, typer.Option("--heads", show_default=False,
                                 help="mean, max or a head number \\[default: the model's "
                                      "calibrated view (en-de: its guided head), else mean].")
    ] = None,
    shift_att: Annotated[
        bool | None, typer.Option("--shift-att/--no-shift-att", show_default=False,
                                  help="Read each output word at the step where it was the "
                                       "decoder input \\[default: the model's view].")
    ] = None,
    blend: Annotated[
        str | None, typer.Option("--blend", show_default=False, metavar="LAYER:HEADS:WEIGHT",
                                 help="Mix a second, plainly read view into the alignment "
                                      "view (e.g. 2:mean:0.4), or none \\[default: the "
                                      "model's view].")
    ] = None,
    copy_numbers: Annotated[bool, typer.Option(
        "--copy-numbers/--no-copy-numbers",
        help="Write each source number into the output word that attends to it most (one "
             "forced pass, only for lines with a number).")] = True,
    split: Annotated[bool, typer.Option(
        "--split/--no-split", help="Translate a line of several sentences sentence by "
                                   "sentence (one output line still).")] = True,
    caps: Annotated[bool, typer.Option(
        "--caps/--no-caps", help="Translate an ALL-CAPS sentence in sentence case and write "
                                 "its translation in capitals.")] = True,
    length_norm: Annotated[str | None, typer.Option(
        "--length-norm", show_default=False,
        help="How a hypothesis's log-probability is normalised: gnmt, ((5 + length) / 6) ** α, "
             "or power, length ** α (CTranslate2's) \\[default: the model's, gnmt; "
             "CTranslate2: power].")] = None,
    engine: Annotated[str, typer.Option(
        "--engine", help="auto (CTranslate2 when the model directory holds a seqattn export "
                         "--format ctranslate2), native or ctranslate2. Alignments, --check "
                         "and jsonl come from one native forced pass over the output.")
    ] = "auto",
    device: Annotated[str, typer.Option("--device", help=DEVICE_HELP)] = "auto",
    precision: Annotated[str | None, typer.Option(
        "--precision", show_default=False,
        help="fp32; bf16 runs the matrix products in bfloat16 (about twice as fast on CPUs "
             "with AVX-512 BF16, slower on others; scores differ slightly); fp16 on CUDA; "
             "CTranslate2 also int8 \\[default: fp32; CTranslate2: the export's].")] = None,
    shortlist: Annotated[bool, typer.Option(
        "--shortlist", help="Native engine: score only each batch's candidate pieces from the "
                            "model's vocabulary shortlist (seqattn shortlist): faster, may "
                            "change some translations.")] = False,
) -> None:
    """Translate sentences with a trained model, one output line per input line."""
    # Long for its option declarations only (Typer reads the signature); the body is short.
    from seqattn.engines.ct2 import native_or_ct2
    from seqattn.errors import UsageError
    from seqattn.shipped import resolve_model

    if text and input is not None:
        raise UsageError("give sentences as arguments or with --input, not both")
    for arg in text or []:
        if len(arg) < 4096 and "\n" not in arg and os.path.isfile(arg):
            log.warning("'%s' is a file: translating its name as a sentence; to translate its "
                        "lines, use -i %s", arg, shlex.quote(arg))
    if input is not None:
        from seqattn.cli.output import refuse_stdout_onto_inputs

        refuse_stdout_onto_inputs([("--input", input)])
    path = resolve_model(model)
    engines = _Engines(path, native_or_ct2(path, engine), device, precision, shortlist)
    # jsonl carries the alignment, except from a model without attention (translation only)
    need_attention = align or check or attention or (fmt is Format.jsonl and engines.attends())
    viewing = need_attention or any(x is not None for x in (layer, heads, shift_att, blend))
    decoder = engines.decoder()
    view = engines.view(layer, heads, shift_att, blend) if viewing else None
    lines = iter(text) if text else _read(input or "-")
    # typed at a terminal: answer each line at once (a pipe or file is read in windows of up
    # to 1,024 lines, sorted by length into batches: the longer the window, the less padding;
    # 256 when every hypothesis keeps its attention until its window is written)
    interactive = not text and input in (None, "-") and sys.stdin.isatty()
    window = 256 if need_attention else 1024
    table_console = None
    if align:
        table_console = out_console() if (fmt is Format.text and sys.stdout.isatty()) \
            else err_console()
    results = decoder.stream(lines, beam=beam, n_best=n_best, alpha=alpha,
                             min_len=min_len, max_len=max_len, length_norm=length_norm,
                             max_output_len=max_output_len, batch_size=batch_size,
                             batch_tokens=batch_tokens, attention=need_attention,
                             chunk=1 if interactive else max(1, min(window, batch_tokens // 4)),
                             split_sentences=split, fold_caps=caps)
    warn_numbers = copy_numbers and not engines.attends()   # said once, at the first number
    repro = None
    if fmt is Format.jsonl:  # what reproduces each record, in each record (never a header)
        from seqattn.records import run_record

        repro = run_record(decoder, decoder.search(beam, n_best, alpha, None, None, min_len,
                                                   max_len, max_output_len, length_norm))
    for tr in results:  # flushed line by line: a long file shows results as it goes
        if warn_numbers and _no_copy_warning(tr):
            warn_numbers = False
        if fmt is not Format.jsonl and not (align or check) and not engines.needs_native(
                tr, copy_numbers):  # plain text: no torch for the CTranslate2 engine
            emit(_record(decoder, tr, fmt, attention, view, None, {}), flush=True)
            continue
        from seqattn.records import finish_line

        translator = engines.native()
        seen: dict[int, Any] = {}  # each hypothesis's attention, read once for all outputs
        card = finish_line(translator, tr, view, copy_numbers, check, seen)
        emit(_record(translator, tr, fmt, attention, view, card, seen, repro), flush=True)
        if card is not None and fmt is not Format.jsonl and not card.clean:
            log.warning("line %d: %s", tr.id + 1, _summary(card, tr))
        if table_console is not None and tr.hyps:
            table_console.print(_table(translator, tr, view, card, seen))


class _Engines:
    """The engine that decodes (``which``) and, when something needs it (alignments, checks,
    copied numbers), the native model for one forced pass over its output: loaded once, on
    first need, so plain text through CTranslate2 never imports torch."""

    def __init__(self, path: Any, which: str, device: str, precision: str | None,
                 shortlist: bool = False):
        from seqattn.errors import UsageError

        if shortlist and which != "native":
            raise UsageError("--shortlist is for the native engine: add --engine native (a "
                             "CTranslate2 export decodes over the whole vocabulary)")
        self.path, self.which, self.device, self.precision = path, which, device, precision
        self.shortlist = shortlist
        self._native: Any = None
        self._decoder: Any = None
        self._warned = False

    def decoder(self) -> Any:
        if self._decoder is None:
            if self.which == "ctranslate2":
                from seqattn.engines.ct2 import CT2Translator, ct2_device

                self._decoder = CT2Translator(self.path, *ct2_device(self.device),
                                              precision=self.precision)
            else:
                self._decoder = self.native()
        return self._decoder

    def native(self) -> Any:
        if self._native is None:
            from seqattn.translate import load

            tune_cpu()
            native = self.which == "native"
            precision = self.precision if native else None
            self._native = load(self.path, device=self.device, precision=precision or "fp32",
                                shortlist=self.shortlist and native)
        return self._native

    def attends(self) -> bool:
        """Whether the model has attention to show (a CTranslate2 export always has: only
        Transformers are exported)."""
        if self.which != "native":   # no torch import for CTranslate2's plain text
            return True
        from seqattn.models import has_attention

        return has_attention(self.native().model)

    def needs_native(self, tr: Any, copy_numbers: bool) -> bool:
        """Whether writing ``tr`` as plain text needs the native model: only to copy a
        source number into a CTranslate2 translation (one forced pass)."""
        if self.which == "native":
            return True
        from seqattn.align.numbers import has_number

        if not (copy_numbers and tr.hyps and has_number(tr.source)):
            return False
        from seqattn.checkpoint import WEIGHTS

        if not (self.path / WEIGHTS).is_file():  # a translation-only export
            if not self._warned:
                log.warning("numbers are not copied into the output: this CTranslate2 export "
                            "has no native weights for the forced pass (--no-copy-numbers "
                            "says so quietly)")
                self._warned = True
            return False
        return True

    def view(self, layer: Any, heads: Any, shift_att: Any, blend: Any) -> Any:
        from seqattn.align.settings import STORED, resolve_view
        from seqattn.align.views import Blend

        blend_view = STORED if blend is None else Blend.parse(blend)
        return resolve_view(self.native(), layer, heads, shift_att, blend=blend_view)


def _no_copy_warning(tr: Any) -> bool:
    """For a model without attention: say (once, at a line with a number) that numbers are
    not copied; True once said."""
    from seqattn.align.numbers import has_number

    if not has_number(tr.source):
        return False
    log.warning("numbers are not copied into the output: this model has no attention to "
                "place them (--no-copy-numbers says so quietly)")
    return True


def _read(source: str) -> Iterator[str]:
    """Lines of a file or stdin, lazily (invalid UTF-8 replaced, with a warning)."""
    from seqattn.textio import open_input, stream_lines

    return stream_lines(open_input(source), source)


def _summary(card: Any, tr: Any) -> str:
    """One line naming what the card flags."""
    said = []
    if card.omitted:
        said.append("possible omission of " + ", ".join(repr(tr.src.words[i])
                                                        for i in card.omitted))
    if card.repeated:
        said.append("repetition of " + ", ".join(
            repr(" ".join(tr.hyps[0].words[s: s + n])) for s, _, n in card.repeated))
    for name, found in (("flat attention", card.flat), ("end-of-sentence mass", card.eos)):
        if found:
            said.append(f"{name} on " + ", ".join(repr(tr.hyps[0].words[j]) for j in found))
    return "; ".join(said)


def _record(translator: Any, tr: Any, fmt: Format, attention: bool, view: Any,
            card: Any, seen: dict[int, Any], repro: dict[str, Any] | None = None) -> str:
    if fmt is Format.text:
        return "\t".join(h.text for h in tr.hyps)
    if fmt is Format.tsv:
        cols = [tr.source.replace("\t", " ")]
        for h in tr.hyps or [None]:
            cols += [h.text, f"{h.score:.4f}"] if h is not None else ["", ""]
        return "\t".join(cols)
    from seqattn.records import translation_record

    obj = translation_record(translator, tr, view, links=view is not None, attention=attention,
                             card=card, seen=seen)
    if repro is not None:
        obj["repro"] = repro
    return json.dumps(obj, ensure_ascii=False)


def _table(translator: Any, tr: Any, view: Any, card: Any, seen: dict[int, Any]) -> Any:
    from rich.table import Table

    from seqattn.align.words import entropy

    hyp = tr.hyps[0]
    from seqattn.records import hyp_attention

    words, eos = hyp_attention(translator, tr, hyp, view, seen)
    decoder_layers = translator.model.attention_shape()[0]
    several = translator.model.attention_shape() != (1, 1)  # else one attention: no choice
    where = "" if not several else \
        f", layer {view.layer}, heads {view.heads}"
    what = "beam attention of the best hypothesis"
    if view.layer == decoder_layers:  # one past the decoder's: the aligner trained on top
        what = "the full-context aligner on the best hypothesis (one forced pass)"
        where = ""
    if view.shift:
        where += ", shift-att (each word read where it was the decoder input)"
    if view.blend is not None:
        b = view.blend
        where += f", blended {b.weight:g} with layer {b.layer}, heads {b.heads}"
    if card is not None and card.omitted:
        where += "; possibly omitted: " + ", ".join(tr.src.words[i] for i in card.omitted)
    table = Table(title=f"{tr.source}\n→ {hyp.text}", title_justify="left",
                  caption=f"{what}{where}",
                  caption_justify="left", header_style="bold")
    for name, justify in (("#", "right"), ("output", "left"), ("attends to", "left"),
                          ("weight", "right"), ("runner-up", "left"), ("entropy", "right"),
                          ("eos", "right")):
        table.add_column(name, justify=justify)  # type: ignore[arg-type]  # rich's Literal
    if card is not None:
        table.add_column("flags", style="yellow")
    src_words = tr.src.words
    for j, row in enumerate(words.tolist()):
        order = sorted(range(len(row)), key=lambda i: -row[i])
        top = order[0]
        second = f"{src_words[order[1]]} {row[order[1]]:.2f}" if len(order) > 1 else ""
        flags = [", ".join(card.target_flags(j))] if card is not None else []
        table.add_row(str(j), hyp.words[j], src_words[top], f"{row[top]:.2f}", second,
                      f"{entropy(row):.2f}", f"{eos[j]:.2f}", *flags)
    return table
