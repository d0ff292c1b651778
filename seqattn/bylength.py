"""Quality by sentence length: sacreBLEU scores of each bucket of source lengths.

Bahdanau et al. (2015, Fig. 2) made the case for attention with one plot: BLEU against the
length of the source sentence, for encoder-decoders with and without attention; the model
that squeezes the source into one fixed vector falls off as sentences grow. This module
scores any systems that way. The source lines are counted in whitespace words (the words
``seqattn align`` links), put in buckets ``width`` words wide (1-10, 11-20, ...), and
neighbouring buckets are merged from the short end until each holds ``min_sentences`` lines
(a last bucket short of that joins the one before), so no score rests on a handful of
sentences. Each bucket's score is sacreBLEU's corpus score of that bucket's lines (the same
metric objects as :func:`seqattn.evaluate.evaluate`); nothing is averaged over sentences.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from seqattn.errors import DataError, UsageError
from seqattn.evaluate import (
    EvalSet,
    MetricResult,
    ScoringOptions,
    _load,
    _make_metric,
    _result,
    parse_metrics,
)
from seqattn.textio import atomic_open, read_lines

#: what a bucket is scored with unless --metric says otherwise (the issue's pair; TER is
#: not needed to see the curve)
BY_LENGTH_METRICS = ("bleu", "chrf")
#: words per bucket, and the least sentences a bucket holds, unless asked otherwise
BUCKET_WIDTH, MIN_SENTENCES = 10, 50


@dataclass(frozen=True)
class LengthBucket:
    """Source lengths ``lo``..``hi`` words (inclusive) and the 0-based lines that have them."""

    lo: int
    hi: int
    lines: tuple[int, ...]

    @property
    def label(self) -> str:
        return str(self.lo) if self.lo == self.hi else f"{self.lo}–{self.hi}"


def check_buckets(width: int | None, min_sentences: int | None) -> None:
    """:raises UsageError: a bucket width or least sentences (None: the default) below 1."""
    for flag, value in (("--bucket-width", width), ("--min-bucket", min_sentences)):
        if value is not None and value < 1:
            raise UsageError(f"{flag} must be at least 1, got {value}")


def length_buckets(lengths: Sequence[int], width: int = BUCKET_WIDTH,
                   min_sentences: int = MIN_SENTENCES) -> list[LengthBucket]:
    """Buckets of ``width`` words, merged from the short end until each holds
    ``min_sentences`` lines; a last bucket with fewer joins the previous one. Lines of 0
    words (empty sources) belong to no bucket.

    >>> [(b.label, len(b.lines)) for b in length_buckets([3, 4, 12, 25, 26, 27], 10, 2)]
    [('1–10', 2), ('11–30', 4)]
    """
    check_buckets(width, min_sentences)
    bins: dict[int, list[int]] = {}
    for i, n in enumerate(lengths):
        if n > 0:
            bins.setdefault((n - 1) // width, []).append(i)
    groups: list[tuple[int, int, list[int]]] = []   # (first bin, last bin, lines)
    open_group: tuple[int, int, list[int]] | None = None
    for b in sorted(bins):
        lo = b if open_group is None else open_group[0]
        lines = (open_group[2] if open_group else []) + bins[b]
        open_group = (lo, b, lines)
        if len(lines) >= min_sentences:
            groups.append(open_group)
            open_group = None
    if open_group is not None:
        if groups:   # too few for a bucket of its own: join the previous bucket
            lo, _, lines = groups.pop()
            open_group = (lo, open_group[1], lines + open_group[2])
        groups.append(open_group)
    return [LengthBucket(lo * width + 1, (hi + 1) * width, tuple(sorted(lines)))
            for lo, hi, lines in groups]


@dataclass(frozen=True)
class BucketScores:
    bucket: LengthBucket
    mean_words: float                                   # mean source length in the bucket
    scores: Mapping[str, Mapping[str, MetricResult]]    # system -> metric id -> result


@dataclass(frozen=True)
class ByLength:
    """Every bucket's scores for every system of one test set."""

    source: str
    width: int
    min_sentences: int
    metrics: tuple[str, ...]
    systems: tuple[str, ...]
    buckets: tuple[BucketScores, ...]
    signatures: Mapping[str, str]                       # metric id -> sacreBLEU signature
    skipped: int                                        # empty source lines, in no bucket

    def as_dict(self) -> dict[str, object]:
        """The JSON form (``evaluate --by-length --format json``)."""
        return {
            "source": self.source, "bucket_width": self.width,
            "min_sentences": self.min_sentences, "metrics": list(self.metrics),
            "signatures": dict(self.signatures), "systems": list(self.systems),
            "empty_sources_skipped": self.skipped,
            "buckets": [{"words": [b.bucket.lo, b.bucket.hi], "label": b.bucket.label,
                         "sentences": len(b.bucket.lines), "mean_words": b.mean_words,
                         "scores": {s: {m: r.score for m, r in by_metric.items()}
                                    for s, by_metric in b.scores.items()}}
                        for b in self.buckets],
        }


