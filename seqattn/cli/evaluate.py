"""``seqattn evaluate``: sacreBLEU scores (see seqattn.evaluate) and alignment error rate
(see seqattn.align.aer). Neither path imports torch; sacrebleu loads only when a command runs."""

from __future__ import annotations

import json
import logging
from typing import TYPE_CHECKING, Annotated, Any, NamedTuple

import typer

from seqattn.cli.app import app, out_console
from seqattn.cli.output import check_output_path, emit, refuse_overwriting_inputs

log = logging.getLogger("seqattn.cli")

if TYPE_CHECKING:
    from seqattn.align.aer import AlignmentScores
    from seqattn.evaluate import Evaluation

EXAMPLES = """
[bold]Examples[/bold]

  seqattn evaluate -r test.de rnn.de transformer.de

  seqattn evaluate -m en-de --src test.en -r test.de --beam 5 --save-hyp test.hyp.de   [dim]# model mode[/dim]

  seqattn evaluate -r test.de -r test.alt.de hyp.de --metrics bleu,chrf++   [dim]# 2 references[/dim]

  seqattn evaluate -r test.tok.de hyp.tok.de --lowercase --tokenize none   [dim]# paper convention[/dim]

  seqattn evaluate -r test.de --baseline rnn.de transformer.de --seed 1   [dim]# significance[/dim]

  seqattn evaluate -r test.de hyp.de --sentence | jq -c 'select(.scores.bleu < 10)'

  seqattn evaluate --sets sets.yaml --baseline rnn --format json > scores.json

  [dim]# sets.yaml: set name -> refs (a path or a list) and hyps (system name -> path);[/dim]
  [dim]# relative paths are relative to the YAML file[/dim]
  test2016:
    refs: test_2016_flickr.de
    hyps: {rnn: rnn.2016.de, transformer: tf.2016.de}
  test2017:
    refs:
      - test_2017_flickr.de
    hyps: {rnn: rnn.2017.de, transformer: tf.2017.de}

  seqattn evaluate --align test.align --gold test.talp --gold-one-indexed   [dim]# AER[/dim]

  seqattn evaluate -r test.de rnn.de noattn.de --by-length test.en --png by-length.png

  seqattn evaluate -m en-de-rnn -m runs/noattn --src long.en -r long.de --by-length long.en --no-split
"""

FORMATS = ("table", "json", "tsv")


S, P, A = "Scores", "Significance", "Alignments (AER)"  # help panels
HypsArg = Annotated[list[str] | None, typer.Argument(
    metavar="HYP", help="Hypothesis files, one sentence per line ('-': stdin).")]
RefsOpt = Annotated[list[str] | None, typer.Option(
    "--ref", "-r", metavar="REF", help="Reference file; repeat for several.")]
SetsOpt = Annotated[str | None, typer.Option(
    "--sets", metavar="YAML", help="Several test sets at once, from a YAML file (see the examples).")]
FormatOpt = Annotated[str | None, typer.Option(
    "--format", "-f", help="table (default), json or tsv; with --sentence: jsonl.")]
MetricsOpt = Annotated[list[str] | None, typer.Option(
    "--metric", "--metrics", metavar="NAMES", rich_help_panel=S,
    help="bleu, chrf, chrf++, ter, bleu-paper: comma-separated or repeated. Default: "
         "bleu,chrf,ter.")]
LowercaseOpt = Annotated[bool, typer.Option(
    "--lowercase", rich_help_panel=S,
    help="Lowercase before scoring (BLEU, chrF; TER is case-insensitive).")]
PaperOpt = Annotated[bool, typer.Option(
    "--paper", rich_help_panel=S,
    help="Also BLEU in the Multi30k paper convention (metric bleu-paper): hypothesis and "
         "references Moses-tokenized in the references' language (from their suffix, e.g. "
         ".de), lowercased, scored on those tokens; needs sacremoses.")]
TokenizeOpt = Annotated[str | None, typer.Option(
    "--tokenize", metavar="TOK", rich_help_panel=S,
    help="BLEU tokenizer: 13a (default), none (text is tokenized already), intl, char, zh, ...")]
SentenceOpt = Annotated[bool, typer.Option(
    "--sentence", rich_help_panel=S,
    help="Per-sentence scores, one JSON line per sentence and system.")]
