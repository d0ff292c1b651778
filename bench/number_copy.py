"""Numbers through translation (issue 17): the share of source numbers that come out verbatim,
before and after attention-guided copying (:mod:`seqattn.align.numbers`).

A number test set is built from Multi30k captions that open with a count ("Two men ...",
"Zwei Männer ..."): the count becomes a random number (2-999), and every second caption also
gets a year ("... in 1987.") before its final stop. The part built from val was used to develop
the copying rules; the part built from test2016 is reported.

    python bench/number_copy.py                        # en-de, both parts, JSON on stdout
    python bench/number_copy.py --model de-en --lang de
"""

from __future__ import annotations

import argparse
import json
import random
import re
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
DATA = ROOT.parent / "shared" / "data" / "multi30k"
COUNTS = {"en": "Two|Three|Four|Five|Six|Seven|Eight|Nine|Ten|Several|Many|Some",
          "de": "Zwei|Drei|Vier|Fünf|Sechs|Sieben|Acht|Neun|Zehn|Mehrere|Viele|Einige"}
FILES = {"val": "val.{}", "test2016": "test_2016_flickr.{}"}


def build(lang: str, part: str, seed: int = 1) -> list[str]:
    """The number sentences of one part (deterministic for a seed)."""
    rng = random.Random(seed)
    opening = re.compile(rf"^({COUNTS[lang]})\b")
    year = {"en": " in {}", "de": " im Jahr {}"}[lang]
    out = []
    for line in (DATA / FILES[part].format(lang)).read_text(encoding="utf-8").splitlines():
        if not opening.match(line):
            continue
        line = opening.sub(str(rng.randint(2, 999)), line, count=1)
        if len(out) % 2:
            body = line.rstrip().rstrip(".")
            line = body + year.format(rng.randint(1900, 2025)) + "."
        out.append(line)
    return out


def kept(source: str, output: str) -> tuple[int, int]:
    """(numbers of the source found verbatim in the output, numbers in the source)."""
    from seqattn.align.numbers import number_of

    nums = [n for w in source.split() if (n := number_of(w)) is not None]
    found = set(re.findall(r"\d+(?:[.,:]\d+)*", output))
    return sum(n in found for n in nums), len(nums)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="en-de")
    ap.add_argument("--lang", default="en", choices=sorted(COUNTS))
    args = ap.parse_args()
    import seqattn
    from seqattn.align.numbers import copy_numbers, has_number

    tr = seqattn.load(args.model, device="cpu")
    report: dict[str, object] = {"model": args.model, "options": "defaults (beam 5)"}
    for part in FILES:
        lines = build(args.lang, part)
        results = tr.translate(lines, attention=False)
        before = [r.text for r in results]
        started = time.time()
        changed = sum(copy_numbers(tr, r) for r in results)
        seconds = time.time() - started
        after = [r.text for r in results]
        score = {}
        for name, outs in (("before", before), ("after", after)):
            hit = total = 0
            for src, out in zip(lines, outs):
                h, t = kept(src, out)
                hit, total = hit + h, total + t
            score[name] = {"verbatim": hit, "numbers": total, "share": round(hit / total, 4)}
        report[part] = {"sentences": len(lines), **score, "words_changed": changed,
                        "copy_seconds": round(seconds, 2),
                        "examples": [{"source": s, "before": b, "after": a}
                                     for s, b, a in list(zip(lines, before, after))[:4]]}
    if args.lang == "en" and args.model == "en-de":  # the real test set: BLEU must not drop
        import sacrebleu

        src = (DATA / FILES["test2016"].format("en")).read_text(encoding="utf-8").splitlines()
        ref = (DATA / FILES["test2016"].format("de")).read_text(encoding="utf-8").splitlines()
        results = tr.translate(src, attention=False)
        before = [r.text for r in results]
        changed = sum(copy_numbers(tr, r) for r in results)
        after = [r.text for r in results]
        report["test2016_bleu"] = {
            "lines_with_numbers": sum(has_number(x) for x in src), "words_changed": changed,
            "lines_changed": sum(b != a for b, a in zip(before, after)),
            "before": round(sacrebleu.corpus_bleu(before, [ref]).score, 2),
            "after": round(sacrebleu.corpus_bleu(after, [ref]).score, 2),
            "what": "sacreBLEU 13a on detokenized text, default options (beam 5)"}
    json.dump(report, sys.stdout, indent=1, ensure_ascii=False)
    print()


if __name__ == "__main__":
    main()
