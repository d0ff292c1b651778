"""Scoring translations with sacreBLEU: BLEU, chrF and TER, several test sets, paired tests.

A thin layer over sacrebleu's metric objects (``BLEU``, ``CHRF``, ``TER``) and ``PairedTest``:
it reads and checks the files and collects scores and signatures, computing no metric itself.
Scores follow sacreBLEU's defaults unless asked; published Multi30k figures score lowercased,
tokenized text as is: ``ScoringOptions(lowercase=True, tokenize="none")``.
"""

from __future__ import annotations

import difflib
import logging
import os
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from seqattn.errors import ConfigError, DataError, UsageError
from seqattn.textio import read_lines

logger = logging.getLogger(__name__)

METRICS = {"bleu": "BLEU", "chrf": "chrF", "chrf++": "chrF++", "ter": "TER",  # id -> name
           "bleu-paper": "BLEU (paper)"}
DEFAULT_METRICS = ("bleu", "chrf", "ter")
PAIRED_TESTS = {"bs": "paired bootstrap resampling", "ar": "paired approximate randomization"}


def _unknown(kind: str, value: str, choices: Sequence[str]) -> str:
    close = difflib.get_close_matches(value, list(choices), n=1)
    hint = f" (did you mean '{close[0]}'?)" if close else ""
    return f"unknown {kind} '{value}'{hint}; choose from {', '.join(choices)}"


def parse_metrics(values: Sequence[str] | None) -> tuple[str, ...]:
    """Metric ids from ``--metric`` values, each maybe comma-separated (``bleu,chrf``);
    none: :data:`DEFAULT_METRICS`. :raises UsageError: an unknown metric."""
    ids: list[str] = []
    for item in ",".join(values or ()).split(","):
        item = item.strip().lower()
        if item and item not in METRICS:
            raise UsageError(_unknown("metric", item, list(METRICS)))
        if item and item not in ids:
            ids.append(item)
    return tuple(ids) or DEFAULT_METRICS


def check_tokenize(tokenize: str | None) -> None:
    """:raises UsageError: ``tokenize`` is not one of sacrebleu's BLEU tokenizers."""
    from sacrebleu.metrics import BLEU

    if tokenize is not None and tokenize not in BLEU.TOKENIZERS:
        raise UsageError(_unknown("BLEU tokenizer", tokenize, list(BLEU.TOKENIZERS)))


@dataclass(frozen=True)
class ScoringOptions:
    """Metric ids, whether to ``lowercase`` (BLEU, chrF; sacrebleu's TER is case-insensitive
    anyway), and BLEU's tokenizer (``tokenize=None``: sacrebleu's default, 13a)."""

    metrics: tuple[str, ...] = DEFAULT_METRICS
    lowercase: bool = False
    tokenize: str | None = None
    language: str = "en"   # the references' language, for bleu-paper's Moses tokenizer

    @property
    def bleu_tokenize(self) -> str:
        return self.tokenize or "13a"

    @property
    def convention(self) -> str:
        """``paper`` (lowercased, tokenize none), ``sacrebleu`` (the default) or ``custom``."""
        if self.lowercase and self.bleu_tokenize == "none":
            return "paper"
        return "custom" if self.lowercase or self.bleu_tokenize != "13a" else "sacrebleu"

    def describe(self, metric: str) -> str:
        """In words, the convention that a score of ``metric`` (an id) follows."""
        case = "lowercased" if self.lowercase else "cased"
        if metric == "ter":
            return "case-insensitive, tercom tokenization (sacreBLEU's TER default)"
        if metric == "bleu-paper":
            return (f"the Multi30k paper convention: hypothesis and references Moses-tokenized "
                    f"({self.language}, sacremoses, no escaping), then lowercased, BLEU on "
                    "those tokens (multi-bleu.perl -lc)")
        if metric != "bleu":
            return f"{case}, character n-grams (no tokenization)"
        return f"{case}, tokenize={self.bleu_tokenize}" + {
            "paper": ": the paper convention (like multi-bleu.perl -lc); comparable with "
            "published Multi30k figures when the text is Moses-tokenized",
            "sacrebleu": ": the sacreBLEU default, for detokenized text",
        }.get(self.convention, "")


@dataclass(frozen=True)
class PairedOptions:
    """A paired test of every system against ``baseline``: ``bs`` (paired bootstrap,
    ``bs_n`` resamples) or ``ar`` (approximate randomization, ``ar_n`` trials; confidence
    intervals from ``bs_n`` resamples). ``seed`` >= 1: sacrebleu takes 0 as "no seed"."""

    baseline: str
    test: str = "bs"
    bs_n: int = 1000
    ar_n: int = 10000
    seed: int = 12345

    def __post_init__(self) -> None:
        if self.test not in PAIRED_TESTS:
            raise UsageError(_unknown("paired test", self.test, list(PAIRED_TESTS)))
        if min(self.bs_n, self.ar_n, self.seed) < 1:
            raise UsageError("the seed and the numbers of resamples and trials must be >= 1")

    @property
    def n_samples(self) -> int:
        return self.bs_n if self.test == "bs" else self.ar_n


