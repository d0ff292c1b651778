"""How long `seqattn --help` (and other torch-free paths) take as whole processes.

Usage: python bench/help_time.py [--runs 20]
Prints the median and best wall time of each command line; the goal for `seqattn --help` is
under 0.5 s. Each run is a fresh process, so Python start-up and imports are included.
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import subprocess
import sys
import time

COMMANDS = [
    ["--help"],
    ["evaluate", "--help"],
    ["translate", "--help"],
    ["--version"],
]


def time_command(argv: list[str], runs: int) -> list[float]:
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        subprocess.run(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=True)
        times.append(time.perf_counter() - start)
    return times


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--goal", type=float, default=0.5, help="seconds for `seqattn --help`")
    args = parser.parse_args()
    exe = shutil.which("seqattn") or f"{sys.executable} -m seqattn"
    base = exe.split()
    print(f"{'command':32} {'median s':>9} {'best s':>8}   ({args.runs} runs each)")
    verdict = 0
    python_only = time_command([sys.executable, "-c", "pass"], args.runs)
    print(f"{'python -c pass (start-up only)':32} {statistics.median(python_only):9.3f} "
          f"{min(python_only):8.3f}")
    for argv in COMMANDS:
        times = time_command(base + argv, args.runs)
        median = statistics.median(times)
        print(f"{'seqattn ' + ' '.join(argv):32} {median:9.3f} {min(times):8.3f}")
        if argv == ["--help"] and median >= args.goal:
            verdict = 1
    status = "met" if not verdict else "MISSED"
    print(f"goal (seqattn --help under {args.goal:.1f} s): {status}")
    return verdict


if __name__ == "__main__":
    sys.exit(main())
