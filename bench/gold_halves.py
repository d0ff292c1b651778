"""Split the 100-pair hand-aligned Multi30k en-de dev gold into two fixed halves.

The split is by line order and never changes (no shuffling, no seed):

* ``calibrate/`` = lines 1-50 of the gold files (0-based lines 0-49): use it to tune
  alignment extraction (layers, heads, shift, thresholds) and anything else;
* ``report/`` = lines 51-100 (0-based lines 50-99): held out; score on it only settings that
  were chosen on ``calibrate/``, and report those numbers.

Each half is a gold set in the same format as the original directory: ``ende.src``,
``ende.tgt``, ``ende.talp`` (1-indexed, ``i-j`` sure, ``ipj`` possible) and ``ende.ids``, with
the lines copied byte for byte, plus the original ``README.md`` headed by a note on the split.
Line ``k`` of a half is line ``offset + k`` of the full set (offset 0 for calibrate, 50 for
report), so link indices are unchanged.

Usage::

    python bench/gold_halves.py --out runs/gold   # -> runs/gold/calibrate, runs/gold/report
"""

from __future__ import annotations

import argparse
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
GOLD = ROOT.parent / "shared" / "data" / "gold" / "multi30k_test2016_ende_dev"
FILES = ("ende.src", "ende.tgt", "ende.talp", "ende.ids")
HALVES = {"calibrate": (0, 50), "report": (50, 100)}  # 0-based [start, stop) line ranges
TOTAL = 100


def split_note(name: str, start: int, stop: int, gold: Path) -> str:
    other = [n for n in HALVES if n != name][0]
    o_start, o_stop = HALVES[other]
    return (
        f"# {name}: lines {start + 1}-{stop} of the dev gold (fixed split by line order)\n\n"
        f"This directory holds lines {start + 1}-{stop} (1-based; 0-based {start}-{stop - 1}) "
        f"of `{gold}` (`ende.src`, `ende.tgt`, `ende.talp`, `ende.ids`), copied byte for byte; "
        f"`{other}/` holds lines {o_start + 1}-{o_stop}. Written by `bench/gold_halves.py`. "
        "Tune on `calibrate/`; score on `report/` only settings chosen on `calibrate/`.\n\n"
        "The original README follows.\n\n---\n\n"
    )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=ROOT / "runs" / "gold")
    ap.add_argument("--gold", type=Path, default=GOLD)
    args = ap.parse_args()
    lines = {}
    for f in FILES:
        data = (args.gold / f).read_bytes()
        rows = data.splitlines(keepends=True)
        if len(rows) != TOTAL or not data.endswith(b"\n"):
            raise SystemExit(f"{args.gold / f}: expected {TOTAL} newline-terminated lines, "
                             f"got {len(rows)}")
        lines[f] = rows
    readme = (args.gold / "README.md").read_text(encoding="utf-8")
    for name, (start, stop) in HALVES.items():
        out = args.out / name
        out.mkdir(parents=True, exist_ok=True)
        for f in FILES:
            (out / f).write_bytes(b"".join(lines[f][start:stop]))
        (out / "README.md").write_text(split_note(name, start, stop, args.gold) + readme,
                                       encoding="utf-8")
        sure = sum(t.count("-") for t in (ln.decode() for ln in lines["ende.talp"][start:stop]))
        poss = sum(t.count("p") for t in (ln.decode() for ln in lines["ende.talp"][start:stop]))
        print(f"{out}: lines {start + 1}-{stop}, {stop - start} pairs, "
              f"{sure} sure + {poss} possible links")


if __name__ == "__main__":
    main()