BaselineOpt = Annotated[str | None, typer.Option(
    "--baseline", metavar="HYP", rich_help_panel=P,
    help="Test every system against this one: a hypothesis file (with --sets: a system name).")]
PairedTestOpt = Annotated[str, typer.Option(
    "--paired-test", metavar="bs|ar", rich_help_panel=P,
    help="Paired bootstrap resampling or approximate randomization.")]
BsNOpt = Annotated[int, typer.Option(
    "--paired-bs-n", min=1, rich_help_panel=P,
    help="Bootstrap resamples (also the confidence intervals of ar).")]
ArNOpt = Annotated[int, typer.Option(
    "--paired-ar-n", min=1, rich_help_panel=P, help="Approximate randomization trials.")]
SeedOpt = Annotated[int, typer.Option("--seed", min=1, rich_help_panel=P, help="Random seed.")]
AlignOpt = Annotated[list[str] | None, typer.Option(
    "--align", metavar="PHARAOH", rich_help_panel=A,
    help="Score word alignments (0-indexed 'i-j' lines); repeat for several.")]
GoldOpt = Annotated[str | None, typer.Option(
    "--gold", metavar="TALP", rich_help_panel=A,
    help="Gold alignments: 'i-j' sure, 'ipj' possible links.")]
OneIndexedOpt = Annotated[bool, typer.Option(
    "--gold-one-indexed", rich_help_panel=A,
    help="The gold counts words from 1 (as the NAACL 2003 sets do).")]
ModelOpt = Annotated[list[str] | None, typer.Option(
    "--model", "-m", rich_help_panel="Model mode", show_default=False,
    help="Translate --src with this model (directory or shipped name), then score it; "
         "repeat to compare several.")]
SrcOpt = Annotated[str | None, typer.Option(
    "--src", rich_help_panel="Model mode", show_default=False,
    help="Source file to translate in model mode.")]
BeamOpt = Annotated[int | None, typer.Option(
    "--beam", "-b", min=1, rich_help_panel="Model mode", show_default=False,
    help="Beam size in model mode \\[default: the model's].")]
MaxOutputLenOpt = Annotated[int | None, typer.Option(
    "--max-output-len", rich_help_panel="Model mode", show_default=False,
    help="Never more than this many pieces per translation in model mode \\[default: the "
         "model's decoding.max_output_len, 256].")]
SplitOpt = Annotated[bool, typer.Option(
    "--split/--no-split", rich_help_panel="Model mode",
    help="Translate a line of several sentences sentence by sentence, as translate does.")]
CopyNumbersOpt = Annotated[bool, typer.Option(
    "--copy-numbers/--no-copy-numbers", rich_help_panel="Model mode",
    help="Copy source numbers into the output by attention, as translate does.")]
SaveHypOpt = Annotated[str | None, typer.Option(
    "--save-hyp", rich_help_panel="Model mode", show_default=False,
    help="Keep the model's translations in this file.")]
L = "By length"
ByLengthOpt = Annotated[str | None, typer.Option(
    "--by-length", metavar="SRC", rich_help_panel=L, show_default=False,
    help="Scores by source length: SRC is the source file (line-aligned with the references); "
         "its lines are bucketed by words and every system is scored on each bucket (BLEU "
         "and chrF unless --metric says otherwise), with a bar chart.")]
BucketWidthOpt = Annotated[int | None, typer.Option(
    "--bucket-width", rich_help_panel=L, show_default=False,
    help="Words per length bucket \\[default: 10].")]
MinBucketOpt = Annotated[int | None, typer.Option(
    "--min-bucket", rich_help_panel=L, show_default=False,
    help="The least sentences a bucket holds: neighbours are merged from the short end "
         "\\[default: 50].")]
PngOpt = Annotated[str | None, typer.Option(
    "--png", rich_help_panel=L, show_default=False,
    help="Also draw the first metric by length as a PNG line chart (needs matplotlib).")]
ReverseOpt = Annotated[bool, typer.Option(
    "--reverse", rich_help_panel=A,
    help="The --align files are written target-source: swap each link.")]


