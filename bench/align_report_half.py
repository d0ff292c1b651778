"""Alignment quality measured honestly: choose everything on one half of the dev gold, report on
the other (issue 16). For each model: the view and extraction ``seqattn align --calibrate`` picks
on ``runs/gold/calibrate`` (lines 1-50), scored on ``runs/gold/report`` (lines 51-100); with a
reverse model also the symmetrization picked the same way. Beside eflomal on the same report half
(``bench/eflomal-report-half.json``, mean of 5 runs).

    python bench/gold_halves.py --out runs/gold          # once
    python bench/align_report_half.py en-de              # forward only
    python bench/align_report_half.py en-de --reverse de-en
    python bench/align_report_half.py runs/en-de-mix --reverse de-en --json out.json
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import seqattn  # noqa: E402
from seqattn.align.aer import aer  # noqa: E402
from seqattn.align.calibrate import calibrate, calibrate_sym, read_gold  # noqa: E402
from seqattn.align.force import align  # noqa: E402


def _score(links: list[set[tuple[int, int]]], gold: list) -> dict[str, float]:
    s = aer(links, [g.sure for g in gold], [g.possible for g in gold])
    return {"aer": round(100 * s.aer, 2), "precision": round(100 * s.precision, 2),
            "recall": round(100 * s.recall, 2), "links": s.hyp_links}


def _use(translator, row) -> None:  # noqa: ANN001
    """Make ``row``'s view and extraction the model's stored ones (in memory only)."""
    from seqattn.align.settings import AlignmentSettings

    settings = AlignmentSettings.of(translator).with_view(row.view, row.extraction, 0.0)
    translator.loaded.meta["alignment"] = settings.as_dict()


def _flipped(folder: Path) -> Path:
    """The gold set read the other way (target as source), for a reverse model."""
    import tempfile

    out = Path(tempfile.mkdtemp(prefix="gold-flipped-"))
    (out / "g.src").write_text((folder / "ende.tgt").read_text(encoding="utf-8"), "utf-8")
    (out / "g.tgt").write_text((folder / "ende.src").read_text(encoding="utf-8"), "utf-8")
    lines = []
    for line in (folder / "ende.talp").read_text(encoding="utf-8").splitlines():
        items = []
        for item in line.split():
            sep = "p" if "p" in item else "-"
            i, j = item.split(sep)
            items.append(f"{j}{sep}{i}")
        lines.append(" ".join(items))
    (out / "g.talp").write_text("\n".join(lines) + "\n", encoding="utf-8")
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("model")
    ap.add_argument("--reverse")
    ap.add_argument("--gold", type=Path, default=ROOT / "runs" / "gold")
    ap.add_argument("--json", type=Path)
    args = ap.parse_args()
    tr = seqattn.load(args.model)
    cal_dir, rep_dir = args.gold / "calibrate", args.gold / "report"
    pairs, gold = read_gold(rep_dir)
    _, best = calibrate(tr, cal_dir, store=False)
    view, ex = best.view, best.extraction
    forward = [r.links for r in align(tr, pairs, view, ex)]
    result: dict = {"model": args.model, "view": view.as_dict(), "method": ex.method,
                    "threshold": ex.threshold, "calibrate_aer": round(100 * best.scores.aer, 2),
                    "report": _score(forward, gold)}
    if args.reverse:
        rev = seqattn.load(args.reverse)
        _use(tr, best)  # both directions read with the views chosen on the calibration half
        _use(rev, calibrate(rev, _flipped(cal_dir), store=False)[1])  # its view, on this half
        _, sbest = calibrate_sym(tr, rev, cal_dir, store=False)
        both = [r.links for r in align(tr, pairs, view, sbest.extraction, rev)]
        result["both"] = {"sym": sbest.extraction.sym, "method": sbest.extraction.method,
                          "threshold": sbest.extraction.threshold, "report": _score(both, gold)}
    eflomal = ROOT / "bench" / "eflomal-report-half.json"
    if eflomal.exists():
        result["eflomal_report_half"] = str(eflomal.relative_to(ROOT))
    print(json.dumps(result, indent=1))
    if args.json:
        args.json.write_text(json.dumps(result, indent=1) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
