"""The CTranslate2 engine through seqattn against CTranslate2 used directly (issue 20).

    python bench/ct2_speed.py [--model en-de] [--lines 1000] [--threads 2] [--batch 64]

Exports ``--model`` (float32 and int8) into a temporary directory, then for each weight type and
for beam 5 and greedy runs, one after another, as whole processes under ``/usr/bin/time``:

* ``seqattn translate -m EXPORT -i test2016 --batch-size B`` (plain text: no torch), and
* a plain script that loads the same CTranslate2 model with ``ctranslate2.Translator``,
  tokenizes with sentencepiece and calls ``translate_batch`` with the same options
  (``max_batch_size`` B, the same beam, α, output limit and threads).

Prints one JSON line per setting: sentences/s and peak RSS of each, their ratio, and whether
the outputs are identical. Time it on a quiet machine.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
TEST = ROOT.parent / "shared" / "data" / "multi30k" / "test_2016_flickr.en"

DIRECT = r"""
import sys, ctranslate2, sentencepiece as spm
model, src, out, beam, alpha, batch, threads = sys.argv[1:8]
sp = spm.SentencePieceProcessor(model_file=model + "/spm.model")
lines = open(src, encoding="utf-8").read().splitlines()
tokens = [sp.encode(line, out_type=str) for line in lines]
tr = ctranslate2.Translator(model + "/ctranslate2", device="cpu", intra_threads=int(threads))
res = tr.translate_batch(tokens, beam_size=int(beam), length_penalty=float(alpha),
                         max_batch_size=int(batch), max_decoding_length=256)
with open(out, "w", encoding="utf-8") as f:
    for r in res:
        f.write(sp.decode(r.hypotheses[0]) + "\n")
"""


def timed(cmd: list[str], threads: int, stdout: Path | None = None) -> tuple[float, float]:
    """(seconds, peak RSS MiB) of ``cmd`` as a whole process."""
    env = {**os.environ, "OMP_NUM_THREADS": str(threads)}
    start = time.perf_counter()
    with open(stdout or os.devnull, "w") as out:
        r = subprocess.run(["/usr/bin/time", "-v", *cmd], stdout=out, stderr=subprocess.PIPE,
                           text=True, env=env, check=True)
    seconds = time.perf_counter() - start
    rss = int(re.search(r"Maximum resident set size \(kbytes\): (\d+)", r.stderr).group(1))
    return seconds, rss / 1024


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="en-de")
    ap.add_argument("--lines", type=int, default=1000)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--batch", type=int, default=64)
    args = ap.parse_args()
    lines = TEST.read_text(encoding="utf-8").splitlines()[:args.lines]
    with tempfile.TemporaryDirectory() as tmp:
        src = Path(tmp) / "test.en"
        src.write_text("\n".join(lines) + "\n", encoding="utf-8")
        for dtype in ("fp32", "int8"):
            export = Path(tmp) / dtype
            subprocess.run([sys.executable, "-m", "seqattn", "-q", "export", args.model,
                            str(export), "--format", "ctranslate2", "--dtype", dtype],
                           check=True, stderr=subprocess.DEVNULL)
            alpha = _alpha(export)
            for beam in (5, 1):
                ours_out, theirs_out = Path(tmp) / "ours.txt", Path(tmp) / "theirs.txt"
                ours = timed([sys.executable, "-m", "seqattn", "-q", "translate", "-m",
                              str(export), "-i", str(src), "--beam", str(beam), "--batch-size",
                              str(args.batch), "--no-split", "--no-caps",
                              "--no-copy-numbers", "--max-len", "256"],
                             args.threads, ours_out)
                theirs = timed([sys.executable, "-c", DIRECT, str(export), str(src),
                                str(theirs_out), str(beam), str(alpha), str(args.batch),
                                str(args.threads)], args.threads)
                same = ours_out.read_text() == theirs_out.read_text()
                n = len(lines)
                print(json.dumps({
                    "dtype": dtype, "beam": beam, "lines": n, "threads": args.threads,
                    "batch": args.batch,
                    "seqattn_sent_per_s": round(n / ours[0], 1),
                    "direct_sent_per_s": round(n / theirs[0], 1),
                    "ratio": round(theirs[0] / ours[0], 3),
                    "seqattn_peak_rss_mib": round(ours[1]), "direct_peak_rss_mib": round(theirs[1]),
                    "identical_output": same}), flush=True)


def _alpha(export: Path) -> float:
    import yaml

    cfg = yaml.safe_load((export / "config.yaml").read_text())
    return float(cfg["decoding"]["length_penalty"])


if __name__ == "__main__":
    main()
