"""Choose the attention view that aligns best on a gold set (``seqattn align --calibrate``).

Every pair of the gold set is force-decoded once, keeping the attention of every decoder layer
and head; then each view — layer × heads (mean, max, each head) × {plain, shift-att} — and
each way of extracting links (argmax per target word, or every pair with weight ≥ 0.3, 0.4,
0.5; only the one asked for when ``--method``/``--threshold`` are given) is scored with the
alignment error rate (:func:`seqattn.align.aer.aer`). Then, for a Transformer, the best of those
views is blended with a second view read plainly (:class:`seqattn.align.views.Blend`: each layer's
head mean at weights ``BLEND_WEIGHTS``), with every extraction again. The lowest AER wins
(ties: the first in that order, so the simpler setting; a blend only when it is strictly
better). The winner is stored in the model directory's ``seqattn.json`` as ``"alignment":
{"layer", "heads", "shift", "blend", "method", "threshold", "aer"}`` (other keys there are
kept), which later runs of ``align`` (and the view of ``translate --align``) use by default.

A gold set is three line-aligned files: ``*.src`` and ``*.tgt`` (whitespace-tokenised text, as
the links count words) and ``*.talp`` (``i-j`` sure, ``ipj`` possible links). Give their
directory (holding exactly one file of each kind) or the three paths joined by commas. The
talp file may count from 1 (as the NAACL 2003 sets and ours do) or from 0: a file without any
index 0 is read as 1-indexed.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from seqattn.align.aer import AlignmentScores, GoldAlignment, aer, parse_talp
from seqattn.align.force import PairAlignment, force_align
from seqattn.align.links import Extraction, both_ways, extract_links
from seqattn.align.settings import AlignmentSettings, StoredSym, model_shape, resolve_view
from seqattn.align.symmetrize import HEURISTICS, SOFT
from seqattn.align.views import Blend, View, view_rows
from seqattn.align.words import word_weights
from seqattn.errors import DataError, UsageError
from seqattn.textio import read_lines

if TYPE_CHECKING:
    from seqattn.translate import Translator

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class SweepRow:
    """One view, one link extraction, and their scores on the gold set."""

    view: View
    scores: AlignmentScores
    extraction: Extraction = Extraction()

THRESHOLDS = (0.3, 0.4, 0.5)
BLEND_WEIGHTS = (0.2, 0.3, 0.4, 0.5)


def candidate_extractions(given: Extraction | None) -> list[Extraction]:
    """The extraction asked for, else argmax, and each threshold of ``THRESHOLDS`` alone, as
    the least weight of a confident argmax link, and on the matrix read both ways (bidir)."""
    if given is not None:
        return [given]
    return [Extraction()] + [Extraction(m, t) for m in ("threshold", "confident", "bidir")
                             for t in THRESHOLDS]


def gold_files(spec: str | Path) -> tuple[Path, Path, Path]:
    """(src, tgt, talp) from a directory or from ``SRC,TGT,TALP``."""
    text = str(spec)
    if "," in text:
        parts = [Path(p) for p in text.split(",")]
        if len(parts) != 3:
            raise DataError(f"--calibrate takes a directory or SRC,TGT,TALP; got '{text}'")
        return parts[0], parts[1], parts[2]
    folder = Path(text)
    if not folder.is_dir():
        raise DataError(f"gold '{text}' is not a directory; give a directory holding *.src, "
                        "*.tgt and *.talp, or SRC,TGT,TALP")
    found = []
    for suffix in (".src", ".tgt", ".talp"):
        files = sorted(folder.glob(f"*{suffix}"))
        if len(files) != 1:
            raise DataError(f"gold directory '{folder}' needs exactly one *{suffix} file, "
                            f"found {len(files)}")
        found.append(files[0])
    return found[0], found[1], found[2]


def read_gold(spec: str | Path) -> tuple[list[tuple[str, str]], list[GoldAlignment]]:
    """The sentence pairs and gold links of a gold set (links 0-based, checked in range)."""
    src_path, tgt_path, talp_path = gold_files(spec)
    src, tgt = read_lines(src_path), read_lines(tgt_path)
    talp = read_lines(talp_path, allow_empty=True)
    if not len(src) == len(tgt) == len(talp):
        raise DataError(f"gold files differ in length: '{src_path}' has {len(src)} lines, "
                        f"'{tgt_path}' {len(tgt)}, '{talp_path}' {len(talp)}")
    one_indexed = not any(_has_zero(line) for line in talp)
    log.debug("reading '%s' as %s-indexed", talp_path, 1 if one_indexed else 0)
    gold = []
    for n, (s, t, line) in enumerate(zip(src, tgt, talp), start=1):
        g = parse_talp(line, one_indexed=one_indexed, where=f"{talp_path}:{n}")
        n_src, n_tgt = len(s.split()), len(t.split())
        bad = next(((i, j) for i, j in sorted(g.possible) if i >= n_src or j >= n_tgt), None)
        if bad is not None:
            base = int(one_indexed)
            raise DataError(f"{talp_path}:{n}: link {bad[0] + base}-{bad[1] + base} is outside "
                            f"the sentence pair ({n_src} source, {n_tgt} target words)")
        gold.append(g)
    return list(zip(src, tgt)), gold


def _has_zero(line: str) -> bool:
    return any("0" in token.replace("p", "-").split("-") for token in line.split())


def candidate_views(translator: Translator, merge: str = "sum") -> list[View]:
    """Every view to try, simplest first: per layer, heads mean, max, 0..H-1; plain, shift."""
    n_layers, n_heads = model_shape(translator)
    heads = ["mean"] + (["max", *map(str, range(n_heads))] if n_heads > 1 else [])
    return [View(layer, h, shift, merge)
            for layer in range(n_layers) for h in heads for shift in (False, True)]


def blended_views(translator: Translator, view: View) -> list[View]:
    """``view`` blended with each layer's head mean, read plainly, at each of
    ``BLEND_WEIGHTS``; none for a model with one layer and one head (an RNN). Only the mean:
    a blend of two distributions is a distribution, so the weights a table shows still sum to
    one (``--blend LAYER:max:W`` remains a manual choice)."""
    n_layers, n_heads = model_shape(translator)
    if n_layers * n_heads == 1:
        return []
    return [replace(view, blend=Blend(layer, "mean", weight))
            for layer in range(n_layers) for weight in BLEND_WEIGHTS]


def sweep(translator: Translator, pairs: list[tuple[str, str]], gold: list[GoldAlignment],
          extraction: Extraction | None = None, merge: str = "sum",
          batch_tokens: int = 4096) -> list[SweepRow]:
    """Score every candidate view × extraction on the gold pairs (``extraction``: only that
    one; None: :func:`candidate_extractions`), then the best view's blends
    (:func:`blended_views`). One forward pass per batch in all."""
    records = force_align(translator, pairs, View(merge=merge),
                             batch_tokens=batch_tokens, keep_weights=True)
    sure, possible = [g.sure for g in gold], [g.possible for g in gold]

    def score(views: list[View]) -> list[SweepRow]:
        out = []
        for view in views:
            words = [_words(rec, view) for rec in records]
            for ex in candidate_extractions(extraction):
                hyps = [set() if w is None else extract_links(w, ex.method, ex.threshold)
                        for w in words]
                out.append(SweepRow(view, aer(hyps, sure, possible), ex))
        return out

    rows = score(candidate_views(translator, merge))
    return rows + score(blended_views(translator, best_row(rows).view))


def _words(rec: PairAlignment, view: View) -> Any:
    """The (target words × source words) matrix of ``view``, or None for an empty pair."""
    if rec.weights is None or rec.src is None or rec.tgt is None:
        return None
    words, _ = word_weights(view_rows(rec.weights, view), rec.tgt.word_of_piece,
                               rec.src.word_of_piece, len(rec.tgt.words), len(rec.src.words),
                               view.merge)
    return words


def best_row(rows: list[SweepRow]) -> SweepRow:
    """The lowest AER; the first such row on a tie."""
    return min(rows, key=lambda r: r.scores.aer)


def store_view(translator: Translator, row: SweepRow, save_to: str | Path | None = None,
               ) -> StoredSetting:
    """Store the view in ``save_to`` (default: the model's own directory) and use it now.

    A stored symmetrization was tuned for the previous view: it is kept when the view did not
    change, else dropped and named in the result (``calibrate_sym`` re-tunes it).
    """
    old = AlignmentSettings.of(translator)
    new = old.with_view(row.view, row.extraction, round(row.scores.aer, 6))
    dropped = (old.sym.describe(),) if old.sym is not None and new.sym is None else ()
    return StoredSetting(_store_alignment(translator, new, save_to), new, dropped)


@dataclass(frozen=True)
class StoredSetting:
    """What calibration wrote: the directory, the model's new ``"alignment"`` settings, and
    the stored settings it dropped (each in words) because they were tuned for another view."""

    directory: Path
    alignment: AlignmentSettings
    dropped: tuple[str, ...] = ()


def check_destination(translator: Translator, save_to: str | Path | None) -> Path:
    """Where calibration may write: ``save_to``, else the model's own directory
    (:func:`destination`)."""
    return destination(translator.loaded.path, save_to)


def destination(model: Path, save_to: str | Path | None) -> Path:
    """Where settings or modules trained for ``model`` may be written: ``save_to``, else the
    model's own directory.

    The model's own directory may be written unless it is a shipped model; another directory
    must be new or empty (it gets a copy of the model first, :func:`copy_model`).

    :raises UsageError: a shipped model, or a directory that holds something else.
    """
    from seqattn.translate import is_shipped

    target = Path(save_to) if save_to is not None else model
    own = target.exists() and model.exists() and os.path.samefile(target, model)
    if own or (not target.exists() and target.resolve() == model.resolve()):
        if is_shipped(model):
            raise UsageError(f"'{model}' is a shipped model and is never changed; give "
                             "--save-to DIR to write a copy of it there")
        return model
    if target.exists() and (not target.is_dir() or any(target.iterdir())):
        raise UsageError(f"--save-to '{target}' exists and is not an empty directory; give a "
                         f"new directory or the model's own ('{model}')")
    if is_shipped(target):
        raise UsageError(f"--save-to '{target}' is inside the shipped models folder; give a "
                         "directory of your own")
    return target


def _store_alignment(translator: Translator, setting: AlignmentSettings,
                     save_to: str | Path | None = None) -> Path:
    """Write ``setting`` as the model's ``"alignment"`` in the ``seqattn.json`` of the
    destination (:func:`check_destination`; other keys kept) and use it now. A destination
    other than the model's directory gets a copy of the model first."""
    from seqattn.checkpoint import read_meta, write_meta

    target = check_destination(translator, save_to)
    if target != translator.loaded.path:
        copy_model(translator.loaded.path, target)
        translator.loaded.path = target  # later writes of this run (calibrate_sym) go there
    meta = read_meta(target)
    meta["alignment"] = setting.as_dict()
    write_meta(target, meta)
    translator.loaded.meta["alignment"] = setting.as_dict()
    return target


def copy_model(model: Path, target: Path) -> None:
    """Copy what translation needs (config, weights, sentencepiece model(s), seqattn.json) from
    ``model`` into the new or empty directory ``target``; it appears complete or not at all."""
    import shutil
    import tempfile

    from seqattn.checkpoint import ALIGNER, CONFIG, META, WEIGHTS, spm_paths

    files = {model / CONFIG, model / WEIGHTS, model / META, *spm_paths(model)}
    if (model / ALIGNER).is_file():
        files.add(model / ALIGNER)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent))
    try:
        for path in files:
            shutil.copyfile(path, tmp / path.name)
        mask = os.umask(0)
        os.umask(mask)
        os.chmod(tmp, 0o777 & ~mask)
        if target.exists():
            target.rmdir()  # empty (checked): replaced by the complete copy
        os.rename(tmp, target)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def calibrate(translator: Translator, spec: str | Path, extraction: Extraction | None = None,
              merge: str = "sum", batch_tokens: int = 4096, store: bool = True,
              save_to: str | Path | None = None) -> tuple[list[SweepRow], SweepRow]:
    """Sweep the views on the gold set ``spec``; store the best (unless ``store=False``) in
    ``save_to`` (:func:`check_destination`, checked before the sweep) with
    :func:`store_view`. Returns the rows and the best row."""
    if store:
        check_destination(translator, save_to)
    pairs, gold = read_gold(spec)
    rows = sweep(translator, pairs, gold, extraction, merge, batch_tokens)
    best = best_row(rows)
    if store:
        store_view(translator, best, save_to)
    return rows, best