@app.command(epilog=EXAMPLES)
def evaluate(
    hyps: HypsArg = None, refs: RefsOpt = None, sets: SetsOpt = None, fmt: FormatOpt = None,
    metrics: MetricsOpt = None, lowercase: LowercaseOpt = False, tokenize: TokenizeOpt = None,
    paper: PaperOpt = False, sentence: SentenceOpt = False, baseline: BaselineOpt = None, paired_test: PairedTestOpt = "bs",
    paired_bs_n: BsNOpt = 1000, paired_ar_n: ArNOpt = 10000, seed: SeedOpt = 12345,
    align: AlignOpt = None, gold: GoldOpt = None, gold_one_indexed: OneIndexedOpt = False,
    reverse: ReverseOpt = False, model: ModelOpt = None, src: SrcOpt = None,
    beam: BeamOpt = None, save_hyp: SaveHypOpt = None,
    max_output_len: MaxOutputLenOpt = None, split: SplitOpt = True,
    copy_numbers: CopyNumbersOpt = True, by_length: ByLengthOpt = None,
    bucket_width: BucketWidthOpt = None, min_bucket: MinBucketOpt = None, png: PngOpt = None,
) -> None:
    """Score translations with sacreBLEU (BLEU, chrF, TER), or word alignments with AER.

    [bold]-r REF HYP...[/bold] scores each hypothesis file against the reference(s);
    [bold]--sets YAML[/bold] scores several test sets in one table (a row per system, a column
    group per set). Each score comes with its sacreBLEU signature; the notes under the table
    (and the JSON) say which convention each number follows. --lowercase --tokenize none
    scores lowercased, tokenized text as published Multi30k figures do.

    [bold]--baseline HYP[/bold] adds sacreBLEU's paired test: mean ± 95% confidence interval of
    each score and the p-value of its difference from the baseline.

    [bold]--align PHARAOH --gold TALP[/bold] reports alignment error rate, precision, recall and
    F1 (Och & Ney 2003); in JSON these are fractions in 0..1.

    [bold]--by-length SRC[/bold] scores each bucket of source lengths (Bahdanau et al. 2015,
    Fig. 2): a table, a bar chart, and with --png a line chart.
    """
    from seqattn.errors import UsageError

    fmt_name = _check_format(fmt, sentence)
    if align:
        given = [name for name, value in [("HYP", hyps), ("--ref", refs), ("--sets", sets),
                 ("--baseline", baseline), ("--sentence", sentence), ("--metric", metrics),
                 ("--lowercase", lowercase), ("--tokenize", tokenize), ("--paper", paper)]
                 if value]
        given += ["--by-length"] if by_length else []
        if given:
            raise UsageError(f"--align scores alignments; it does not combine with {given[0]}")
        if gold is None:
            raise UsageError("--align needs --gold TALP, the gold alignments")
        _evaluate_alignments(align, gold, gold_one_indexed, reverse, fmt_name)
        return
    if gold is not None or gold_one_indexed or reverse:
        raise UsageError("--gold, --gold-one-indexed and --reverse need --align")
    lengths = None
    if by_length is not None:
        from seqattn.bylength import BY_LENGTH_METRICS

        clash = next((flag for flag, given in (("--sets", sets), ("--baseline", baseline),
                                               ("--sentence", sentence)) if given), None)
        if clash:
            raise UsageError(f"--by-length scores one test set by buckets; it does not "
                             f"combine with {clash}")
        metrics = metrics or [",".join(BY_LENGTH_METRICS)]
        from seqattn.bylength import check_buckets

        check_buckets(bucket_width, min_bucket)
        lengths = ByLengthRun(by_length, bucket_width, min_bucket, png)
        _check_png(png, save_hyp, [("--by-length", by_length), ("--src", src),
                                   *(("-r", r) for r in refs or []),
                                   *(("HYP", h) for h in hyps or [])])
    elif png is not None or bucket_width is not None or min_bucket is not None:
        raise UsageError("--png, --bucket-width and --min-bucket belong to --by-length SRC")
    if paper:  # the paper convention beside the others
        from seqattn.evaluate import DEFAULT_METRICS

        metrics = [*(metrics or [",".join(DEFAULT_METRICS)]), "bleu-paper"]
    if model or src is not None:
        if not model or src is None or not refs:
            raise UsageError("model mode needs all of -m MODEL, --src SRC and -r REF")
        if sets is not None:
            raise UsageError("model mode scores one source file; it does not take --sets")
        if save_hyp is not None and len(model) > 1:
            raise UsageError("--save-hyp keeps one model's translations; give one -m with it")
        _evaluate_model(model, src, ModelRun(beam, max_output_len, split, copy_numbers),
                        save_hyp, hyps or [], refs,
                        metrics, lowercase, tokenize, sentence, fmt_name,
                        (baseline, paired_test, paired_bs_n, paired_ar_n, seed), lengths)
        return
    if beam is not None or save_hyp is not None or max_output_len is not None:
        raise UsageError("--beam, --max-output-len and --save-hyp belong to model mode "
                         "(-m MODEL --src SRC)")
    _evaluate_translations(hyps or [], refs or [], sets, metrics, lowercase, tokenize, sentence,
                           fmt_name, (baseline, paired_test, paired_bs_n, paired_ar_n, seed),
                           lengths=lengths)


