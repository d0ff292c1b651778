"""eflomal baseline AER on the REPORT half of the Multi30k en-de dev gold, over several runs.

Needs a Python with ``eflomal`` and ``sacremoses`` (see ``bench/guided_links.py``)::

    python bench/gold_halves.py --out runs/gold          # the fixed split (optional here)
    ../efl/bin/python bench/eflomal_halves.py           # -> bench/eflomal-report-half.json

What it does, as ``bench/guided_links.py`` does:

1. Moses-tokenizes the Multi30k training pairs (as the gold set is tokenized) and appends all
   100 gold dev pairs, so eflomal sees them in context (unsupervised: it never reads links).
2. Runs ``eflomal-align`` with its default settings ``--runs`` times (5), one after another.
   eflomal-align 2.0.0 has no seed option: the sampler seeds itself from ``/dev/urandom`` on
   every run, so the runs are independent draws that cannot be replayed. If a ``--seed``
   option shows up in ``eflomal-align --help``, seeds 1..runs are passed instead.
3. Scores each run on the report half (gold lines 51-100, ``gold_halves.HALVES["report"]``):
   the forward links (eflomal's ``-f`` file: every target (German) word has at most one source
   link, the direction of ``seqattn align -m en-de``), the reverse links (``-r``: every source
   word has at most one target link), and every heuristic of
   ``seqattn.align.symmetrize.HEURISTICS``. Both eflomal files are written ``source-target``,
   0-based, so they are read with ``read_pharaoh`` as they are and scored against the gold read
   with ``one_indexed=True``, as ``guided_links.py`` does. The at-most-one-link property of each
   direction is checked on the whole output of every run (it fails loudly otherwise).
4. Also scores all 100 pairs (the sanity check against ``bench/eflomal-dev-aer.json``).

Reported per system: mean over runs of AER, precision, recall (percent) and link count |A|,
plus min/max AER and the per-run values.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import statistics
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from gold_halves import HALVES  # noqa: E402

from seqattn.align.aer import aer, read_pharaoh, read_talp  # noqa: E402
from seqattn.align.symmetrize import HEURISTICS, symmetrize  # noqa: E402
from seqattn.textio import read_lines  # noqa: E402

DATA = ROOT.parent / "shared" / "data"
GOLD = DATA / "gold" / "multi30k_test2016_ende_dev"


def has_seed_option(eflomal: str) -> bool:
    out = subprocess.run([eflomal, "--help"], capture_output=True, text=True, check=True).stdout
    return "--seed" in out


def run_eflomal(src: Path, tgt: Path, fwd: Path, rev: Path, eflomal: str,
                seed: int | None) -> float:
    cmd = [eflomal, "--overwrite", "-s", str(src), "-t", str(tgt), "-f", str(fwd), "-r", str(rev)]
    if seed is not None:
        cmd += ["--seed", str(seed)]
    t0 = time.perf_counter()
    subprocess.run(cmd, check=True)
    return time.perf_counter() - t0


def check_direction(links: list[frozenset], lens_s: list[int], lens_t: list[int],
                    name: str) -> dict[str, int]:
    """Links in range; count lines where a target (source) word has >1 link, per file."""
    many_tgt = many_src = 0
    for k, (a, ns, nt) in enumerate(zip(links, lens_s, lens_t)):
        if any(not (0 <= i < ns and 0 <= j < nt) for i, j in a):
            raise SystemExit(f"{name}: line {k + 1} has a link out of range ({ns}x{nt})")
        many_tgt += max(Counter(j for _, j in a).values(), default=0) > 1
        many_src += max(Counter(i for i, _ in a).values(), default=0) > 1
    return {"lines_with_target_word_multiply_linked": many_tgt,
            "lines_with_source_word_multiply_linked": many_src}


def score(hyp, gold) -> dict[str, float]:
    s = aer(hyp, [g.sure for g in gold], [g.possible for g in gold])
    return {"aer": 100 * s.aer, "precision": 100 * s.precision, "recall": 100 * s.recall,
            "links": s.hyp_links}


def summarize(per_run: list[dict[str, float]]) -> dict[str, object]:
    out: dict[str, object] = {}
    for key in ("aer", "precision", "recall", "links"):
        vals = [r[key] for r in per_run]
        out[key] = round(statistics.mean(vals), 2)
    aers = [r["aer"] for r in per_run]
    out["aer_min"], out["aer_max"] = round(min(aers), 2), round(max(aers), 2)
    out["aer_sd"] = round(statistics.stdev(aers), 2) if len(aers) > 1 else 0.0
    out["per_run"] = [{k: (round(v, 2) if k != "links" else v) for k, v in r.items()}
                      for r in per_run]
    return out


def markdown(table: dict[str, dict], title: str) -> str:
    rows = [f"**{title}**", "",
            "| system | AER | P | R | links | AER min-max |",
            "|---|---:|---:|---:|---:|---:|"]
    for name, s in table.items():
        rows.append(f"| {name} | {s['aer']:.2f} | {s['precision']:.2f} | {s['recall']:.2f} | "
                    f"{s['links']:.1f} | {s['aer_min']:.2f}-{s['aer_max']:.2f} |")
    return "\n".join(rows)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--work", type=Path, default=ROOT / "runs" / "eflomal-halves")
    ap.add_argument("--json", type=Path, default=ROOT / "bench" / "eflomal-report-half.json")
    ap.add_argument("--eflomal", default=str(Path(sys.executable).parent / "eflomal-align"))
    ap.add_argument("--runs", type=int, default=5)
    args = ap.parse_args()
    from sacremoses import MosesTokenizer

    started = time.perf_counter()
    args.work.mkdir(parents=True, exist_ok=True)
    m30k = DATA / "multi30k"
    raw_src, raw_tgt = read_lines(m30k / "train.en"), read_lines(m30k / "train.de")
    tok_s, tok_t = MosesTokenizer("en"), MosesTokenizer("de")
    src_lines = [" ".join(tok_s.tokenize(x, escape=False)) for x in raw_src]
    tgt_lines = [" ".join(tok_t.tokenize(x, escape=False)) for x in raw_tgt]
    gold_src = (GOLD / "ende.src").read_text(encoding="utf-8").splitlines()
    gold_tgt = (GOLD / "ende.tgt").read_text(encoding="utf-8").splitlines()
    gold = read_talp(GOLD / "ende.talp", one_indexed=True)
    assert len(gold_src) == len(gold_tgt) == len(gold) == 100
    n = len(raw_src)
    all_src, all_tgt = src_lines + gold_src, tgt_lines + gold_tgt
    (args.work / "all.src").write_text("\n".join(all_src) + "\n", encoding="utf-8")
    (args.work / "all.tgt").write_text("\n".join(all_tgt) + "\n", encoding="utf-8")
    lens_s = [len(x.split()) for x in all_src]
    lens_t = [len(x.split()) for x in all_tgt]
    tokenize_s = time.perf_counter() - started

    lo, hi = HALVES["report"]
    report_gold = gold[lo:hi]
    half_dir = ROOT / "runs" / "gold" / "report" / "ende.talp"  # written by gold_halves.py
    if half_dir.exists():
        assert read_talp(half_dir, one_indexed=True) == report_gold, "runs/gold/report differs"

    seeded = has_seed_option(args.eflomal)
    systems = ["forward", "reverse", *HEURISTICS]
    per_run_report: dict[str, list] = {s: [] for s in systems}
    per_run_full: dict[str, list] = {s: [] for s in systems}
    runs_meta = []
    for r in range(args.runs):
        fwd_p, rev_p = args.work / f"fwd.{r + 1}.links", args.work / f"rev.{r + 1}.links"
        secs = run_eflomal(args.work / "all.src", args.work / "all.tgt", fwd_p, rev_p,
                           args.eflomal, r + 1 if seeded else None)
        fwd, rev = read_pharaoh(fwd_p), read_pharaoh(rev_p)
        assert len(fwd) == len(rev) == n + 100
        chk = {"forward": check_direction(fwd, lens_s, lens_t, str(fwd_p)),
               "reverse": check_direction(rev, lens_s, lens_t, str(rev_p))}
        if chk["forward"]["lines_with_target_word_multiply_linked"] or \
                chk["reverse"]["lines_with_source_word_multiply_linked"]:
            raise SystemExit(f"direction check failed: {chk}")
        runs_meta.append({"run": r + 1, "seed": r + 1 if seeded else "urandom",
                          "eflomal_s": round(secs, 1), "check": chk,
                          "fwd_sha1": hashlib.sha1(fwd_p.read_bytes()).hexdigest()[:12],
                          "rev_sha1": hashlib.sha1(rev_p.read_bytes()).hexdigest()[:12]})
        hyps = {"forward": fwd, "reverse": rev}
        for h in HEURISTICS:
            hyps[h] = [symmetrize(f, b, h) for f, b in zip(fwd[n:], rev[n:])]
        for name in systems:
            dev = list(hyps[name][-100:])
            per_run_full[name].append(score(dev, gold))
            per_run_report[name].append(score(dev[lo:hi], report_gold))
        print(f"run {r + 1}/{args.runs}: eflomal {secs:.1f}s, report gdfa AER "
              f"{per_run_report['grow-diag-final-and'][-1]['aer']:.2f}, checks {chk}",
              flush=True)

    old_path = ROOT / "bench" / "eflomal-dev-aer.json"
    old = json.loads(old_path.read_text())["dev_aer"] if old_path.exists() else {}
    result = {
        "what": "eflomal-align (defaults) on Multi30k train (29k pairs) + 100 dev gold pairs; "
                "AER/P/R in percent, links = |A|; mean over runs",
        "eflomal": args.eflomal, "seed_option": seeded,
        "seeds": "1..runs via --seed" if seeded else
                 "no --seed option in eflomal-align; each run self-seeds from /dev/urandom",
        "runs": args.runs, "pairs_train": n,
        "report_half": {"gold_lines_1based": f"{lo + 1}-{hi}", "pairs": hi - lo,
                        "sure": sum(len(g.sure) for g in report_gold),
                        "possible_incl_sure": sum(len(g.possible) for g in report_gold),
                        "scores": {s: summarize(per_run_report[s]) for s in systems}},
        "full_100": {"pairs": 100, "scores": {s: summarize(per_run_full[s]) for s in systems},
                     "old_single_run": {"file": "bench/eflomal-dev-aer.json", "dev_aer": old}},
        "direction": {"forward": "eflomal -f file: each target (de) word has <=1 source link "
                                 "(= seqattn align -m en-de)",
                      "reverse": "eflomal -r file: each source (en) word has <=1 target link"},
        "runs_meta": runs_meta,
        "tokenize_s": round(tokenize_s, 1),
        "total_s": round(time.perf_counter() - started, 1),
    }
    args.json.write_text(json.dumps(result, indent=1) + "\n", encoding="utf-8")
    print()
    print(markdown(result["report_half"]["scores"],
                   f"eflomal, report half (gold lines {lo + 1}-{hi}), mean of {args.runs} runs"))
    print()
    print(markdown(result["full_100"]["scores"],
                   f"eflomal, all 100 pairs, mean of {args.runs} runs"))
    if old:
        o = old["grow-diag-final-and"]
        s = result["full_100"]["scores"]["grow-diag-final-and"]
        print(f"\nfull-100 grow-diag-final-and: now AER {s['aer']:.2f} "
              f"[{s['aer_min']:.2f}-{s['aer_max']:.2f}] P {s['precision']:.2f} "
              f"R {s['recall']:.2f}; old JSON AER {o['aer']} P {o['precision']} "
              f"R {o['recall']}")
    print(f"\ntotal {result['total_s']}s (tokenize {result['tokenize_s']}s); wrote {args.json}")


if __name__ == "__main__":
    main()
