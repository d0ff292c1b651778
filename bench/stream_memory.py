"""Does `seqattn translate` stream? Peak memory over a long input, sampled through the run.

    python bench/stream_memory.py -m MODEL_DIR [--lines 100000]

Writes an input file of N lines (test2016 sentences repeated, every 50th line empty), pipes it
through `seqattn translate --beam 1`, checks that exactly N lines come back (empty ones where
the input was empty), and prints the resident memory of the process at 10 points of the run:
flat memory means the input is streamed, not read first.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
TEST = ROOT.parent / "shared" / "data" / "multi30k" / "test_2016_flickr.en"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-m", "--model", required=True)
    parser.add_argument("--lines", type=int, default=100_000)
    parser.add_argument("--max-len", type=int, default=8, help="pieces per output (speed)")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="seqattn-stream-"))
    sentences = TEST.read_text(encoding="utf-8").splitlines()
    src = work / "input.txt"
    with src.open("w", encoding="utf-8") as f:
        for i in range(args.lines):
            f.write("\n" if i % 50 == 49 else sentences[i % len(sentences)] + "\n")
    out = work / "output.txt"
    cmd = [sys.executable, "-m", "seqattn", "-q", "translate", "-m", args.model, "--beam", "1",
           "--max-len", str(args.max_len)]
    samples = []  # (seconds, lines written so far, RSS MiB)
    start = time.time()
    with src.open("rb") as fin, out.open("wb") as fout:
        proc = subprocess.Popen(cmd, stdin=fin, stdout=fout)
        while proc.poll() is None:
            samples.append((round(time.time() - start, 1), _count_lines(out), _rss_mib(proc.pid)))
            time.sleep(0.5)
    got = out.read_text(encoding="utf-8").split("\n")[:-1]
    empty_ok = all((got[i] == "") == (i % 50 == 49) for i in range(len(got)))
    live = [s for s in samples if s[2] is not None]
    picks = [live[int(k * (len(live) - 1) / 9)] for k in range(10)] if live else []
    print(json.dumps({"lines_in": args.lines, "lines_out": len(got), "exit_code": proc.returncode,
                      "empty_lines_match": empty_ok, "wall_s": round(time.time() - start, 1),
                      "peak_rss_mib": max((s[2] for s in live), default=None),
                      "samples_s_lines_rss_mib": picks}, indent=1))
    return 0 if len(got) == args.lines and empty_ok and proc.returncode == 0 else 1


def _count_lines(path: Path) -> int:
    with path.open("rb") as f:
        return sum(chunk.count(b"\n") for chunk in iter(lambda: f.read(1 << 20), b""))


def _rss_mib(pid: int) -> float | None:
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return round(int(line.split()[1]) / 1024, 1)
    except OSError:
        return None
    return None


if __name__ == "__main__":
    sys.exit(main())
