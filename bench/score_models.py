"""Score model directories on Multi30k test2016 in both BLEU conventions, and their alignments
on the hand-aligned dev gold: the figures of the README's model table and the model cards.

    .venv/bin/pip install sacremoses        # the Moses tokenizer of the paper convention
    .venv/bin/python bench/score_models.py models/en-de:en-de models/de-en:de-en \\
        models/en-de-rnn:en-de --json bench/model_scores.json

Per model (``DIR:SRC-TGT``), with the model's own decoding settings (beam 5):
1. ``seqattn evaluate -m DIR --src test.SRC -r test.TGT --save-hyp H -f json`` — sacreBLEU on
   cased, detokenized text (signature ``nrefs:1|case:mixed|eff:no|tok:13a|smooth:exp``);
2. the paper convention: hypothesis and reference Moses-tokenized (sacremoses, escape=False),
   then ``seqattn evaluate --lowercase --tokenize none``;
3. ``seqattn align`` on the 100 en-de gold pairs (the model's default view; a de→en model
   aligns them the other way round, scored with ``--reverse``) and ``seqattn evaluate --align``
   (AER, precision, recall); not for a model without attention (``model.attention: none``).

``--json`` replaces the given models' entries in the file and keeps the others.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data"
SEQATTN = [sys.executable, "-m", "seqattn"]


def _run(args: list[str], stdout: Path | None = None) -> str:
    if stdout is None:
        return subprocess.run(SEQATTN + args, check=True, capture_output=True,
                              text=True).stdout
    with open(stdout, "w", encoding="utf-8") as f:
        subprocess.run(SEQATTN + args, check=True, stdout=f)
    return ""


def _tokenize(lines: list[str], lang: str) -> list[str]:
    from sacremoses import MosesTokenizer

    tok = MosesTokenizer(lang)
    return [tok.tokenize(x, escape=False, return_str=True) for x in lines]


def score(model: str, src: str, tgt: str, work: Path, extra: list[str]) -> dict[str, object]:
    m30k = DATA / "multi30k"
    test_src, test_ref = m30k / f"test_2016_flickr.{src}", m30k / f"test_2016_flickr.{tgt}"
    name = Path(model).name
    hyp = work / f"{name}.test2016.{tgt}"
    started = time.perf_counter()
    sacre = json.loads(_run(["evaluate", "-m", model, "--src", str(test_src), "-r",
                             str(test_ref), "--save-hyp", str(hyp), "-f", "json", *extra]))
    seconds = time.perf_counter() - started
    tok_hyp, tok_ref = work / f"{hyp.name}.tok", work / f"test2016.{tgt}.tok"
    tok_hyp.write_text("\n".join(_tokenize(hyp.read_text(encoding="utf-8").splitlines(), tgt))
                       + "\n", encoding="utf-8")
    tok_ref.write_text("\n".join(_tokenize(test_ref.read_text(encoding="utf-8").splitlines(),
                                           tgt)) + "\n", encoding="utf-8")
    paper = json.loads(_run(["evaluate", "-r", str(tok_ref), str(tok_hyp), "--lowercase",
                             "--tokenize", "none", "--metrics", "bleu", "-f", "json"]))
    out: dict[str, object] = {"model": model, "pair": f"{src}-{tgt}",
                              "translate_and_score_s": round(seconds, 1),
                              "sacrebleu": sacre, "paper": paper}
    import yaml

    cfg = yaml.safe_load((Path(model) / "config.yaml").read_text(encoding="utf-8"))
    if cfg["model"].get("attention") == "none" and cfg["model"]["arch"] == "rnn":
        return out   # no attention: nothing to align with
    gold = DATA / "gold" / f"multi30k_test2016_{src}{tgt}_dev"
    if gold.is_dir():
        links = work / f"{name}.dev.align"
        _run(["align", "-m", model, str(gold / f"{src}{tgt}.src"), str(gold / f"{src}{tgt}.tgt")],
             stdout=links)
        out["dev_aer"] = json.loads(_run(["evaluate", "--align", str(links), "--gold",
                                          str(gold / f"{src}{tgt}.talp"), "--gold-one-indexed",
                                          "-f", "json"]))
    reverse_gold = DATA / "gold" / f"multi30k_test2016_{tgt}{src}_dev"
    if not gold.is_dir() and reverse_gold.is_dir():  # e.g. de-en on the en-de gold, flipped
        g = reverse_gold
        links = work / f"{name}.dev.align"
        _run(["align", "-m", model, str(g / f"{tgt}{src}.tgt"), str(g / f"{tgt}{src}.src")],
             stdout=links)
        out["dev_aer"] = json.loads(_run(["evaluate", "--align", str(links), "--gold",
                                          str(g / f"{tgt}{src}.talp"), "--gold-one-indexed",
                                          "--reverse", "-f", "json"]))
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("models", nargs="+", help="DIR:SRC-TGT, e.g. models/en-de:en-de")
    ap.add_argument("--work", type=Path, default=ROOT / "runs" / "scores")
    ap.add_argument("--json", type=Path, help="also write the results here")
    ap.add_argument("--set", action="append", default=[], metavar="EXTRA",
                    help="extra arguments for model-mode evaluate, e.g. --set=--beam=1")
    args = ap.parse_args()
    args.work.mkdir(parents=True, exist_ok=True)
    results = []
    for spec in args.models:
        model, _, pair = spec.rpartition(":")
        src, _, tgt = pair.partition("-")
        results.append(score(model, src, tgt, args.work, args.set))
        print(json.dumps(results[-1]), flush=True)
    if args.json:  # other models' entries already in the file are kept
        done = {r["model"] for r in results}
        kept = [r for r in json.loads(args.json.read_text(encoding="utf-8"))
                if r["model"] not in done] if args.json.exists() else []
        args.json.write_text(json.dumps(kept + results, indent=1) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
