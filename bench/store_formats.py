"""The training-pair store: numpy memory maps (what seqattn uses) against Arrow IPC, measured.

    python bench/store_formats.py RUN/corpus            # a store seqattn train wrote

Needs ``pyarrow`` beside numpy (``pip install pyarrow``; not a seqattn dependency). Writes the
store's pairs once more as an Arrow IPC file (two ``list<uint16>`` columns, the layout
``datasets`` keeps on disk) next to a temporary copy, then, each in a fresh process: opens it
memory-mapped, reads every pair's lengths (what batching needs) and fetches 100,000 random
pairs as lists of ids (what a batch needs), and prints one JSON line per format: size on disk,
seconds to open and get the lengths, microseconds per fetched pair, and the process's anonymous
memory (``RssAnon``) after all that.
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

PROBE = r'''
import json, re, sys, time
from pathlib import Path
import numpy as np
kind, where = sys.argv[1], Path(sys.argv[2])
def anon():
    s = Path("/proc/self/status").read_text()
    return int(re.search(r"RssAnon:\s+(\d+)", s).group(1)) / 1024
before = anon()
t0 = time.perf_counter()
if kind == "numpy":
    meta = json.loads((where / "meta.json").read_text())
    m = lambda n, t: np.memmap(where / n, dtype=t, mode="r")
    ids, lens, idx = m("src.ids", meta["dtype"]), m("src.len", np.int32), m("src.idx", np.int64)
    tids, tlens, tidx = m("tgt.ids", meta["dtype"]), m("tgt.len", np.int32), m("tgt.idx", np.int64)
    n = len(lens)
    sizes = np.maximum(lens, tlens)
    get = lambda i: (ids[idx[i]:idx[i + 1]].tolist(), tids[tidx[i]:tidx[i + 1]].tolist())
else:
    import pyarrow as pa, pyarrow.compute as pc
    table = pa.ipc.open_file(pa.memory_map(str(where), "r")).read_all()
    src, tgt = table.column("src"), table.column("tgt")
    n = table.num_rows
    sizes = np.maximum(pc.list_value_length(src).to_numpy(), pc.list_value_length(tgt).to_numpy())
    def get(i):
        return src[i].values.to_numpy().tolist(), tgt[i].values.to_numpy().tolist()
opened = time.perf_counter() - t0
rng = np.random.default_rng(0)
picks = rng.integers(0, n, 100_000).tolist()
t1 = time.perf_counter()
total = sum(len(get(i)[0]) for i in picks)
per_pair = (time.perf_counter() - t1) / len(picks) * 1e6
print(json.dumps({"format": kind, "pairs": n, "open_and_lengths_s": round(opened, 3),
                  "us_per_pair": round(per_pair, 1), "anon_mib": round(anon() - before, 1)}))
'''


def size(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file()) if path.is_dir() \
        else path.stat().st_size


def main() -> None:
    store = Path(sys.argv[1])
    try:
        import numpy as np
        import pyarrow as pa
    except ImportError:
        sys.exit("needs numpy and pyarrow: pip install pyarrow")
    meta = json.loads((store / "meta.json").read_text())
    with tempfile.TemporaryDirectory() as tmp:
        arrow = Path(tmp) / "pairs.arrow"
        t0 = time.perf_counter()
        cols = {}
        for side in ("src", "tgt"):
            ids = np.memmap(store / f"{side}.ids", dtype=meta["dtype"], mode="r")
            idx = np.fromfile(store / f"{side}.idx", dtype=np.int64)
            cols[side] = pa.LargeListArray.from_arrays(pa.array(idx), pa.array(ids))
        table = pa.table(cols)
        with pa.OSFile(str(arrow), "wb") as sink, pa.ipc.new_file(sink, table.schema) as w:
            w.write_table(table, max_chunksize=1 << 20)
        written = time.perf_counter() - t0
        for kind, where in (("numpy", store), ("arrow", arrow)):
            out = subprocess.run([sys.executable, "-c", PROBE, kind, str(where)],
                                 capture_output=True, text=True, check=True).stdout
            record = json.loads(out)
            record["bytes_on_disk"] = size(where) - (0 if kind == "arrow" else
                                                     (store / "meta.json").stat().st_size)
            if kind == "arrow":
                record["convert_s"] = round(written, 1)
            print(json.dumps(record))


if __name__ == "__main__":
    main()
