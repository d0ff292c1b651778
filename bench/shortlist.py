"""What the vocabulary shortlist costs and gains (issue 20, part 4), calibrated on one set and
reported on another.

    python bench/shortlist.py [--model en-de] [--grid 10:100,20:300,50:300,20:1000] [--runs 2]

1. Copies ``--model`` into a temporary directory and, for each ``per_source:frequent`` of
   ``--grid``, builds its shortlist from Multi30k's training corpus (``seqattn shortlist``).
2. **Calibration** on val (1,014 lines): sacreBLEU with each shortlist against none, the model's
   own search, and the mean number of candidate pieces a batch of 64 length-sorted sentences
   gets; the chosen setting is the one with the fewest candidates within 0.1 BLEU of no
   shortlist (else the best).
3. **Report** on test2016 (1,000 lines) with the chosen setting only: sacreBLEU with and without,
   and the speed of the benchmark's setting (beam 5, 64 sentences a batch, exactly 20 pieces,
   2 threads, plain text, whole process, ``--runs`` alternated runs each).

Prints JSON lines. Time it on a quiet machine.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
M30K = ROOT.parent / "shared" / "data" / "multi30k"


def seqattn(*args: str, out: Path | None = None) -> float:
    """Run ``seqattn ARGS`` (2 threads); seconds of the whole process."""
    env = {**os.environ, "OMP_NUM_THREADS": "2", "MKL_NUM_THREADS": "2", "NO_COLOR": "1"}
    start = time.perf_counter()
    with open(out or os.devnull, "w") as f:
        subprocess.run([sys.executable, "-m", "seqattn", "-q", *args], stdout=f, env=env,
                       check=True)
    return time.perf_counter() - start


def mean_candidates(model: Path, src: Path, batch: int = 64) -> float:
    """Mean shortlist size of ``batch``-sentence batches of ``src`` sorted by length."""
    import seqattn
    from seqattn.data import pad_sources
    from seqattn.shortlist import load_shortlist

    vocab = seqattn.load(model, device="cpu").src_vocab
    short = load_shortlist(model, len(vocab), len(vocab))
    ids = sorted(vocab.encode(src.read_text(encoding="utf-8").splitlines()), key=len)
    sizes = [short.for_sources(pad_sources(ids[i:i + batch])[0]).numel()
             for i in range(0, len(ids), batch)]
    return sum(sizes) / len(sizes)


def bleu(hyp: Path, ref: Path) -> float:
    import sacrebleu

    hyps = hyp.read_text(encoding="utf-8").splitlines()
    refs = ref.read_text(encoding="utf-8").splitlines()
    return round(sacrebleu.corpus_bleu(hyps, [refs]).score, 2)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="en-de")
    ap.add_argument("--grid", default="10:100,20:300,50:300,20:1000")
    ap.add_argument("--runs", type=int, default=2)
    args = ap.parse_args()
    from seqattn.shipped import resolve_model

    with tempfile.TemporaryDirectory() as tmp_dir:
        tmp = Path(tmp_dir)
        model = tmp / "model"
        shutil.copytree(resolve_model(args.model), model)
        val_src, val_ref = M30K / "val.en", M30K / "val.de"
        test_src, test_ref = M30K / "test_2016_flickr.en", M30K / "test_2016_flickr.de"
        common = ["-m", str(model), "--engine", "native"]
        seqattn("translate", *common, "-i", str(val_src), out=tmp / "val.none")
        base = bleu(tmp / "val.none", val_ref)
        print(json.dumps({"set": "val", "shortlist": None, "bleu": base}), flush=True)
        settings = []
        for item in args.grid.split(","):
            per_source, frequent = item.split(":")
            seqattn("shortlist", str(model), "--src", str(M30K / "train.en"), "--tgt",
                    str(M30K / "train.de"), "--per-source", per_source, "--frequent", frequent,
                    "--force")
            seqattn("translate", *common, "--shortlist", "-i", str(val_src),
                    out=tmp / "val.short")
            score = bleu(tmp / "val.short", val_ref)
            size = mean_candidates(model, val_src)
            settings.append((score, size, per_source, frequent))
            print(json.dumps({"set": "val", "shortlist": item, "bleu": score,
                              "delta": round(score - base, 2),
                              "mean_candidates_per_batch": round(size)}), flush=True)
        close = [s for s in settings if s[0] >= base - 0.1]
        chosen = min(close, key=lambda s: s[1]) if close else max(settings)
        _, _, per_source, frequent = chosen
        seqattn("shortlist", str(model), "--src", str(M30K / "train.en"), "--tgt",
                str(M30K / "train.de"), "--per-source", per_source, "--frequent", frequent,
                "--force")
        seqattn("translate", *common, "-i", str(test_src), out=tmp / "test.none")
        seqattn("translate", *common, "--shortlist", "-i", str(test_src), out=tmp / "test.short")
        a, b = bleu(tmp / "test.none", test_ref), bleu(tmp / "test.short", test_ref)
        print(json.dumps({"set": "test2016", "chosen": f"{per_source}:{frequent}",
                          "bleu_none": a, "bleu_shortlist": b, "delta": round(b - a, 2)}),
              flush=True)
        speed = ["translate", *common, "-i", str(test_src), "--beam", "5", "--batch-size", "64",
                 "--min-len", "20", "--max-len", "20", "--no-copy-numbers"]
        times: dict[str, list[float]] = {"none": [], "shortlist": []}
        for _ in range(args.runs):
            times["none"].append(seqattn(*speed))
            times["shortlist"].append(seqattn(*speed, "--shortlist"))
        print(json.dumps({"set": "test2016", "speed": "beam 5, batch 64, 20 pieces, 2 threads",
                          "seconds_none": [round(t, 2) for t in times["none"]],
                          "seconds_shortlist": [round(t, 2) for t in times["shortlist"]],
                          "speedup": round(min(times["none"]) / min(times["shortlist"]), 3)}),
              flush=True)


if __name__ == "__main__":
    main()
