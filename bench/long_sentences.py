"""A long-sentence test from test2016: consecutive captions joined 2-5 at a time.

Multi30k captions are short (about 12 words), too short to show an encoder-decoder without
attention forgetting long sentences (Bahdanau et al. 2015, Fig. 2, plots up to 60 words). This
joins consecutive captions of a line-aligned pair of files, source and reference alike, with
one space: the captions are read in order and cut into groups of 2, 3, 4 or 5 (each size drawn
from ``random.Random(seed)``, a last group of one joins the one before), so every caption is
used exactly once and each joined line is a faithful translation pair. By default the original
captions come first (``--no-singles`` leaves them out), so one file covers 4 to 100+ words and
``seqattn evaluate --by-length`` draws the whole curve. Translate it with sentence splitting
off (``--no-split``): the point is to feed the model long sequences.

Usage::

    python bench/long_sentences.py --out runs/long     # -> runs/long/long.en, runs/long/long.de
    seqattn evaluate -m en-de-rnn -m en-de-rnn-noattn --src runs/long/long.en \\
        -r runs/long/long.de --by-length runs/long/long.en --no-split --png by-length.png
"""

from __future__ import annotations

import argparse
import random
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data" / "multi30k"


def groups(n: int, seed: int, lo: int = 2, hi: int = 5) -> list[range]:
    """Consecutive line ranges covering 0..n-1, each ``lo``..``hi`` lines long (the last may
    be up to ``hi + lo - 1``, taking in a remainder shorter than ``lo``)."""
    rng, out, start = random.Random(seed), [], 0
    while start < n:
        size = rng.randint(lo, hi)
        if n - (start + size) < lo:          # the rest would be too short: take it too
            size = n - start
        out.append(range(start, start + size))
        start += size
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--src", type=Path, default=DATA / "test_2016_flickr.en")
    ap.add_argument("--ref", type=Path, default=DATA / "test_2016_flickr.de")
    ap.add_argument("--out", type=Path, required=True, help="directory for long.SRC/long.REF")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--no-singles", action="store_true", help="only the joined lines")
    args = ap.parse_args()
    src = args.src.read_text(encoding="utf-8").splitlines()
    ref = args.ref.read_text(encoding="utf-8").splitlines()
    if len(src) != len(ref):
        raise SystemExit(f"error: {args.src} has {len(src)} lines, {args.ref} {len(ref)}")
    if args.src.suffix == args.ref.suffix:
        raise SystemExit(f"error: the outputs are named long.SUFFIX after the inputs, and "
                         f"{args.src.name} and {args.ref.name} share {args.src.suffix!r}")
    args.out.mkdir(parents=True, exist_ok=True)
    cut = groups(len(src), args.seed)
    for lines, path in ((src, args.src), (ref, args.ref)):
        joined = [" ".join(lines[i].strip() for i in g) for g in cut]
        out = ([] if args.no_singles else lines) + joined
        target = args.out / f"long{path.suffix}"
        target.write_text("\n".join(out) + "\n", encoding="utf-8")
        print(f"{target}: {len(out)} lines ({len(joined)} joined from {len(lines)} captions)")


if __name__ == "__main__":
    main()
