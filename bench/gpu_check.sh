#!/usr/bin/env bash
# The GPU check (issue 17, point 7): which GPU and software this is, the CUDA tests
# (tests/test_cuda.py, marker `cuda`), and a training throughput figure: 200 updates of the
# shipped en-de model's configuration (Transformer 3+3 layers, d_model 256, joint 8k
# sentencepiece vocabulary, 4096-token batches) on sample_data/ (3,000 Multi30k pairs), in fp32,
# bf16 and fp16, one JSON line each. Needs no network; about 3 minutes on one GPU.
#
#   bash bench/gpu_check.sh                      # from the repository root; files in $OUT
#   PYTHON=.venv/bin/python GPU_CHECK_DEVICE=cpu GPU_CHECK_UPDATES=4 bash bench/gpu_check.sh
#                                                # a dry run of the script itself on a CPU
#
# Writes to $OUT (default ./gpu-out): env.txt (GPU, driver, torch, CUDA), pytest.txt and
# junit.xml (the CUDA tests), bench.jsonl (one line per precision) and bench.log, and steps.tsv
# (each step: name, exit code, seconds; 124 = timed out, "skipped" = budget spent). Every step
# has a timeout and the whole script a budget (GPU_CHECK_BUDGET seconds, default 420); a step
# that fails is recorded and the next one runs. Exit code: 0 if every step passed, else 1.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
ROOT=$PWD
OUT=${OUT:-$ROOT/gpu-out}
PY=${PYTHON:-python3}
DEVICE=${GPU_CHECK_DEVICE:-cuda}
UPDATES=${GPU_CHECK_UPDATES:-200}
DEADLINE=$((SECONDS + ${GPU_CHECK_BUDGET:-420}))
WORK=$(mktemp -d "${TMPDIR:-/tmp}/gpu-check.XXXXXX")
mkdir -p "$OUT"
trap 'rm -rf "$WORK"' EXIT
export ROOT PY WORK PYTHONPATH=$ROOT${PYTHONPATH:+:$PYTHONPATH} PYTHONUNBUFFERED=1
export CUBLAS_WORKSPACE_CONFIG=${CUBLAS_WORKSPACE_CONFIG:-:4096:8}  # deterministic cuBLAS (tests)
printf 'step\texit\tseconds\n' > "$OUT/steps.tsv"
failed=0

# step NAME LIMIT LOG COMMAND...: run COMMAND for at most LIMIT seconds (less if the budget is
# nearly spent), its output to the terminal and appended to LOG; record its exit code.
step() {
    local name=$1 limit=$2 log=$3 started=$SECONDS rc=0
    shift 3
    local left=$((DEADLINE - SECONDS))
    ((left < limit)) && limit=$left
    if ((limit < 10)); then
        echo "== $name: skipped, the time budget is spent" | tee -a "$log"
        printf '%s\tskipped\t0\n' "$name" >> "$OUT/steps.tsv"
        failed=1
        return 0
    fi
    echo "== $name (at most ${limit}s)" | tee -a "$log"
    timeout --kill-after=10 "$limit" "$@" 2>&1 | tee -a "$log" || rc=$?
    printf '%s\t%s\t%s\n' "$name" "$rc" "$((SECONDS - started))" >> "$OUT/steps.tsv"
    if ((rc != 0)); then
        echo "== $name: FAILED (exit $rc)" | tee -a "$log"
        failed=1
    fi
    return 0
}

cat > "$WORK/versions.py" <<'PY'
import platform

import torch

print(f"python {platform.python_version()}, torch {torch.__version__}, "
      f"CUDA {torch.version.cuda}, cuDNN {torch.backends.cudnn.version()}")
print(f"cuda available: {torch.cuda.is_available()}, devices: {torch.cuda.device_count()}")
if torch.cuda.is_available():
    p = torch.cuda.get_device_properties(0)
    print(f"device 0: {p.name}, capability {p.major}.{p.minor}, "
          f"{p.total_memory / 2**30:.0f} GiB, {p.multi_processor_count} SMs, "
          f"bf16 supported: {torch.cuda.is_bf16_supported()}")
