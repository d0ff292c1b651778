"""CTranslate2 export against the native engine (issue 20), on test2016 with beam 5.

    python bench/ct2_equivalence.py [--model en-de] [--lines 1000]

Exports ``--model`` twice (``seqattn export --format ctranslate2``, float32 and int8) into a
temporary directory, translates test2016 with ``seqattn translate`` and prints one JSON record:

* like for like: the float32 export against the native engine with the same length
  normalisation (``--length-norm power``): the share of identical lines;
* each engine with its own default search (native: GNMT penalty; CTranslate2: length ** α):
  sacreBLEU of each;
* int8 against float32: sacreBLEU of each.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

import sacrebleu

DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "multi30k"


def translate(model: Path | str, src: Path, *flags: str) -> list[str]:
    out = subprocess.run([sys.executable, "-m", "seqattn", "-q", "translate", "-m", str(model),
                          "-i", str(src), *flags], capture_output=True, text=True, check=True)
    return out.stdout.splitlines()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="en-de")
    ap.add_argument("--lines", type=int, default=1000)
    args = ap.parse_args()
    src_lines = (DATA / "test_2016_flickr.en").read_text(encoding="utf-8").splitlines()
    refs = (DATA / "test_2016_flickr.de").read_text(encoding="utf-8").splitlines()
    src_lines, refs = src_lines[:args.lines], refs[:args.lines]
    with tempfile.TemporaryDirectory() as tmp:
        src = Path(tmp) / "test.en"
        src.write_text("\n".join(src_lines) + "\n", encoding="utf-8")
        exports = {}
        for dtype in ("fp32", "int8"):
            exports[dtype] = Path(tmp) / f"ct2-{dtype}"
            subprocess.run([sys.executable, "-m", "seqattn", "-q", "export", args.model,
                            str(exports[dtype]), "--format", "ctranslate2", "--dtype", dtype],
                           check=True)
        native_power = translate(args.model, src, "--length-norm", "power")
        ct2_fp32 = translate(exports["fp32"], src)
        native = translate(args.model, src)
        ct2_int8 = translate(exports["int8"], src)

    def bleu(hyps: list[str]) -> float:
        return round(sacrebleu.corpus_bleu(hyps, [refs]).score, 2)

    same = sum(a == b for a, b in zip(native_power, ct2_fp32))
    print(json.dumps({
        "model": args.model, "lines": len(src_lines), "beam": "the model's (5)",
        "identical_fp32_vs_native_power": f"{same}/{len(src_lines)} "
                                          f"({100 * same / len(src_lines):.1f} %)",
        "bleu_native_gnmt": bleu(native), "bleu_native_power": bleu(native_power),
        "bleu_ct2_fp32": bleu(ct2_fp32), "bleu_ct2_int8": bleu(ct2_int8),
    }))


if __name__ == "__main__":
    main()
