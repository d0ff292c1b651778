"""Kill training with SIGKILL at random moments and resume it, again and again.

    python bench/kill_resume.py                  # 20 kills, seed 0, a tiny Transformer
    python bench/kill_resume.py --kills 5 --keep # keep the run directory to look at

A tiny model trains through the CLI (``python -m seqattn train``) as a subprocess, with a
checkpoint every ``--valid-every`` steps. At a seeded random moment (the first start before its
first checkpoint, every fourth during start-up, the others a random number of steps and a
fraction of a second into training) it is killed with SIGKILL (no clean-up can run), then
started again: with ``--resume`` when a training state exists, else from scratch (a run killed
before its first checkpoint must be restartable). After every kill the run directory is
checked:

* ``train_state.pt`` loads with ``torch.load(weights_only=True)`` and its step never goes back;
* whenever ``model.safetensors`` exists, the directory loads as a model (``load_model_dir``);
* every file that is not hidden is complete: config.yaml, spm.model, seqattn.json,
  last.safetensors and every line of train.jsonl parse (and the logged training steps only
  go up: a resumed run drops records past its checkpoint); hidden ``.*.tmp`` leftovers of
  interrupted atomic writes are counted (they are never taken for finished files);

and at the end an unkilled run must reach ``--max-steps``. Prints one JSON summary on stdout
(progress on stderr) and exits 1 if any check failed.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

# One torch thread unless told otherwise: on a busy 2-core machine two threads per op slow a
# tiny model down many times over (every op waits for the other thread's time slice).
THREADS = {"OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "1")}
EXPECTED = {"config.yaml", "spm.model", "seqattn.json", "model.safetensors", "last.safetensors",
            "train_state.pt", "train.jsonl"}


def corpus(work: Path) -> list[str]:
    """The tiny training set and model of tests/test_train.py, as --set overrides."""
    from tests.test_train import _corpus

    return _corpus(work)


def start(out: Path, sets: list[str], resume: bool) -> subprocess.Popen:
    cmd = [sys.executable, "-m", "seqattn", "-q", "train", "--out", str(out)]
    cmd += [x for item in sets for x in ("--set", item)]
    if resume:
        cmd.append("--resume")
    return subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=ROOT,
                            env={**os.environ, "NO_COLOR": "1", **THREADS})


def kill_plan(start: int, rng: random.Random, args: argparse.Namespace) -> tuple[str, float]:
    """How to kill start number ``start``: the first as soon as it has written a file but no
    checkpoint yet (so the next start must begin afresh); starts 5, 9, 13, ... at a random
    moment of start-up (imports, data, sentencepiece, model); the others
    after a random number of training steps (1 to 2 × valid_every) plus a random fraction of a
    second, which lands inside a step, a validation or a checkpoint write."""
    if start == 1:  # as soon as the run has written its first file, before any checkpoint
        return "before_checkpoint", rng.uniform(0, 0.02)
    if start % 4 == 1:
        return "startup", rng.uniform(0.2, args.startup_delay)
    return "training", rng.randint(1, 2 * args.valid_every) + rng.uniform(0, args.extra_delay)


def wait_and_kill(proc: subprocess.Popen, out: Path, mode: str, plan: float,
                  resumed_at: int) -> float:
    """SIGKILL ``proc`` as planned (unless it ends first); returns seconds since the start.

    ``plan``: seconds after the start (start-up), or steps after ``resumed_at`` plus a
    fraction of a second (training)."""
    began, wall = time.perf_counter(), time.time()
    log = out / "train.jsonl"
    steps, delay = (int(plan), plan - int(plan)) if mode == "training" else (0, plan)

    def reached() -> bool:  # this start logged step resumed_at + steps (a resumed run first
        try:                # cuts the log back to its checkpoint, rewriting the file)
            fresh = log.stat().st_mtime >= wall
        except FileNotFoundError:
            return False
        return fresh and logged_step(out) >= resumed_at + steps

    if mode == "before_checkpoint":
        while proc.poll() is None and not (out.exists() and any(out.iterdir())):
            time.sleep(0.002)
    if mode == "training":
        while proc.poll() is None and not reached():
            time.sleep(0.005)
            if time.perf_counter() - began > 300:
                break
    try:
        proc.wait(timeout=delay)
    except subprocess.TimeoutExpired:
        proc.send_signal(signal.SIGKILL)
    return time.perf_counter() - began


def logged_step(out: Path) -> int:
    """The step of train.jsonl's last record (log_every=1: the step reached when killed)."""
    log = out / "train.jsonl"
    lines = log.read_text(encoding="utf-8").splitlines() if log.exists() else []
    for line in reversed(lines):
        try:
            return int(json.loads(line).get("step", 0))
        except (ValueError, AttributeError):
            continue
    return 0


