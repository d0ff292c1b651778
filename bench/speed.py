"""Training and decoding speed of seqattn beside Joey NMT, OpenNMT-py and CTranslate2.

The peers are measured by the harness in ../shared/bench/peers (its README has the details);
this script measures seqattn the same way (whole processes under the harness's measure.py,
2 threads, Multi30k en→de, joint unigram sentencepiece with 8000 pieces) and prints one table
per measurement with the peers' rows beside ours.

    python bench/speed.py --run-peers        # the harness first (about an hour), then seqattn
    python bench/speed.py                    # seqattn only, next to the peers' last results

Training: 120 updates of 4096-token batches, target tokens/s over updates 20→120, in fp32 and
with training.precision bf16 (autocast), for the
Transformer (3+3 layers, d 256, 4 heads, ff 1024, tied embeddings) and the Bahdanau GRU
(hidden 256: our encoder is 2×256 where the peers' is 2×128, so we do more work).
Decoding: test2016 (1,000 sentences), 64 sentences a batch, greedy and beam 5, every output
exactly 20 pieces (--min-len 20 --max-len 20), with the 120-update checkpoints, in fp32 and
with --precision bf16 (the peers decode in float32; CTranslate2 also in int8).
Also: the latency of one `seqattn translate "…"` process and the share of it spent starting
Python and importing torch.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared"
M30K = SHARED / "data" / "multi30k"
HARNESS = SHARED / "bench" / "peers"
MODELS = {
    "transformer": ["--preset", "transformer-small"],
    "rnn": ["--preset", "bahdanau-gru", "--set", "model.dropout=0.1"],
}


def seqattn() -> list[str]:
    exe = Path(sys.executable).parent / "seqattn"
    return [str(exe)] if exe.exists() else [sys.executable, "-m", "seqattn"]


def measure(out_json: Path, log: Path, cmd: list[str], stdin: Path | None = None,
            stdout: Path | None = None) -> dict:
    """Run ``cmd`` under the harness's measure.py (wall clock, peak RSS, foreign CPU)."""
    full = [sys.executable, str(HARNESS / "measure.py"), str(out_json), str(log)]
    if stdin:
        full += ["--stdin", str(stdin)]
    if stdout:
        full += ["--stdout", str(stdout)]
    env = {**os.environ, "OMP_NUM_THREADS": "2", "MKL_NUM_THREADS": "2", "NO_COLOR": "1"}
    subprocess.run(full + ["--"] + cmd, check=True, env=env)
    return json.loads(out_json.read_text())


def train(work: Path, model: str, steps: int, warmup: int, precision: str = "fp32") -> dict:
    """Train ``steps`` updates; the fp32 run's checkpoint is the one the decoding rows use."""
    run = work / (f"train_{model}" if precision == "fp32" else f"train_{model}_{precision}")
    if run.exists():
        shutil.rmtree(run)
    valid = work / "valid"
    valid.mkdir(exist_ok=True)
    for lang in ("en", "de"):  # 100 validation lines, as the peers' dev set
        lines = (M30K / f"val.{lang}").read_text(encoding="utf-8").splitlines()[:100]
        (valid / f"dev.{lang}").write_text("\n".join(lines) + "\n", encoding="utf-8")
    sets = [f"data.train_src={M30K / 'train.en'}", f"data.train_tgt={M30K / 'train.de'}",
            f"data.valid_src={valid / 'dev.en'}", f"data.valid_tgt={valid / 'dev.de'}",
            "data.vocab_size=8000", "training.batch_tokens=4096", "training.accumulate=1",
            f"training.max_steps={steps}",
            "training.log_every=10", f"training.valid_every={steps}", "training.seed=42",
            "decoding.max_len_b=5", "decoding.max_len_a=1.0", f"training.precision={precision}"]
    cmd = seqattn() + ["-q", "train", *MODELS[model], "--out", str(run)]
    for item in sets:
        cmd += ["--set", item]
    m = measure(work / f"{run.name}.json", work / f"{run.name}.log", cmd)
    records = [json.loads(line) for line in (run / "train.jsonl").read_text().splitlines()]
    window = [r for r in records if r["kind"] == "train" and r["step"] > warmup]
    tokens = sum(r["target_tokens"] for r in window)
    seconds = sum(r["seconds"] for r in window)
    updates = window[-1]["step"] - warmup
    return {"model": model, "precision": precision, "tokens_per_s": tokens / seconds,
            "s_per_update": seconds / updates,
            "tokens_per_update": tokens / updates,
            "peak_rss_mib": round(m["tree_peak_rss_kb"] / 1024),
            "foreign_cpu": m.get("foreign_cpu_pct"), "run": str(run)}


