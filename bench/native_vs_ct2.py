"""Native beam search against CTranslate2, alternated (issue 20's native-engine goal).

    python bench/native_vs_ct2.py [--rounds 3] [--beam 5]

Needs the peers harness's CTranslate2 run (``../shared/bench/peers``, ``ct2:transformer``) and
``bench/speed.py``'s 120-update Transformer (``--work``, default ``/tmp/seqattn-bench``): the same
model size, data and vocabulary. Each round runs, one after another, as whole processes under
the harness's ``measure.py`` (2 threads, test2016's 1,000 lines, 64 sentences a batch, exactly 20
pieces): CTranslate2 float32 with the harness's own command, seqattn's native engine, and seqattn
with ``--shortlist`` (built once from Multi30k's training corpus, ``seqattn shortlist`` with its
defaults). This machine's timings drift by up to a quarter between runs of one command, so the
three alternate and each prints every round; compare medians.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared"
M30K = SHARED / "data" / "multi30k"
MEASURE = SHARED / "bench" / "peers" / "measure.py"


def measure(cmd: list[str], out: Path) -> tuple[float, int]:
    """(seconds, peak RSS MiB) of ``cmd`` as a whole process; its stdout to ``out``."""
    env = {**os.environ, "OMP_NUM_THREADS": "2", "MKL_NUM_THREADS": "2", "NO_COLOR": "1"}
    with tempfile.TemporaryDirectory() as tmp:
        record, log = Path(tmp) / "m.json", Path(tmp) / "m.log"
        subprocess.run([sys.executable, str(MEASURE), str(record), str(log), "--stdout",
                        str(out), "--", *cmd], check=True, env=env)
        m = json.loads(record.read_text())
    return m["wall_s"], round(m["tree_peak_rss_kb"] / 1024)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--beam", type=int, default=5)
    ap.add_argument("--work", type=Path, default=Path(tempfile.gettempdir()) / "seqattn-bench")
    ap.add_argument("--peers-root", type=Path,
                    default=Path(os.environ.get("PEERS_ROOT", Path(tempfile.gettempdir())
                                                / "seqattn-peers")))
    args = ap.parse_args()
    peer = json.loads((args.peers_root / "work" / "ct2_transformer" / "result.json").read_text())
    ct2 = peer["decode"][f"len20.float32.beam{args.beam}"]["time"]["cmd"]
    model = args.work / "train_transformer"
    seqattn = [sys.executable, "-m", "seqattn", "-q"]
    subprocess.run([*seqattn, "shortlist", str(model), "--src", str(M30K / "train.en"), "--tgt",
                    str(M30K / "train.de"), "--force"], check=True)
    native = [*seqattn, "translate", "-m", str(model), "-i", str(M30K / "test_2016_flickr.en"),
              "--beam", str(args.beam), "--batch-size", "64", "--min-len", "20", "--max-len",
              "20", "--engine", "native"]
    systems = {"ctranslate2_fp32": ct2, "native_fp32": native,
               "native_fp32_shortlist": [*native, "--shortlist"]}
    seconds: dict[str, list[float]] = {name: [] for name in systems}
    with tempfile.TemporaryDirectory() as tmp:
        for r in range(args.rounds):
            for name, cmd in systems.items():
                wall, rss = measure(cmd, Path(tmp) / f"{name}.out")
                seconds[name].append(wall)
                print(json.dumps({"round": r + 1, "system": name, "beam": args.beam,
                                  "wall_s": wall, "sents_per_s": round(1000 / wall, 1),
                                  "peak_rss_mib": rss}), flush=True)
    base = statistics.median(seconds["ctranslate2_fp32"])
    print(json.dumps({name: {"median_sents_per_s": round(1000 / statistics.median(s), 1),
                             "x_ctranslate2": round(base / statistics.median(s), 3)}
                      for name, s in seconds.items()}), flush=True)


if __name__ == "__main__":
    main()