def _log_steps_increase(path: Path) -> None:
    """Every line is JSON and the training records' steps strictly increase."""
    steps = [r["step"] for r in map(json.loads, path.read_text(encoding="utf-8").splitlines())
             if r["kind"] == "train"]
    if any(b <= a for a, b in zip(steps, steps[1:])):
        raise ValueError(f"training steps do not increase: {steps}")


def check(out: Path, previous: int, problems: list[str], label: str) -> dict:
    """Check the directory after a kill; returns what was found."""
    import torch

    from seqattn.checkpoint import load_model_dir, read_meta
    from seqattn.config import load_config
    from seqattn.vocab import Vocab

    found: dict = {"checkpoint_step": None, "model": False, "hidden_tmp": [], "files": []}
    if not out.exists():
        return found
    names = sorted(p.name for p in out.iterdir())
    found["files"] = [n for n in names if not n.startswith(".")]
    found["hidden_tmp"] = [n for n in names if n.startswith(".") and n.endswith(".tmp")]
    for name in found["files"]:
        if name not in EXPECTED:
            problems.append(f"{label}: unexpected file '{name}' (a temporary file shown as final?)")
    state = out / "train_state.pt"
    if state.exists():
        try:
            loaded = torch.load(state, weights_only=True)
            step = int(loaded["progress"]["step"])
            found["checkpoint_step"] = step
            if step < previous:
                problems.append(f"{label}: checkpoint step went back from {previous} to {step}")
        except Exception as e:  # noqa: BLE001 (report every way it can fail)
            problems.append(f"{label}: train_state.pt does not load: {type(e).__name__}: {e}")
    readers = {
        "config.yaml": lambda p: load_config(p),
        "spm.model": lambda p: Vocab(p),
        "seqattn.json": lambda p: read_meta(p.parent),
        "last.safetensors": lambda p: _safetensors(p),
        "train.jsonl": _log_steps_increase,
    }
    for name, read in readers.items():
        if (out / name).exists():
            try:
                read(out / name)
            except Exception as e:  # noqa: BLE001
                problems.append(f"{label}: {name} is not complete: {type(e).__name__}: {e}")
    if (out / "model.safetensors").exists():
        try:
            load_model_dir(out)
            found["model"] = True
        except Exception as e:  # noqa: BLE001
            problems.append(f"{label}: model.safetensors exists but the directory does not "
                            f"load: {type(e).__name__}: {e}")
    return found