class ByLengthRun(NamedTuple):
    """``--by-length SRC`` and its bucket settings."""

    source: str
    width: int | None
    min_sentences: int | None
    png: str | None


def _check_png(png: str | None, save_hyp: str | None,
               inputs: list[tuple[str, str | None]]) -> None:
    """Before any work: the chart's path can be written, is no input and not --save-hyp, and
    matplotlib is there."""
    if png is None:
        return
    from seqattn.align.viz import have_matplotlib
    from seqattn.errors import UsageError

    refuse_overwriting_inputs([("--png", png), ("--save-hyp", save_hyp)], inputs)
    check_output_path(png, "--png")
    if not have_matplotlib():
        raise UsageError("--png needs matplotlib, which is not installed: pip install matplotlib")


class ModelRun(NamedTuple):
    """How model mode translates (as ``seqattn translate`` with these flags)."""

    beam: int | None
    max_output_len: int | None
    split: bool
    copy_numbers: bool


def _evaluate_model(models: list[str], src: str, search: ModelRun,
                    save_hyp: str | None,
                    hyps: list[str], refs: list[str], metrics: list[str] | None,
                    lowercase: bool, tokenize: str | None, sentence: bool, fmt: str,
                    paired: tuple[str | None, str, int, int, int],
                    lengths: ByLengthRun | None = None) -> None:
    """Model mode: check every input, translate ``src`` in memory with each model, keep the
    translations in ``save_hyp`` if asked (one model), and score each as the system named
    after its model."""
    from pathlib import Path

    from seqattn import evaluate as ev
    from seqattn.cli.app import tune_cpu
    from seqattn.textio import atomic_open, read_lines
    from seqattn.translate import load, resolve_model

    baseline = paired[0]
    refuse_overwriting_inputs([("--save-hyp", save_hyp)],
                              [("--src", src), *(("-r", r) for r in refs),
                               *(("HYP", h) for h in hyps), ("--baseline", baseline)])
    check_output_path(save_hyp, "--save-hyp")
    for model in models:
        resolve_model(model)  # a bad model name fails before the files are read
    lines = read_lines(src)
    ev.parse_metrics(metrics)
    ev.check_tokenize(tokenize)
    ev.check_set(ev.single_set(refs, hyps, baseline), sentences=len(lines))
    if lengths is not None:   # a bad --by-length file fails before the translating
        from seqattn.bylength import source_lengths

        source_lengths(lengths.source, len(lines))
    names: list[str] = []
    for model in models:
        names.append(_system_name(model, [*hyps, *([baseline] if baseline else []), *names]))
    tune_cpu()
    from seqattn.align.numbers import has_number
    from seqattn.models import has_attention

    texts: dict[str, list[str]] = {}
    for model, name in zip(models, names):
        translator = load(model)
        results = translator.stream(lines, beam=search.beam,
                                    max_output_len=search.max_output_len, attention=False,
                                    split_sentences=search.split)
        if search.copy_numbers and not has_attention(translator.model) and \
                any(has_number(line) for line in lines):
            log.warning("%s: numbers are not copied into its output: it has no attention to "
                        "place them (--no-copy-numbers says so quietly)", name)
        if search.copy_numbers:
            from seqattn.align.numbers import copy_numbers

            out = []
            for tr in results:
                copy_numbers(translator, tr)
                out.append(tr.text)
        else:
            out = [tr.text for tr in results]
        texts[name] = out
        del translator
    if save_hyp is not None:
        with atomic_open(Path(save_hyp)) as f:
            f.writelines(line + "\n" for line in texts[names[0]])
    _evaluate_translations([*hyps, *names], refs, None, metrics, lowercase, tokenize, sentence,
                           fmt, paired, texts=texts, paths={names[0]: save_hyp},
                           lengths=lengths)