PY

cat > "$WORK/throughput.py" <<'PY'
"""One throughput run: throughput.py PRECISION RUN_DIR UPDATES DEVICE -> one JSON line."""
import json
import sys
import time
from pathlib import Path

import torch

from seqattn.config import load_config
from seqattn.train import train

precision, out, updates, device = sys.argv[1], Path(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
data = Path("sample_data").resolve()
cfg = load_config("models/en-de/config.yaml", [
    f"data.train_src={data / 'train.en'}", f"data.train_tgt={data / 'train.de'}",
    f"data.valid_src={data / 'test.en'}", f"data.valid_tgt={data / 'test.de'}",
    f"data.spm_model={Path('models/en-de/spm.model').resolve()}",
    "training.guided_alignment=null", f"training.precision={precision}",
    f"training.max_steps={updates}", f"training.log_every={max(updates // 4, 1)}",
    f"training.valid_every={updates}", "training.keep_checkpoints=0", "training.patience=null"])
cuda = device.startswith("cuda")
started = time.perf_counter()
summary = train(cfg, out, device=device)
wall = time.perf_counter() - started
records = [json.loads(line) for line in (out / "train.jsonl").read_text().splitlines()]
windows = [r for r in records if r["kind"] == "train"]
steady = windows[1:] or windows  # the first window holds CUDA's start-up (kernels, allocator)
state = torch.load(out / "train_state.pt", map_location="cpu", weights_only=True)
seconds = state["progress"]["seconds"]  # time inside the updates, unrounded
print(json.dumps({
    "bench": "train_throughput", "precision": precision,
    "device": torch.cuda.get_device_name() if cuda else "cpu", "torch": torch.__version__,
    "model": "models/en-de config: Transformer 3+3, d_model 256, 8k joint vocab",
    "data": "sample_data/train (3,000 pairs)", "batch_tokens": cfg.training.batch_tokens,
    "updates": summary["step"],
    "updates_applied": max(int(s["step"]) for s in state["optimizer"]["state"].values()),
    "update_seconds": round(seconds, 3),
    "updates_per_s": round(summary["step"] / seconds, 2),
    "target_tokens_per_s": round(summary["target_tokens"] / seconds),
    "steady_target_tokens_per_s": round(sum(r["target_tokens"] for r in steady)
                                        / sum(r["seconds"] for r in steady)),
    "first_loss": windows[0]["loss"], "last_loss": windows[-1]["loss"],
    "peak_gib": round(torch.cuda.max_memory_allocated() / 2**30, 2) if cuda else None,
    "wall_s": round(wall, 1)}))
PY

env_info() {
    date -u +%Y-%m-%dT%H:%M:%SZ
    git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo "(no git metadata)"
    if command -v nvidia-smi > /dev/null; then
        nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.max.sm,power.limit \
            --format=csv || true
        nvidia-smi || true
    else
        echo "nvidia-smi: not found"
    fi
    "$PY" "$WORK/versions.py"
}
export -f env_info

step env 30 "$OUT/env.txt" bash -c env_info
step cuda-tests 240 "$OUT/pytest.txt" "$PY" -m pytest -q -m cuda tests/test_cuda.py \
    -p no:cacheprovider -rfEs --durations=10 --junitxml="$OUT/junit.xml"
for precision in fp32 bf16 fp16; do
    step "throughput-$precision" 60 "$OUT/bench.log" bash -c \
        'set -o pipefail; "$1" "$2" "$3" "$4" "$5" "$6" | tee -a "$7"' _ \
        "$PY" "$WORK/throughput.py" "$precision" "$WORK/run-$precision" "$UPDATES" "$DEVICE" \
        "$OUT/bench.jsonl"
done

echo "== steps (exit 0 = passed)"
column -t -s $'\t' "$OUT/steps.tsv" 2>/dev/null || cat "$OUT/steps.tsv"
echo "== throughput"
if [[ -s $OUT/bench.jsonl ]]; then cat "$OUT/bench.jsonl"; else echo "(none)"; fi
exit "$failed"