def source_lengths(source: str | Path, lines: int) -> list[int]:
    """Words of each line of ``source``, checked to be ``lines`` lines with some words (call it
    before translating: a bad file fails at once).

    :raises DataError: unreadable, another number of lines, or no words at all.
    """
    src = read_lines(source)
    if len(src) != lines:
        raise DataError(f"--by-length source '{source}' has {len(src)} lines but the "
                        f"references have {lines}; the files must be line-aligned")
    lengths = [len(line.split()) for line in src]
    if not any(lengths):
        raise DataError(f"'{source}' has no words to measure")
    return lengths


def by_length(source: str | Path, test_set: EvalSet, options: ScoringOptions,
              width: int | None = None, min_sentences: int | None = None) -> ByLength:
    """Score every system of ``test_set`` on each bucket of ``source``'s lengths (see the
    module docstring; ``None``: :data:`BUCKET_WIDTH`, :data:`MIN_SENTENCES`). ``source`` is
    line-aligned with the references.

    :raises DataError: a file is unreadable or the line counts differ.
    """
    width = BUCKET_WIDTH if width is None else width
    min_sentences = MIN_SENTENCES if min_sentences is None else min_sentences
    metrics = parse_metrics(options.metrics)
    refs, hyps = _load(test_set)
    lengths = source_lengths(source, len(refs[0]))
    buckets = length_buckets(lengths, width, min_sentences)
    out, signatures = [], {}
    for bucket in buckets:
        pick = bucket.lines
        bucket_refs = [[stream[i] for i in pick] for stream in refs]
        objects = {m: _make_metric(m, options, bucket_refs) for m in metrics}
        signatures = {m: o.get_signature().format() for m, o in objects.items()}
        scores = {system: {m: _result(m, o.corpus_score([lines[i] for i in pick], None),
                                      signatures[m], None) for m, o in objects.items()}
                  for system, lines in hyps.items()}
        out.append(BucketScores(bucket, sum(lengths[i] for i in pick) / len(pick), scores))
    return ByLength(str(source), width, min_sentences, metrics, tuple(hyps), tuple(out),
                    signatures, sum(1 for n in lengths if n == 0))


def chart(result: ByLength, metric: str, bar_width: int = 40) -> list[str]:
    """A terminal bar chart of ``metric`` by bucket, one bar per system (plain text).

    Bars share one scale (the highest score fills ``bar_width`` cells) and end in the score.
    """
    best = max((b.scores[s][metric].score for b in result.buckets for s in result.systems),
               default=0.0)
    label_w = max(len(b.bucket.label) for b in result.buckets)
    name_w = max(len(s) for s in result.systems)
    lines = [f"{result.buckets[0].scores[result.systems[0]][metric].name} by source length "
             "(words; sentences)"]
    for b in result.buckets:
        for k, system in enumerate(result.systems):
            score = b.scores[system][metric].score
            cells = 0 if best <= 0 else round(bar_width * max(score, 0.0) / best)
            head = f"{b.bucket.label:>{label_w}} ({len(b.bucket.lines):>4})" if k == 0 \
                else " " * (label_w + 7)
            lines.append(f"{head}  {system:<{name_w}}  {'█' * cells} {score:.1f}")
    return lines


def write_png(result: ByLength, path: Path, metric: str) -> None:
    """``metric`` against the buckets' mean source length, one line per system (as Bahdanau
    et al. 2015, Fig. 2), written atomically. Needs matplotlib."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.4, 4.0), dpi=120)
    x = [b.mean_words for b in result.buckets]
    for system in result.systems:
        ax.plot(x, [b.scores[system][metric].score for b in result.buckets], marker="o",
                label=system)
    name = result.buckets[0].scores[result.systems[0]][metric].name
    ax.set_xlabel("source length (words; each point a bucket, at its mean length)")
    ax.set_ylabel(name)
    ax.set_title(f"{name} by sentence length")
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    try:
        with atomic_open(path, "wb") as f:
            fig.savefig(f, format="png")
    finally:
        plt.close(fig)