def _system_name(model: str, taken: list[str]) -> str:
    """The model as the user named it (``en-de``, ``runs/x``), unique among the systems."""
    name, n = model, 1
    while name in taken:
        n += 1
        name = f"{model} ({n})"
    return name


def _check_format(fmt: str | None, sentence: bool) -> str:
    from seqattn.errors import UsageError

    if sentence:
        if fmt not in (None, "json", "jsonl"):
            raise UsageError("--sentence writes JSON lines; --format must be jsonl or left out")
        return "jsonl"
    if fmt is None:
        return "table"
    if fmt not in FORMATS:
        raise UsageError(f"unknown format '{fmt}'; choose from {', '.join(FORMATS)}")
    return fmt


def _evaluate_translations(
    hyps: list[str], refs: list[str], sets: str | None, metrics: list[str] | None,
    lowercase: bool, tokenize: str | None, sentence: bool, fmt: str,
    paired: tuple[str | None, str, int, int, int],  # baseline, test, bs_n, ar_n, seed
    texts: dict[str, list[str]] | None = None, paths: dict[str, str | None] | None = None,
    lengths: ByLengthRun | None = None,
) -> None:
    from seqattn import evaluate as ev
    from seqattn.errors import UsageError

    baseline = paired[0]
    if sets is not None:
        if hyps or refs:
            raise UsageError("give either --sets YAML or -r REF HYP..., not both")
        test_sets = ev.load_sets(sets)
    elif not refs or not (hyps or baseline):
        raise UsageError("give -r REF and at least one HYP file, or --sets YAML")
    else:
        test_sets = (ev.single_set(refs, hyps, baseline, texts, paths),)
    from seqattn.textio import language_of

    options = ev.ScoringOptions(ev.parse_metrics(metrics), lowercase, tokenize,
                                language_of(test_sets[0].refs[0]))
    if lengths is not None:
        _by_length(test_sets[0], options, lengths, fmt)
        return
    if sentence:
        if baseline is not None:
            raise UsageError("--sentence gives per-sentence scores; it does not take --baseline")
        for record in ev.sentence_scores(test_sets, options):
            emit(json.dumps(record, ensure_ascii=False, allow_nan=False))
        return
    paired_options = None if baseline is None else ev.PairedOptions(baseline, *paired[1:])
    result = ev.evaluate(test_sets, options, paired_options)
    {"table": _print_table, "json": _print_json, "tsv": _print_tsv}[fmt](result)


# --------------------------------------------------------------------------- outputs


def _print_json(result: Evaluation) -> None:
    """One strict JSON object, full precision."""
    options, paired = result.options, result.paired
    document = {
        "convention": {
            "name": options.convention,
            "lowercase": options.lowercase,
            "tokenize": options.bleu_tokenize,
            "metrics": {m: options.describe(m) for m in options.metrics},
        },
        "paired_test": None if paired is None else {
            "test": paired.test, "baseline": paired.baseline, "n_samples": paired.n_samples,
            "bs_n": paired.bs_n, "seed": paired.seed,
        },
        "sets": [
            {"name": s.name, "refs": list(s.refs), "sentences": s.sentences,
             "signatures": dict(s.signatures),
             "systems": [{"name": system.name, "hyp": system.hyp, "baseline": system.is_baseline,
                          "scores": {m: _score_dict(r, paired is not None)
                                     for m, r in system.scores.items()}}
                         for system in s.systems]}
            for s in result.sets
        ],
        "repro": _repro(),
    }
    emit(json.dumps(document, ensure_ascii=False, allow_nan=False, indent=2))


def _repro() -> dict[str, str]:
    """What reproduces the scores beside their signatures: seqattn's and sacreBLEU's versions
    (evaluate reads files; no model or device is involved)."""
    import sacrebleu

    from seqattn import __version__

    return {"seqattn": __version__, "sacrebleu": sacrebleu.__version__}