def calibrate_sym(translator: Translator, reverse: Translator, spec: str | Path,
                  extraction: Extraction | None = None, merge: str = "sum",
                  batch_tokens: int = 4096, store: bool = True,
                  save_to: str | Path | None = None) -> tuple[list[SweepRow], SweepRow]:
    """Sweep the symmetrizations (every heuristic and soft one) × link extractions of both
    directions, each model read with its own stored view, on the gold set ``spec``; store the
    best in the forward model's ``seqattn.json`` as ``"alignment": {"sym": {"sym", "method",
    "threshold", "aer", "reverse"}}``, which ``align --reverse-model`` then uses by default."""
    if store:
        check_destination(translator, save_to)
    pairs, gold = read_gold(spec)
    view = resolve_view(translator, merge=merge)
    forward = force_align(translator, pairs, view, batch_tokens=batch_tokens)
    backward = force_align(reverse, [(t, s) for s, t in pairs],
                              resolve_view(reverse, merge=merge), batch_tokens=batch_tokens)
    sure, possible = [g.sure for g in gold], [g.possible for g in gold]
    rows = []
    for sym in (*HEURISTICS, *SOFT):
        for ex in candidate_extractions(extraction):
            ex = Extraction(ex.method, ex.threshold, sym)
            hyps = [set() if f.words is None or b.words is None else
                    both_ways(f.words, b.words, ex) for f, b in zip(forward, backward)]
            rows.append(SweepRow(view, aer(hyps, sure, possible), ex))
    best = best_row(rows)
    if store:
        store_sym(translator, reverse, best, save_to)
    return rows, best


def store_sym(translator: Translator, reverse: Translator, row: SweepRow,
              save_to: str | Path | None = None) -> StoredSetting:
    """Store the symmetrization of ``row`` (with ``reverse``'s name) in ``save_to`` (default:
    the model's own directory) and use it now."""
    ex = row.extraction
    sym = StoredSym(ex.sym, ex.method, ex.threshold, round(row.scores.aer, 6),
                    reverse.loaded.path.name)
    setting = replace(AlignmentSettings.of(translator), sym=sym)
    return StoredSetting(_store_alignment(translator, setting, save_to), setting)