def decode(work: Path, model: str, beam: int, precision: str = "fp32") -> dict:
    """Timed: plain text output, as the peers write. Then, untimed, the same decoding as JSON
    lines (which also carries the pieces) checks that every output has exactly 20 pieces and
    that the text is the same."""
    text = work / f"test.{model}.b{beam}.{precision}.txt"
    base = seqattn() + ["-q", "translate", "-m", str(work / f"train_{model}"), "-i",
                        str(M30K / "test_2016_flickr.en"), "--beam", str(beam), "--batch-size",
                        "64", "--min-len", "20", "--max-len", "20", "--precision", precision]
    tag = f"{model}_{beam}" + ("" if precision == "fp32" else f"_{precision}")
    m = measure(work / f"dec_{tag}.json", work / f"dec_{tag}.log", base, stdout=text)
    lines = text.read_text(encoding="utf-8").splitlines()
    jsonl = subprocess.run(base + ["--format", "jsonl"], check=True, capture_output=True,
                           text=True).stdout.splitlines()
    rows = [json.loads(line) for line in jsonl]
    exact = sum(len(r["target_pieces"]) == 20 for r in rows)
    same = [r["translation"] for r in rows] == lines
    return {"model": model, "beam": beam, "precision": precision,
            "sents_per_s": len(lines) / m["wall_s"],
            "peak_rss_mib": round(m["tree_peak_rss_kb"] / 1024), "exact_20": f"{exact}/{len(rows)}",
            "jsonl_same_text": same, "wall_s": m["wall_s"],
            "foreign_cpu": m.get("foreign_cpu_pct")}


def latency(work: Path, runs: int = 5) -> dict:
    model = work / "train_transformer"
    env = {**os.environ, "OMP_NUM_THREADS": "2"}

    def timed(cmd: list[str]) -> float:
        times = []
        for _ in range(runs):
            start = time.perf_counter()
            subprocess.run(cmd, check=True, capture_output=True, env=env)
            times.append(time.perf_counter() - start)
        return statistics.median(times)

    whole = timed(seqattn() + ["translate", "-m", str(model), "A man is riding a bike."])
    python = timed([sys.executable, "-c", "pass"])
    torch_import = timed([sys.executable, "-c", "import torch"])
    return {"translate_one_s": whole, "python_start_s": python, "python_and_torch_s": torch_import}


def peer_rows(peers_root: Path) -> list[dict]:
    rows = []
    for path in sorted((peers_root / "work").glob("*/result.json")):
        rows.append(json.loads(path.read_text()))
    return rows


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--run-peers", action="store_true", help="run the peers harness first")
    parser.add_argument("--peers-root", type=Path,
                        default=Path(os.environ.get("PEERS_ROOT", Path(tempfile.gettempdir())
                                                    / "seqattn-peers")))
    parser.add_argument("--work", type=Path, default=Path(tempfile.gettempdir()) / "seqattn-bench")
    parser.add_argument("--steps", type=int, default=120)
    parser.add_argument("--warmup", type=int, default=20)
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results.json")
    parser.add_argument("--precision", default="fp32,bf16",
                        help="training and decoding precisions to measure, comma-separated")
    parser.add_argument("--decode-precision", default=None,
                        help="decoding precisions, when not those of --precision (bf16 decoding "
                             "without bf16 training: a CPU without bfloat16 instructions)")
    parser.add_argument("--decode-only", action="store_true",
                        help="reuse the trained checkpoints in --work; keep the training rows "
                             "of --out")
    args = parser.parse_args()
    if args.run_peers:
        subprocess.run(["bash", str(HARNESS / "run_all.sh")], check=True,
                       env={**os.environ, "PEERS_ROOT": str(args.peers_root)})
    args.work.mkdir(parents=True, exist_ok=True)
    results: dict = {"train": [], "decode": [], "peers": peer_rows(args.peers_root)}
    if args.decode_only:
        results["train"] = json.loads(args.out.read_text())["train"] if args.out.exists() else []
    for model in MODELS:
        if not args.decode_only:
            for precision in args.precision.split(","):
                results["train"].append(train(args.work, model, args.steps, args.warmup,
                                              precision))
                print(json.dumps(results["train"][-1]), flush=True)
        for precision in (args.decode_precision or args.precision).split(","):
            for beam in (1, 5):
                results["decode"].append(decode(args.work, model, beam, precision))
                print(json.dumps(results["decode"][-1]), flush=True)
    results["latency"] = latency(args.work)
    print(json.dumps(results["latency"]), flush=True)
    args.out.write_text(json.dumps(results, indent=2) + "\n")
    print(f"written {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