def _score_dict(r: Any, paired: bool) -> dict[str, Any]:
    d = {"name": r.name, "score": r.score, "signature": r.signature, "formatted": r.formatted}
    if paired:
        d.update(mean=r.mean, ci=r.ci, p_value=r.p_value)
    return d


def _print_tsv(result: Evaluation) -> None:
    """Long format: a header, then one row per set, system and metric."""
    paired = result.paired is not None
    emit("\t".join(["set", "system", "metric", "score", "signature"]
                   + (["mean", "ci", "p_value"] if paired else [])))
    for s in result.sets:
        for system in s.systems:
            for m, r in system.scores.items():
                row = [s.name, system.name, m, repr(r.score), r.signature]
                if paired:
                    row += ["" if v is None else repr(v) for v in (r.mean, r.ci, r.p_value)]
                emit("\t".join(_tsv_field(v) for v in row))


def _tsv_field(value: str) -> str:
    return " ".join(value.replace("\t", " ").splitlines())


def _print_table(result: Evaluation) -> None:
    """A Rich table (a row per system, a column group per set) and notes on conventions."""
    from rich.table import Table
    from rich.text import Text

    metrics, paired = result.options.metrics, result.paired
    several = len(result.sets) > 1
    table = Table(show_lines=paired is not None)
    table.add_column("System", overflow="fold")
    for s in result.sets:
        for i, m in enumerate(metrics):
            name = s.systems[0].scores[m].name
            header = f"{s.name}\n{name}" if several and i == 0 else f"\n{name}" if several else name
            table.add_column(Text(header), justify="right")
    systems = list(dict.fromkeys(system.name for s in result.sets for system in s.systems))
    for name in systems:
        cells = [Text(name + (" (baseline)" if paired and name == paired.baseline else ""))]
        for s in result.sets:
            system = next((x for x in s.systems if x.name == name), None)
            for m in metrics:
                cells.append(Text("-") if system is None else _cell(system.scores[m]))
        table.add_row(*cells)
    console = out_console()
    console.print(table, soft_wrap=False)
    for line in _notes(result):
        console.print(Text(line), soft_wrap=True)


def _cell(r: Any) -> Any:
    """Score (2 decimals, as sacrebleu prints), then mean ± CI and the p-value if tested."""
    from rich.text import Text

    text = f"{r.score:.2f}"
    if r.mean is not None:
        text += f"\nμ {r.mean:.2f} ± {r.ci:.2f}"
    if r.p_value is not None:
        text += f"\np = {r.p_value:.4f}{'*' if r.p_value < 0.05 else ''}"
    return Text(text)


def _notes(result: Evaluation) -> list[str]:
    """The table's caption: convention and signature of every metric, and the paired test."""
    options, lines = result.options, [""]
    for m in options.metrics:
        signatures = list(dict.fromkeys(s.signatures[m] for s in result.sets))
        lines.append(f"{result.sets[0].systems[0].scores[m].name}: {options.describe(m)}")
        lines += [f"  {sig}" for sig in signatures]
    if "ter" in options.metrics:
        lines.append("TER is an error rate: lower is better.")
    if result.paired is not None:
        p = result.paired
        from seqattn.evaluate import PAIRED_TESTS

        trials = "resamples" if p.test == "bs" else "trials"
        lines.append(
            f"{PAIRED_TESTS[p.test].capitalize()} ({p.n_samples} {trials}, seed {p.seed}) "
            f"against {p.baseline}: μ ± 95% confidence interval; p = p-value, "
            "* p < 0.05 (significantly different from the baseline)."
        )
    return lines


# --------------------------------------------------------------------------- by length