@dataclass(frozen=True)
class EvalSet:
    """One test set: reference file(s) and hypothesis files as (system name, path) pairs."""

    name: str
    refs: tuple[str, ...]
    hyps: tuple[tuple[str, str], ...]
    #: hypotheses already in memory, by system name (model mode translates into these instead
    #: of a temporary file); a system listed here is not read from its path
    texts: Mapping[str, Sequence[str]] = field(default_factory=dict)


def single_set(refs: Sequence[str], hyps: Sequence[str], baseline: str | None = None,
               texts: Mapping[str, Sequence[str]] | None = None,
               paths: Mapping[str, str | None] | None = None) -> EvalSet:
    """The set of ``-r REF ... HYP ...``, systems named by their paths; a ``baseline`` file
    that is not among ``hyps`` is added as the first system. A name in ``texts`` is a system
    held in memory (its hypotheses), shown with its path in ``paths`` if it has one."""
    texts, paths = texts or {}, paths or {}
    names = ([baseline] if baseline is not None and baseline not in hyps else []) + list(hyps)
    for i, name in enumerate(names):
        if name in names[:i]:
            raise UsageError(f"hypothesis '{name}' is given twice")
    return EvalSet(name=refs[0], refs=tuple(refs),
                   hyps=tuple((n, paths.get(n) or n) for n in names), texts=dict(texts))


def load_sets(path: str | Path) -> tuple[EvalSet, ...]:
    """Read a YAML file of test sets; relative paths are relative to the YAML file::

        test2016:
          refs: test_2016_flickr.de         # a path or a list of paths
          hyps: {rnn: rnn.2016.de, transformer: tf.2016.de}   # system name -> path

    :raises ConfigError: invalid YAML, or a set not of this form.
    """
    import yaml

    try:
        data = yaml.safe_load("\n".join(read_lines(path)))
    except yaml.YAMLError as e:
        raise ConfigError(f"'{path}' is not valid YAML: {' '.join(str(e).split())}") from None
    if not isinstance(data, dict) or not data:
        raise ConfigError(f"'{path}' must map test-set names to {{refs: ..., hyps: ...}}")
    base = Path(path).parent
    return tuple(_parse_set(str(k), spec, base, f"{path}: {k}") for k, spec in data.items())


def _parse_set(name: str, spec: Any, base: Path, where: str) -> EvalSet:
    if not isinstance(spec, dict):
        raise ConfigError(f"{where}: expected a mapping with 'refs' and 'hyps'")
    for key in spec:
        if key not in ("refs", "hyps"):
            raise ConfigError(f"{where}: {_unknown('key', str(key), ['refs', 'hyps'])}")
    refs = [spec.get("refs")] if isinstance(spec.get("refs"), str) else spec.get("refs")
    hyps = spec.get("hyps")
    if not refs or not isinstance(refs, list) or not all(isinstance(p, str) for p in refs):
        raise ConfigError(f"{where}: 'refs' must be a file path or a list of file paths")
    if not hyps or not isinstance(hyps, dict) or not all(isinstance(p, str) for p in hyps.values()):
        raise ConfigError(f"{where}: 'hyps' must map system names to file paths")
    resolve = lambda p: str(base / Path(p).expanduser())  # noqa: E731  (absolute p wins)
    return EvalSet(name, tuple(map(resolve, refs)), tuple((str(s), resolve(p))
                                                          for s, p in hyps.items()))


def check_set(test_set: EvalSet, sentences: int | None = None) -> None:
    """Read and check every file of ``test_set`` now (before a slow translation): each exists,
    is text, and has as many lines as the first reference and, if given, ``sentences``.

    :raises DataError: naming the file and both line counts."""
    refs, _ = _load(test_set)
    if sentences is not None and len(refs[0]) != sentences:
        raise DataError(f"reference '{test_set.refs[0]}' has {len(refs[0])} lines but the "
                        f"source has {sentences}; the files must be line-aligned")