def _safetensors(path: Path) -> None:
    from safetensors.torch import load_file

    load_file(str(path))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--kills", type=int, default=20)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--max-steps", type=int, default=400,
                        help="Enough that the run does not finish before the last kill.")
    parser.add_argument("--valid-every", type=int, default=5)
    parser.add_argument("--startup-delay", type=float, default=3.0,
                        help="Start-up kills land 0.2 s to this many seconds after the start.")
    parser.add_argument("--extra-delay", type=float, default=0.3,
                        help="Other kills land up to this many seconds after the planned step.")
    parser.add_argument("--workdir", type=Path, default=None)
    parser.add_argument("--keep", action="store_true", help="Keep the work directory.")
    args = parser.parse_args()

    rng = random.Random(args.seed)
    work = args.workdir or Path(tempfile.mkdtemp(prefix="seqattn-kill-"))
    work.mkdir(parents=True, exist_ok=True)
    out = work / "run"
    sets = corpus(work) + [f"training.max_steps={args.max_steps}",
                           f"training.valid_every={args.valid_every}", "training.log_every=1",
                           "model.dropout=0.1", "training.seed=5"]
    problems: list[str] = []
    kills: list[dict] = []
    previous, fresh_restarts, finished_early = 0, 0, 0
    began = time.perf_counter()
    k = 0
    while sum(r["exit"] == -signal.SIGKILL for r in kills) < args.kills:
        k += 1
        resume = (out / "train_state.pt").exists()
        if k > 1 and not resume:
            fresh_restarts += 1
        proc = start(out, sets, resume)
        mode, plan = kill_plan(k, rng, args)
        waited = wait_and_kill(proc, out, mode, plan, previous if resume else 0)
        _, err = proc.communicate()
        rc = proc.returncode
        if rc == 0:
            finished_early += 1  # it reached max_steps before the kill
        elif rc != -signal.SIGKILL:
            problems.append(f"start {k}: the {'resumed' if resume else 'fresh'} run failed "
                            f"(exit {rc}): {err.decode(errors='replace').strip()[-300:]}")
        found = check(out, previous, problems, f"start {k}")
        if found["checkpoint_step"] is not None:
            previous = found["checkpoint_step"]
        record = {"start": k, "mode": mode, "killed_after_s": round(waited, 2),
                  "resumed": resume, "exit": rc, "step_logged": logged_step(out),
                  "checkpoint_step": found["checkpoint_step"], "model_loads": found["model"],
                  "hidden_tmp": len(found["hidden_tmp"])}
        kills.append(record)
        print(json.dumps(record), file=sys.stderr, flush=True)
        if rc == 0:
            break  # finished: there is nothing left to interrupt
    final_resumed = (out / "train_state.pt").exists()
    final = start(out, sets, final_resumed)
    _, err = final.communicate()
    found = check(out, previous, problems, "final run")
    if final.returncode != 0:
        problems.append(f"final run: exit {final.returncode}: "
                        f"{err.decode(errors='replace').strip()[-300:]}")
    if found["checkpoint_step"] != args.max_steps:
        problems.append(f"final run: checkpoint at step {found['checkpoint_step']}, "
                        f"not {args.max_steps}")
    if not found["model"]:
        problems.append("final run: no loadable model")
    if found["hidden_tmp"]:
        problems.append(f"final run: temporary files left: {found['hidden_tmp']}")
    if len([r for r in kills if r["exit"] == -signal.SIGKILL]) < args.kills:
        problems.append(f"the run finished after fewer than {args.kills} kills; "
                        "raise --max-steps")
    killed = [r for r in kills if r["exit"] == -signal.SIGKILL]
    summary = {
        "kills": len(killed), "starts": len(kills) + 1, "finished_before_kill": finished_early,
        "kill_modes": dict(sorted(Counter(r["mode"] for r in killed).items())),
        "seed": args.seed, "max_steps": args.max_steps, "valid_every": args.valid_every,
        "steps_at_kill": [r["step_logged"] for r in killed],
        "checkpoint_steps": [r["checkpoint_step"] for r in killed],
        "killed_before_any_checkpoint": sum(r["checkpoint_step"] is None for r in killed),
        "killed_before_first_validation": sum(r["checkpoint_step"] in (None, 0) for r in killed),
        "fresh_restarts": fresh_restarts,
        "resumes": sum(r["resumed"] for r in kills) + final_resumed,
        "hidden_tmp_seen_after_kills": sum(r["hidden_tmp"] for r in killed),
        "hidden_tmp_after_final_run": found["hidden_tmp"],
        "final_step": found["checkpoint_step"], "final_model_loads": found["model"],
        "seconds": round(time.perf_counter() - began, 1),
        "omp_num_threads": THREADS["OMP_NUM_THREADS"],
        "problems": problems, "result": "ok" if not problems else "FAILED",
    }
    print(json.dumps(summary, indent=2))
    if not args.keep and args.workdir is None:
        import shutil

        shutil.rmtree(work, ignore_errors=True)
    elif args.keep:
        print(f"work directory kept: {work}", file=sys.stderr)
    return 0 if not problems else 1


if __name__ == "__main__":
    sys.exit(main())