def _by_length(test_set: Any, options: Any, run: ByLengthRun, fmt: str) -> None:
    """``--by-length``: the table (or JSON/TSV), the bar chart, and the PNG if asked."""
    from pathlib import Path

    from rich.table import Table
    from rich.text import Text

    from seqattn.bylength import by_length, chart, write_png

    result = by_length(run.source, test_set, options, run.width, run.min_sentences)
    first = result.metrics[0]
    if run.png is not None:
        Path(run.png).parent.mkdir(parents=True, exist_ok=True)
        write_png(result, Path(run.png), first)
    if fmt == "json":
        emit(json.dumps({"by_length": result.as_dict(), "repro": _repro()},
                        ensure_ascii=False, allow_nan=False, indent=2))
        return
    if fmt == "tsv":
        emit("\t".join(["lo", "hi", "sentences", "mean_words", "system", "metric", "score"]))
        for b in result.buckets:
            for system in result.systems:
                for m, r in b.scores[system].items():
                    emit("\t".join([str(b.bucket.lo), str(b.bucket.hi),
                                    str(len(b.bucket.lines)), f"{b.mean_words:.2f}",
                                    _tsv_field(system), m, repr(r.score)]))
        return
    table = Table(title=f"By source length: {result.source}", title_justify="left")
    table.add_column("Words")
    table.add_column("Sentences", justify="right")
    several = len(result.systems) > 1
    for system in result.systems:
        for m in result.metrics:
            name = result.buckets[0].scores[system][m].name
            table.add_column(Text(f"{system}\n{name}" if several else name), justify="right")
    for b in result.buckets:
        table.add_row(b.bucket.label, str(len(b.bucket.lines)),
                      *(f"{b.scores[s][m].score:.2f}" for s in result.systems
                        for m in result.metrics))
    console = out_console()
    console.print(table, soft_wrap=False)
    console.print(Text("\n".join(["", *chart(result, first)])), soft_wrap=True)
    notes = [f"Buckets of {result.width} words, merged until each holds {result.min_sentences} "
             "sentences; each score is sacreBLEU's corpus score of its bucket's lines."]
    small = [b.bucket.label for b in result.buckets if len(b.bucket.lines) < result.min_sentences]
    if small:   # only when all lines together are fewer than --min-bucket
        notes.append(f"Only {sum(len(b.bucket.lines) for b in result.buckets)} sentences have "
                     f"words: fewer than {result.min_sentences}, so they form one bucket.")
    if "ter" in result.metrics:
        notes.append("TER is an error rate: lower is better (its bars are errors).")
    if result.skipped:
        notes.append(f"{result.skipped} empty source line(s) are in no bucket.")
    notes += [f"{m}: {result.signatures[m]}" for m in result.metrics]
    if run.png is not None:
        notes.append(f"chart written to {run.png}")
    console.print(Text("\n".join(["", *notes])), soft_wrap=True)


# --------------------------------------------------------------------------- alignments


def _evaluate_alignments(
    files: list[str], gold: str, gold_one_indexed: bool, reverse: bool, fmt: str
) -> None:
    from dataclasses import asdict

    from seqattn.align.aer import score_files

    results = [(f, score_files(f, gold, gold_one_indexed=gold_one_indexed, reverse=reverse))
               for f in files]
    if fmt == "json":  # rates are fractions in [0, 1]
        document = {"gold": gold, "gold_one_indexed": gold_one_indexed, "reverse": reverse,
                    "alignments": [{"hyp": f, **asdict(r)} for f, r in results],
                    "repro": {"seqattn": _repro()["seqattn"]}}
        emit(json.dumps(document, ensure_ascii=False, allow_nan=False, indent=2))
    elif fmt == "tsv":
        emit("\t".join(["hyp", *asdict(results[0][1])]))
        for f, r in results:
            emit("\t".join([_tsv_field(f), *(repr(v) for v in asdict(r).values())]))
    else:
        _print_aer_table(results, gold)


def _print_aer_table(results: list[tuple[str, AlignmentScores]], gold: str) -> None:
    from rich.table import Table
    from rich.text import Text

    table = Table()
    table.add_column("Alignment", overflow="fold")
    for header in ("AER%", "Prec%", "Rec%", "F1%", "Links", "Sure", "Possible"):
        table.add_column(header, justify="right")
    for f, r in results:
        rates = [f"{100 * v:.1f}" for v in (r.aer, r.precision, r.recall, r.f1)]
        counts = [str(n) for n in (r.hyp_links, r.sure_links, r.possible_links)]
        table.add_row(Text(f), *rates, *counts)
    console = out_console()
    console.print(table, soft_wrap=False)
    console.print(Text(f"\nGold: {gold} ({results[0][1].sentences} sentences; possible links "
                       "include sure ones). AER = 1 - (|A∩S| + |A∩P|) / (|A| + |S|)."), soft_wrap=True)