def _load(test_set: EvalSet) -> tuple[list[list[str]], dict[str, list[str]]]:
    """Read and check every file of a set: (reference streams, {system: hypotheses})."""
    refs = [read_lines(p) for p in test_set.refs]
    first, n = test_set.refs[0], len(refs[0])
    for path, lines in zip(test_set.refs[1:], refs[1:]):
        if len(lines) != n:
            raise DataError(f"reference '{path}' has {len(lines)} lines but '{first}' has {n}")
    hyps = {system: list(test_set.texts[system]) if system in test_set.texts
            else read_lines(path) for system, path in test_set.hyps}
    for system, path in test_set.hyps:
        if len(hyps[system]) != n:
            raise DataError(f"hypothesis '{path}' has {len(hyps[system])} lines "
                            f"but reference '{first}' has {n}")
    return refs, hyps


@dataclass(frozen=True)
class MetricResult:
    """One corpus score from sacrebleu; ``formatted`` is its ``Score.format`` line. With a
    paired test: bootstrap ``mean`` and ``ci`` (half-width of the 95% interval), and
    ``p_value`` against the baseline (``None`` for the baseline itself)."""

    metric: str
    name: str
    score: float
    signature: str
    formatted: str
    mean: float | None = None
    ci: float | None = None
    p_value: float | None = None


@dataclass(frozen=True)
class SystemResult:
    name: str
    hyp: str
    is_baseline: bool
    scores: Mapping[str, MetricResult]  # metric id -> result, in the order asked for


@dataclass(frozen=True)
class SetResult:
    name: str
    refs: tuple[str, ...]
    sentences: int
    systems: tuple[SystemResult, ...]
    signatures: Mapping[str, str]  # metric id -> sacrebleu signature


@dataclass(frozen=True)
class Evaluation:
    sets: tuple[SetResult, ...]
    options: ScoringOptions
    paired: PairedOptions | None = None


def evaluate(
    sets: Sequence[EvalSet], options: ScoringOptions | None = None,
    paired: PairedOptions | None = None,
) -> Evaluation:
    """Score every system of every set; with ``paired``, test each against the baseline.
    Every file is read and checked first.

    :raises DataError: a file is unreadable, empty, binary, or has the wrong number of lines.
    :raises UsageError: unknown metric or tokenizer, or a baseline missing from a set.
    """
    options = options or ScoringOptions()
    parse_metrics(options.metrics)
    check_tokenize(options.tokenize)
    loaded = [_load(s) for s in sets]
    for s in sets if paired is not None else ():
        assert paired is not None  # for mypy: the loop runs only with a paired test
        names = [system for system, _ in s.hyps]
        if paired.baseline not in names:
            raise UsageError(f"baseline '{paired.baseline}' is not a system of set '{s.name}' "
                             f"(systems: {', '.join(names)})")
        if len(names) < 2:
            raise UsageError(f"set '{s.name}': the baseline is its only system")
    results = [_score_set(s, *data, options, paired) for s, data in zip(sets, loaded)]
    return Evaluation(tuple(results), options, paired)


def _make_metric(metric: str, options: ScoringOptions, refs: Any, sentence: bool = False) -> Any:
    """A sacrebleu metric object; given ``refs``, it caches their statistics."""
    from sacrebleu.metrics import BLEU, CHRF, TER

    if metric == "ter":
        return TER(references=refs)
    if metric == "bleu-paper":
        return _paper_bleu(options.language, refs, sentence)
    if metric.startswith("chrf"):  # chrF++ adds word bigrams
        return CHRF(word_order=2 * (metric == "chrf++"), lowercase=options.lowercase,
                    references=refs)
    tokenize = options.bleu_tokenize
    try:  # force: with tokenize=none the text is tokenized on purpose; no warning about it
        return BLEU(lowercase=options.lowercase, tokenize=tokenize, force=tokenize == "none",
                    effective_order=sentence, references=refs)
    except (ImportError, OSError, RuntimeError) as e:  # tokenizers with extra dependencies
        raise UsageError(f"BLEU tokenizer '{tokenize}' cannot be used here: {e}") from None


def _paper_bleu(language: str, refs: Any, sentence: bool) -> Any:
    """BLEU as published Multi30k figures compute it: each segment Moses-tokenized (sacremoses,
    ``escape=False``, as bench/score_models.py did for the README's model table), lowercased,
    and scored on those tokens. Its signature says ``tok:moses-LANG``."""
    from sacrebleu.metrics import BLEU

    try:
        from sacremoses import MosesTokenizer
    except ImportError:
        raise UsageError("the paper convention (--paper) needs sacremoses: pip install "
                         "sacremoses (or 'seqattn[align]')") from None
    moses = MosesTokenizer(language)

    class PaperBLEU(BLEU):
        def _preprocess_segment(self, sent: str) -> str:
            return str(moses.tokenize(sent.rstrip(), escape=False, return_str=True)).lower()

    metric = PaperBLEU(lowercase=True, tokenize="none", force=True, effective_order=sentence,
                       references=refs)
    metric.tokenizer_signature = f"moses-{language}"
    return metric


