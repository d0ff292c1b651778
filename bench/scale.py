"""Training on a large corpus (issue 18): peak memory and the time to the first update.

    python bench/scale.py make --out runs/scale                 # the 1,015,000-pair corpus
    python bench/scale.py make --out runs/scale5 --repeat 175   # about 5 M pairs
    python bench/scale.py run --corpus runs/scale --out runs/scale-run [--nproc 2]
    python bench/scale.py run --corpus runs/scale --out runs/scale-run --resume   # cache found

``make`` writes ``train.en``/``train.de``: Multi30k's training pairs repeated ``--repeat`` times
(35 by default), each pair joined with probability 0.3 (source to source, target to target, one
space) with a random other pair (``random.Random(1)``: one draw for the coin, one for the
partner), as the issue describes it.

``run`` trains ``--preset transformer-small`` on it (Multi30k val for validation) for one
update (``--steps``) in a fresh ``--out`` (with ``--resume``: one more update of the run there)
and prints one JSON record: peak RSS of the run as
``/usr/bin/time -v`` reports it (the largest single process), the largest sum of ``RssAnon``
over the run's processes (sampled every 0.2 s; anonymous memory, so the corpus's file pages in
the page cache do not count), and the seconds from start to the first logged update.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import re
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data" / "multi30k"


def make(out: Path, repeat: int) -> None:
    src = (DATA / "train.en").read_text(encoding="utf-8").splitlines()
    tgt = (DATA / "train.de").read_text(encoding="utf-8").splitlines()
    rng = random.Random(1)
    out.mkdir(parents=True, exist_ok=True)
    n = len(src) * repeat
    with open(out / "train.en", "w", encoding="utf-8") as fs, \
            open(out / "train.de", "w", encoding="utf-8") as ft:
        for k in range(n):
            i = k % len(src)
            s, t = src[i], tgt[i]
            if rng.random() < 0.3:
                j = rng.randrange(len(src))
                s, t = f"{s} {src[j]}", f"{t} {tgt[j]}"
            fs.write(s + "\n")
            ft.write(t + "\n")
    sizes = {p.name: p.stat().st_size for p in (out / "train.en", out / "train.de")}
    print(json.dumps({"pairs": n, "bytes": sizes}))


def _tree(pid: int) -> list[int]:
    """``pid`` and all its descendants (from /proc)."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        parent = int(stat.rsplit(")", 1)[1].split()[1])
        children.setdefault(parent, []).append(int(entry.name))
    found, todo = [], [pid]
    while todo:
        p = todo.pop()
        found.append(p)
        todo += children.get(p, [])
    return found


def _rss_anon(pids: list[int]) -> int:
    total = 0
    for p in pids:
        try:
            status = Path(f"/proc/{p}/status").read_text()
        except OSError:
            continue
        m = re.search(r"^RssAnon:\s+(\d+) kB", status, re.M)
        total += int(m.group(1)) * 1024 if m else 0
    return total


def _updates(log: Path) -> int:
    """How many training records the run's log holds."""
    return log.read_text().count('"kind": "train"') if log.exists() else 0


def run(corpus: Path, out: Path, nproc: int, resume: bool = False, steps: int = 1,
        extra: list[str] | None = None) -> None:
    log = out / "train.jsonl"
    before = _updates(log) if resume else 0
    sets = [f"data.train_src={corpus / 'train.en'}", f"data.train_tgt={corpus / 'train.de'}",
            f"data.valid_src={DATA / 'val.en'}", f"data.valid_tgt={DATA / 'val.de'}",
            f"training.max_steps={before + steps}", "training.log_every=1",
            "training.valid_every=1000", *(extra or [])]
    train = ["-m", "seqattn", "-q", "train", "--preset", "transformer-small", "--out", str(out),
             *(["--resume"] if resume else []), *[x for s in sets for x in ("--set", s)]]
    launcher = [sys.executable, *train] if nproc == 1 else \
        [sys.executable, "-m", "torch.distributed.run", f"--nproc_per_node={nproc}", *train]
    threads = max(1, (os.cpu_count() or 1) // nproc)  # the cores shared out among the ranks
    env = {**os.environ, "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", str(threads))}
    started = time.time()
    proc = subprocess.Popen(["/usr/bin/time", "-v", *launcher], stderr=subprocess.PIPE,
                            stdout=subprocess.DEVNULL, text=True, env=env)
    peak_anon, first_update = 0, None
    while proc.poll() is None:
        peak_anon = max(peak_anon, _rss_anon(_tree(proc.pid)))
        if first_update is None and _updates(log) > before:
            first_update = time.time() - started
        time.sleep(0.2)
    err = proc.stderr.read() if proc.stderr else ""
    rss = re.search(r"Maximum resident set size \(kbytes\): (\d+)", err)
    print(json.dumps({
        "corpus": str(corpus), "processes": nproc, "resume": resume, "updates": steps,
        "set": extra or [],
        "exit": proc.returncode,
        "seconds": round(time.time() - started, 1),
        "first_update_s": None if first_update is None else round(first_update, 1),
        "peak_rss_gib": None if rss is None else round(int(rss.group(1)) / 2**20, 2),
        "peak_rss_anon_sum_gib": round(peak_anon / 2**30, 2),
    }))
    if proc.returncode:
        print(err[-2000:], file=sys.stderr)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = ap.add_subparsers(dest="what", required=True)
    m = sub.add_parser("make")
    m.add_argument("--out", type=Path, required=True)
    m.add_argument("--repeat", type=int, default=35)
    r = sub.add_parser("run")
    r.add_argument("--corpus", type=Path, required=True)
    r.add_argument("--out", type=Path, required=True)
    r.add_argument("--nproc", type=int, default=1)
    r.add_argument("--resume", action="store_true",
                   help="continue the run in --out for one more update (the encoded corpus and "
                        "vocabulary found there)")
    r.add_argument("--steps", type=int, default=1,
                   help="updates to train (the peaks are over all of them; one batch's shapes "
                        "and the allocator make a single update's peak vary by +-0.15 GiB)")
    r.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="a config override for the run (e.g. training.batch_tokens=1024)")
    args = ap.parse_args()
    if args.what == "make":
        make(args.out, args.repeat)
    else:
        run(args.corpus, args.out, args.nproc, args.resume, args.steps, args.set)


if __name__ == "__main__":
    main()
