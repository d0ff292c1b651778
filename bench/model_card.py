"""Write a shipped model's card (``models/NAME/README.md``) from measured figures only: the
training log of its run, its config and metadata, and ``bench/score_models.py``'s JSON.

    .venv/bin/python bench/model_card.py runs/en-de models/en-de \\
        --scores bench/model_scores.json --recipe models/recipes/en-de-transformer.yaml \\
        --hardware "2-core x86 CPU VM (no GPU), torch 2.13.0, 2 threads"
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import yaml

# The same for every shipped model. Sources: `license` in pyproject.toml; the Multi30k
# repository's README, section "Use of the data" (it has no licence file).
LICENCES = [
    "## Licences", "",
    "- **The weights** (and the sentencepiece model, config and metadata beside them): MIT, the "
    "licence of seqattn (`license` in `pyproject.toml`); trained by the seqattn developers.",
    "- **The training data**, Multi30k task 1 (Elliott et al. 2016, "
    "<https://github.com/multi30k/dataset>), has no licence file and names no licence. Its "
    "README, under \"Use of the data\", says that Multi30K is partially derived from Flickr30K "
    "(Young et al. 2014), whose images come from Flickr and must be used under the Flickr Terms "
    "of Use, that its authors do not own the images' copyright, and: \"They are solely provided "
    "for researchers and educators who wish to use the dataset for non-commercial research "
    "and/or educational purposes.\" These models were trained on the text only (the English "
    "Flickr30K captions and their German translations), never on the images; the README does "
    "not say whether its terms reach models trained on the data, so check them before any "
    "commercial use.", "",
]


def _training(run: Path, up_to: int) -> dict[str, float]:
    """Training figures of the run up to step ``up_to`` (the shipped weights' last step)."""
    records = [json.loads(x) for x in (run / "train.jsonl").read_text().splitlines() if x.strip()]
    records = [r for r in records if r.get("step", 0) <= up_to]
    train = [r for r in records if r.get("kind") == "train"]
    valid = [r for r in records if r.get("kind") == "valid"]
    return {"steps": max(r["step"] for r in train), "epochs": max(r["epoch"] for r in train),
            "seconds": sum(r["seconds"] for r in train),
            "target_tokens": sum(r["target_tokens"] for r in train),
            "validations": len(valid)}


def _bleu(block: dict, metric: str = "bleu") -> tuple[float, str]:
    """(score, signature) of the first system of ``seqattn evaluate -f json`` output."""
    score = block["sets"][0]["systems"][0]["scores"][metric]
    return score["score"], score["signature"]


def _links_by(method: str, threshold: float | None) -> str:
    return "the argmax per target word" if method == "argmax" else \
        f"every word pair with weight ≥ {threshold:g}" + (" and the argmax" if method == "both"
                                                          else "")


def _view_sentence(al: dict, rnn: bool = False) -> str:
    """The model's stored alignment setting in words (what ``seqattn align`` reads by default)."""
    if "layer" not in al:
        return "Alignment view: the default (penultimate decoder layer, mean over heads)."
    heads = f"head {al['heads']}" if str(al["heads"]).isdigit() else f"{al['heads']} over heads"
    where = "the attention itself" if rnn else f"decoder layer {al['layer']}, {heads}"
    text = (f"Alignment view (stored in `seqattn.json` by `seqattn align --calibrate` on the "
            f"gold set below, so the AER there is a tuned figure): {where}"
            + (", shift-att" if al.get("shift") else ""))
    if al.get("blend"):
        b = al["blend"]
        text += f", blended {b['weight']:g} with layer {b['layer']} ({b['heads']} over heads)"
    text += f"; links: {_links_by(al.get('method', 'argmax'), al.get('threshold'))}."
    if al.get("sym"):
        y = al["sym"]
        text += (f" With `--reverse-model {y['reverse']}`: `--sym {y['sym']}`, links "
                 f"{_links_by(y['method'], y['threshold'])} (AER {100 * y['aer']:.1f}% on "
                 "that set, also calibrated).")
    return text


def _cell(signature: str) -> str:
    """A sacreBLEU signature inside a Markdown table cell (its '|' would end the cell)."""
    return "`" + signature.replace("|", "\\|") + "`"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("run", type=Path)
    ap.add_argument("model", type=Path)
    ap.add_argument("--scores", type=Path, required=True)
    ap.add_argument("--recipe", required=True)
    ap.add_argument("--hardware", required=True)
    ap.add_argument("--note", default="")
    args = ap.parse_args()
    meta = json.loads((args.model / "seqattn.json").read_text())
    cfg = yaml.safe_load((args.model / "config.yaml").read_text())
    entry = next(s for s in json.loads(args.scores.read_text())
                 if Path(s["model"]).resolve() == args.model.resolve())
    t = _training(args.run, meta["step"])
    src, tgt = entry["pair"].split("-")
    sacre, sacre_sig = _bleu(entry["sacrebleu"])
    chrf, _ = _bleu(entry["sacrebleu"], "chrf")
    paper, paper_sig = _bleu(entry["paper"])
    m, tr = cfg["model"], cfg["training"]
    arch = (f"Transformer {m['enc_layers']}+{m['dec_layers']} layers, d {m['hidden_size']}, "
            f"{m['heads']} heads, ff {m['ff_size']}" if m["arch"] == "transformer" else
            f"RNN without attention ({m['cell'].upper()}, hidden {m['hidden_size']}; the "
            "encoder's final state is the context of every step)" if m["attention"] == "none"
            else f"RNN ({m['attention']} attention, {m['cell'].upper()}, hidden "
                 f"{m['hidden_size']})")
    averaged = meta.get("averaged_steps")
    weights = (f"the weights are the mean of the checkpoints of steps "
               f"{', '.join(f'{x:,}' for x in averaged)} (`seqattn export --average "
               f"{len(averaged)}`)" if averaged else
               f"the weights are those of step {meta['step']:,} (best validation "
               f"{tr['best_metric']})")
    lines = [
        f"# {args.model.name}: Multi30k {src}→{tgt}, {arch}", "",
        f"{meta['parameters']:,} parameters; weights stored as "
        f"{meta.get('stored_dtype', 'float32')} (loaded as float32). "
        "Trained with `seqattn train` by the seqattn developers.", "",
        "## Data", "",
        f"Multi30k task 1 (Elliott et al. 2016), `train.{src}`/`train.{tgt}` (29,000 pairs) for "
        f"training, `val` (1,014) for model selection; never the test sets. Joint "
        f"{cfg['data']['spm_type']} sentencepiece vocabulary of {cfg['data']['vocab_size']:,}.",
        "",
        "## Training", "",
        f"Recipe: `{args.recipe}` (the resolved config is `config.yaml` here). "
        f"{t['steps']:,} updates of about {tr['batch_tokens']:,} target tokens "
        f"({t['epochs']} epochs, {t['target_tokens'] / 1e6:.1f} M target tokens) in "
        f"{t['seconds'] / 3600:.2f} h of training time on {args.hardware}; {weights}.",
    ]
    if tr.get("guided_alignment"):
        lines += ["", f"Guided alignment: decoder layer {meta['alignment']['layer']}, head "
                      f"{meta['alignment']['heads']} learned eflomal's links of the training "
                      f"pairs (`{tr['guided_alignment']}`, weight {tr['guided_weight']}); it is "
                      "this model's default alignment view."]
    if args.note:
        lines += ["", args.note]
    lines += ["", "## Scores (test2016, 1,000 sentences, beam 5)", "",
              "| convention | BLEU | how |", "| --- | --- | --- |",
              f"| sacreBLEU, cased, detokenized | {sacre:.1f} | {_cell(sacre_sig)} |",
              f"| paper: lowercased, Moses-tokenized | {paper:.1f} | {_cell(paper_sig)} |", "",
              f"chrF2 (sacreBLEU): {chrf:.1f}."]
    if m["arch"] == "rnn" and m["attention"] == "none":
        lines += ["", "No alignments: the model has no attention to show (`model.attention: "
                      "none`; `seqattn align` says so). It is the fixed-vector baseline of the "
                      "README's \"See the bottleneck\"."]
    if "dev_aer" in entry:
        lines += ["", _view_sentence(meta.get("alignment", {}), m["arch"] != "transformer")]
        a = entry["dev_aer"]["alignments"][0]
        flipped = "" if (src, tgt) == ("en", "de") else f", aligned {src}→{tgt} and scored " \
            "against the gold flipped (`evaluate --align --reverse`)"
        lines += ["", f"Alignment (`seqattn align`, default view{flipped}) on the 100 hand-aligned "
                      f"test2016 pairs of `../shared/data/gold/multi30k_test2016_ende_dev`: AER "
                      f"{100 * a['aer']:.1f}%, precision {100 * a['precision']:.1f}%, recall "
                      f"{100 * a['recall']:.1f}%."]
    lines += ["", "Reproduce (from the repository root, `../shared/data` beside it):", "",
              "```bash",
              f"seqattn evaluate -m {args.model} --src ../shared/data/multi30k/test_2016_flickr."
              f"{src} -r ../shared/data/multi30k/test_2016_flickr.{tgt}",
              f".venv/bin/pip install sacremoses && .venv/bin/python bench/score_models.py "
              f"{args.model}:{src}-{tgt}", "```", ""] + LICENCES
    (args.model / "README.md").write_text("\n".join(lines), encoding="utf-8")
    print((args.model / "README.md").read_text())


if __name__ == "__main__":
    main()
