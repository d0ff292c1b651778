"""Load on ``seqattn serve`` (issue 19): concurrent clients against one after another.

    python bench/serve_load.py [--model en-de] [--clients 16] [--requests 50]

Starts a real server on 127.0.0.1 (its default options: the model's beam, 5; the default
threads), then sends ``clients × requests`` single-sentence ``/v1/translate`` requests
(test2016 lines, in order, each client its own share) twice: by ``--clients`` concurrent
clients, and the same requests by one client one after another. Every answer is compared
with the offline translation (``seqattn translate -f jsonl`` of the same lines): an error, a
lost answer or a different text counts as a failure. Prints one JSON record: sentences/s under
load and sequentially, their ratio, p50/p99 latency of each, and the failures.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
TEST = ROOT.parent / "shared" / "data" / "multi30k" / "test_2016_flickr.en"


def _port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _ask(port: int, text: str) -> tuple[float, str | None]:
    """(seconds, the translation or None on any failure)."""
    req = urllib.request.Request(f"http://127.0.0.1:{port}/v1/translate",
                                 json.dumps({"text": text}).encode(),
                                 {"content-type": "application/json"})
    start = time.perf_counter()
    try:
        with urllib.request.urlopen(req, timeout=300) as r:
            body = json.loads(r.read())
        out = body["translations"][0]
        return time.perf_counter() - start, out["translation"] if out["source"] == text else None
    except (OSError, ValueError, KeyError):
        return time.perf_counter() - start, None


def _run(port: int, lines: list[str], want: list[str], clients: int) -> dict:
    started = time.perf_counter()
    if clients == 1:
        answers = [_ask(port, text) for text in lines]
    else:
        with ThreadPoolExecutor(clients) as pool:
            answers = list(pool.map(lambda t: _ask(port, t), lines))
    wall = time.perf_counter() - started
    lat = sorted(seconds for seconds, _ in answers)
    wrong = sum(got != w for (_, got), w in zip(answers, want))
    return {"clients": clients, "requests": len(lines), "seconds": round(wall, 2),
            "sentences_per_s": round(len(lines) / wall, 2),
            "p50_ms": round(1000 * statistics.median(lat), 1),
            "p99_ms": round(1000 * lat[min(len(lat) - 1, int(0.99 * len(lat)))], 1),
            "failed_or_mismatched": wrong}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="en-de")
    ap.add_argument("--clients", type=int, default=16)
    ap.add_argument("--requests", type=int, default=50, help="per client")
    args = ap.parse_args()
    lines = TEST.read_text(encoding="utf-8").splitlines()[:args.clients * args.requests]
    with tempfile.TemporaryDirectory() as tmp:
        src = Path(tmp) / "in.en"
        src.write_text("\n".join(lines) + "\n", encoding="utf-8")
        offline = subprocess.run([sys.executable, "-m", "seqattn", "translate", "-m",
                                  args.model, "-f", "jsonl", "-i", str(src)],
                                 capture_output=True, text=True, check=True).stdout
    want = [json.loads(x)["translation"] for x in offline.splitlines()]
    port = _port()
    server = subprocess.Popen([sys.executable, "-m", "seqattn", "-q", "serve", "-m", args.model,
                               "--port", str(port)], stderr=subprocess.DEVNULL, text=True,
                              env=os.environ.copy())
    try:
        for _ in range(300):
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=2)
                break
            except OSError:
                time.sleep(0.3)
        _ask(port, lines[0])                      # warm up
        load = _run(port, lines, want, args.clients)
        alone = _run(port, lines, want, 1)
    finally:
        server.terminate()
        server.wait(60)
    print(json.dumps({"model": args.model, "cpus": os.cpu_count(), "under_load": load,
                      "one_by_one": alone,
                      "speedup": round(load["sentences_per_s"] / alone["sentences_per_s"], 2),
                      "server_exit": server.returncode}))


if __name__ == "__main__":
    main()
