"""eflomal word alignments for Multi30k: the baseline AER on the hand-aligned dev gold, and the
Pharaoh file that guided alignment training reads (``training.guided_alignment``).

Needs a Python with ``eflomal`` and ``sacremoses`` (kept out of seqattn's own dependencies)::

    python -m venv ../efl && ../efl/bin/pip install eflomal sacremoses
    ../efl/bin/python bench/guided_links.py --out runs/links

What it does:
1. Moses-tokenizes the Multi30k training pairs (as the gold set is tokenized) and appends the
   100 gold dev pairs, so eflomal sees them in context (unsupervised: it never reads the links).
2. Runs ``eflomal-align`` both ways and symmetrizes with grow-diag-final-and (seqattn's own
   implementation), writing ``dev.<heuristic>.talp`` for every heuristic and their AER.
3. Maps the training links from Moses tokens back to the whitespace words of the raw training
   files (a token belongs to the raw word that holds its first character), which is what
   ``seqattn train`` expects: ``train.raw-words.<heuristic>.txt``, one line per training pair.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from seqattn.align.aer import aer, read_pharaoh, read_talp  # noqa: E402
from seqattn.align.statistical import token_words  # noqa: E402
from seqattn.align.symmetrize import HEURISTICS, symmetrize  # noqa: E402

DATA = ROOT.parent / "shared" / "data"


def run_eflomal(src: Path, tgt: Path, out: Path, eflomal: str) -> tuple[Path, Path]:
    fwd, rev = out / "fwd.links", out / "rev.links"
    subprocess.run([eflomal, "--overwrite", "-s", str(src), "-t", str(tgt), "-f", str(fwd),
                    "-r", str(rev)], check=True)
    return fwd, rev


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=ROOT / "runs" / "links")
    ap.add_argument("--eflomal", default=str(Path(sys.executable).parent / "eflomal-align"))
    ap.add_argument("--src", default="en")
    ap.add_argument("--tgt", default="de")
    args = ap.parse_args()
    from sacremoses import MosesTokenizer

    args.out.mkdir(parents=True, exist_ok=True)
    m30k, gold_dir = DATA / "multi30k", DATA / "gold" / "multi30k_test2016_ende_dev"
    from seqattn.textio import read_lines  # lines exactly as seqattn train reads them

    raw_src = read_lines(m30k / f"train.{args.src}")
    raw_tgt = read_lines(m30k / f"train.{args.tgt}")
    tok_s, tok_t = MosesTokenizer(args.src), MosesTokenizer(args.tgt)
    started = time.perf_counter()
    toks_src = [tok_s.tokenize(x, escape=False) for x in raw_src]
    toks_tgt = [tok_t.tokenize(x, escape=False) for x in raw_tgt]
    gold_src = (gold_dir / f"{args.src}{args.tgt}.src").read_text(encoding="utf-8").splitlines()
    gold_tgt = (gold_dir / f"{args.src}{args.tgt}.tgt").read_text(encoding="utf-8").splitlines()
    (args.out / "all.src").write_text(
        "\n".join([" ".join(t) for t in toks_src] + gold_src) + "\n", encoding="utf-8")
    (args.out / "all.tgt").write_text(
        "\n".join([" ".join(t) for t in toks_tgt] + gold_tgt) + "\n", encoding="utf-8")
    tokenized = time.perf_counter()
    fwd_path, rev_path = run_eflomal(args.out / "all.src", args.out / "all.tgt", args.out,
                                     args.eflomal)
    aligned = time.perf_counter()
    fwd = read_pharaoh(fwd_path)
    rev = read_pharaoh(rev_path)
    n = len(raw_src)
    gold = read_talp(gold_dir / f"{args.src}{args.tgt}.talp", one_indexed=True)
    report: dict[str, object] = {"pairs": n, "tokenize_s": round(tokenized - started, 1),
                                 "eflomal_s": round(aligned - tokenized, 1), "dev_aer": {}}
    for name in HEURISTICS:
        links = [symmetrize(f, r, name) for f, r in zip(fwd, rev)]
        dev = links[n:]
        score = aer(dev, [g.sure for g in gold], [g.possible for g in gold])
        report["dev_aer"][name] = {"aer": round(100 * score.aer, 2),  # type: ignore[index]
                                   "precision": round(100 * score.precision, 2),
                                   "recall": round(100 * score.recall, 2)}
        (args.out / f"dev.{name}.pharaoh").write_text(
            "\n".join(" ".join(f"{i}-{j}" for i, j in sorted(x)) for x in dev) + "\n",
            encoding="utf-8")
        lost = 0
        lines = []
        for k in range(n):
            sw, tw = token_words(raw_src[k], toks_src[k]), token_words(raw_tgt[k], toks_tgt[k])
            if sw is None or tw is None:
                lost += 1
                lines.append("")
                continue
            lines.append(" ".join(f"{a}-{b}" for a, b in sorted({(sw[i], tw[j])
                                                                for i, j in links[k]})))
        (args.out / f"train.raw-words.{name}.txt").write_text("\n".join(lines) + "\n",
                                                               encoding="utf-8")
        report.setdefault("unmapped_pairs", lost)
    print(json.dumps(report, indent=1))
    (args.out / "report.json").write_text(json.dumps(report, indent=1) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
