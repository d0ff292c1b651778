"""Compare two behaviour snapshots (bench/behaviour_snapshot.sh): every file must be equal,
byte for byte, except JSON lines, whose floats may differ by at most 1e-6.

    python bench/compare_snapshots.py BEFORE_DIR AFTER_DIR      (exit 1 on any difference)
"""

from __future__ import annotations

import json
import math
import sys
from pathlib import Path

TOLERANCE = 1e-6


def same(a: object, b: object) -> bool:
    if isinstance(a, float) or isinstance(b, float):
        return isinstance(a, (int, float)) and isinstance(b, (int, float)) and \
            math.isclose(a, b, rel_tol=0, abs_tol=TOLERANCE)
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b))
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(same(a[k], b[k]) for k in a)
    return a == b


def compare(before: Path, after: Path) -> list[str]:
    problems = []
    names = sorted({p.name for p in before.iterdir()} | {p.name for p in after.iterdir()})
    for name in names:
        x, y = before / name, after / name
        if not x.exists() or not y.exists():
            problems.append(f"{name}: only in {'after' if not x.exists() else 'before'}")
        elif name.endswith(".jsonl"):
            a, b = x.read_text().splitlines(), y.read_text().splitlines()
            bad = [i for i, (p, q) in enumerate(zip(a, b), 1)
                   if not same(json.loads(p), json.loads(q))]
            if len(a) != len(b) or bad:
                problems.append(f"{name}: {len(a)} vs {len(b)} lines, differ at {bad[:5]}")
        elif x.read_bytes() != y.read_bytes():
            problems.append(f"{name}: differs")
    return problems


def main() -> int:
    before, after = map(Path, sys.argv[1:3])
    problems = compare(before, after)
    for p in problems:
        print(p)
    print(f"{len(problems)} difference(s) in {len(list(before.iterdir()))} files")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
