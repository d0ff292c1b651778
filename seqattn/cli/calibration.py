"""``seqattn align --calibrate``: the sweep tables on stderr and what was stored (see
seqattn.align.calibrate)."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from seqattn.cli.app import STATE, err_console

log = logging.getLogger("seqattn.cli")
SWEEP_ROWS_SHOWN = 20


def calibrate_all(translator: Any, reverse: Any, spec: str, extraction: Any, merge: str,
                   batch_tokens: int, save_to: Path | None) -> None:
    """The view sweep, then (with a reverse model) the symmetrization sweep; a shipped model
    or an unusable --save-to is refused before either."""
    from seqattn.align.calibrate import check_destination

    check_destination(translator, save_to)
    _calibrate(translator, spec, extraction, merge, batch_tokens, save_to, reverse is not None)
    if reverse is not None:
        _calibrate_sym(translator, reverse, spec, extraction, merge, batch_tokens, save_to)


def _calibrate_sym(translator: Any, reverse: Any, spec: str, extraction: Any, merge: str,
                   batch_tokens: int, save_to: Path | None) -> None:
    from rich.table import Table

    from seqattn.align.calibrate import calibrate_sym, store_sym

    rows, best = calibrate_sym(translator, reverse, spec, extraction, merge, batch_tokens,
                               store=False)
    if not STATE["quiet"]:
        table = Table(title=f"both directions on {spec} (lowest AER first)",
                      title_justify="left", header_style="bold")
        for name in ("sym", "links by", "AER%", "Prec%", "Rec%", "links"):
            table.add_column(name, justify="left" if name in ("sym", "links by") else "right")
        ranked = sorted(rows, key=lambda r: r.scores.aer)
        for row in ranked[:SWEEP_ROWS_SHOWN]:
            s, ex = row.scores, row.extraction
            table.add_row(ex.sym, ex.links_by(), f"{100 * s.aer:.1f}",
                          f"{100 * s.precision:.1f}", f"{100 * s.recall:.1f}",
                          str(s.hyp_links), style="bold" if row is best else "")
        err_console().print(table)
    stored = store_sym(translator, reverse, best, save_to)
    _stored(f"stored the best symmetrization in {stored.directory}/seqattn.json: --sym "
            f"{best.extraction.sym}, {best.extraction.links_by()} (AER "
            f"{100 * best.scores.aer:.1f}%); align --reverse-model "
            f"{reverse.loaded.path.name} uses it by default")


def _stored(message: str) -> None:
    """What calibration stored: always said (even with --quiet), on stderr."""
    from rich.markup import escape

    err_console().print(escape(message), soft_wrap=True)


def _calibrate(translator: Any, spec: str, extraction: Any, merge: str,
               batch_tokens: int, save_to: Path | None, resweep_sym: bool) -> None:
    from rich.table import Table

    from seqattn.align.calibrate import calibrate, store_view

    rows, best = calibrate(translator, spec, extraction, merge, batch_tokens, store=False)
    if not STATE["quiet"]:
        table = Table(title=f"alignment views on {spec} (lowest AER first)",
                      title_justify="left", header_style="bold")
        for name in ("layer", "heads", "shift", "blend", "links by", "AER%", "Prec%", "Rec%",
                     "links"):
            table.add_column(name, justify="left" if name in ("heads", "shift", "blend",
                                                              "links by") else "right")
        ranked = sorted(rows, key=lambda r: r.scores.aer)
        for row in ranked[:SWEEP_ROWS_SHOWN]:
            s, ex = row.scores, row.extraction
            b = row.view.blend
            table.add_row(str(row.view.layer), row.view.heads, "yes" if row.view.shift else "no",
                          "–" if b is None else f"{b.layer}:{b.heads}:{b.weight:g}",
                          ex.links_by(),
                          f"{100 * s.aer:.1f}", f"{100 * s.precision:.1f}",
                          f"{100 * s.recall:.1f}", str(s.hyp_links),
                          style="bold" if row is best else "")
        if len(ranked) > SWEEP_ROWS_SHOWN:
            table.caption = f"{len(ranked) - SWEEP_ROWS_SHOWN} more settings not shown"
        err_console().print(table)
    v, ex = best.view, best.extraction
    blended = "" if v.blend is None else \
        f", blend {v.blend.layer}:{v.blend.heads}:{v.blend.weight:g}"
    stored = store_view(translator, best, save_to)
    _stored(f"stored the best setting in {stored.directory}/seqattn.json: layer {v.layer}, "
            f"heads {v.heads}, shift {v.shift}{blended}, {ex.links_by()} (AER "
            f"{100 * best.scores.aer:.1f}%)")
    for what in stored.dropped:
        if resweep_sym:
            _stored(f"the stored {what} was tuned for the previous view; re-tuning it with "
                    "the reverse model")
        else:
            log.warning("dropped the stored %s: it was tuned for the previous view; run "
                        "--calibrate again with --reverse-model MODEL to re-tune it", what)