def _score_set(
    test_set: EvalSet, refs: list[list[str]], hyps: dict[str, list[str]],
    options: ScoringOptions, paired: PairedOptions | None,
) -> SetResult:
    metrics = {m: _make_metric(m, options, refs) for m in options.metrics}
    scores = {(system, m): metric.corpus_score(lines, None)
              for system, lines in hyps.items() for m, metric in metrics.items()}
    signatures = {m: metric.get_signature().format() for m, metric in metrics.items()}
    tests: dict[tuple[str, str], Any] = {}
    if paired is not None:
        signatures, tests = _paired_test(metrics, hyps, paired)
    systems = []
    for system, path in test_set.hyps:
        results = {m: _result(m, scores[system, m], signatures[m], tests.get((system, m)))
                   for m in metrics}
        is_baseline = paired is not None and system == paired.baseline
        systems.append(SystemResult(system, path, is_baseline, results))
    return SetResult(test_set.name, test_set.refs, len(refs[0]), tuple(systems), signatures)


def _result(metric: str, score: Any, signature: str, test: Any) -> MetricResult:
    """A MetricResult from a sacrebleu Score and, maybe, a significance.Result."""
    def number(name: str) -> float | None:
        value = getattr(test, name, None)
        return None if value is None else float(value)  # numpy floats -> float

    name = METRICS[metric] if metric == "bleu-paper" else score.name
    return MetricResult(metric, name, float(score.score), signature,
                        score.format(signature=signature), mean=number("mean"),
                        ci=number("ci"), p_value=number("p_value"))


def _paired_test(
    metrics: dict[str, Any], hyps: dict[str, list[str]], paired: PairedOptions
) -> tuple[dict[str, str], dict[tuple[str, str], Any]]:
    """Run sacrebleu's PairedTest: (signatures, {(system, metric id): its Result})."""
    from sacrebleu.significance import PairedTest

    order = [paired.baseline] + [name for name in hyps if name != paired.baseline]
    with _sacrebleu_seed(paired.seed):
        test = PairedTest([(name, hyps[name]) for name in order], metrics,
                          references=None,  # the metrics hold the references' statistics
                          test_type=paired.test, n_samples=paired.n_samples,
                          n_ar_confidence=paired.bs_n if paired.test == "ar" else -1)
        signatures, table = test()
    ids = {score_name: next(m for m, obj in metrics.items() if obj is metric)
           for score_name, metric in test.metrics.items()}  # "chrF2" -> "chrf"
    results: dict[tuple[str, str], Any] = {
        (str(system), ids[score_name]): result for score_name in ids
               for system, result in zip(table["System"], table[score_name])}
    return {ids[name]: sig.format() for name, sig in signatures.items()}, results


@contextmanager
def _sacrebleu_seed(seed: int) -> Iterator[None]:
    """sacrebleu's paired tests read their seed from ``SACREBLEU_SEED``: set it meanwhile."""
    old = os.environ.get("SACREBLEU_SEED")
    os.environ["SACREBLEU_SEED"] = str(seed)
    try:
        yield
    finally:
        if old is None:
            del os.environ["SACREBLEU_SEED"]
        else:
            os.environ["SACREBLEU_SEED"] = old


def sentence_scores(
    sets: Sequence[EvalSet], options: ScoringOptions | None = None
) -> Iterator[dict[str, Any]]:
    """Per-sentence scores for error analysis: one record per sentence and system,
    ``{"set", "system", "id" (0-based line), "hyp", "refs", "scores": {metric id: score}}``.

    Every file is read and checked here, before the first record. BLEU uses the effective
    n-gram order, as sacrebleu does for sentence BLEU.
    """
    options = options or ScoringOptions()
    parse_metrics(options.metrics)
    check_tokenize(options.tokenize)
    loaded = [_load(s) for s in sets]
    return _sentence_records(sets, loaded, options)


def _sentence_records(
    sets: Sequence[EvalSet], loaded: list[Any], options: ScoringOptions
) -> Iterator[dict[str, Any]]:
    for test_set, (refs, hyps) in zip(sets, loaded):
        metrics = {m: _make_metric(m, options, None, sentence=True) for m in options.metrics}
        for n, (system, lines) in enumerate(hyps.items()):
            for i, hyp in enumerate(lines):
                sent_refs = [stream[i] for stream in refs]
                scores = {m: obj.sentence_score(hyp, sent_refs).score for m, obj in metrics.items()}
                if n == i == 0:  # signatures are complete once a sentence is scored
                    for m, obj in metrics.items():
                        logger.info("%s|%s", METRICS[m], obj.get_signature().format())
                yield {"set": test_set.name, "system": system, "id": i, "hyp": hyp,
                       "refs": sent_refs, "scores": scores}
