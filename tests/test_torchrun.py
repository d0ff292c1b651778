"""Multi-machine training on torchrun (issue 18): two "nodes" on this machine (c10d
rendezvous, gloo), one rank killed, the run resumed exactly; the world size recorded."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from tests.test_train import _corpus, _weights

pytestmark = pytest.mark.slow


def _port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _nodes(out: Path, sets: list[str], *extra: str) -> list[subprocess.Popen]:
    """Two torchrun agents, one process each, meeting at a c10d rendezvous on 127.0.0.1."""
    port = _port()
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nnodes", "2", "--nproc-per-node",
           "1", "--rdzv-backend", "c10d", "--rdzv-endpoint", f"127.0.0.1:{port}",
           "--rdzv-id", f"seqattn-{port}", "-m", "seqattn", "-q", "train", "--out", str(out),
           *sets, *extra]
    return [subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env,
                             start_new_session=True) for _ in range(2)]


def _wait(procs: list[subprocess.Popen], timeout: float = 300) -> list[int]:
    codes = []
    for p in procs:
        try:
            p.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            os.killpg(p.pid, signal.SIGKILL)
            p.wait()
        codes.append(p.returncode)
    return codes


def _workers(agent: subprocess.Popen) -> list[int]:
    out = subprocess.run(["pgrep", "-P", str(agent.pid)], capture_output=True, text=True)
    return [int(x) for x in out.stdout.split()]


def _valid_steps(out: Path) -> list[int]:
    log = out / "train.jsonl"
    if not log.exists():
        return []
    steps = []
    for line in log.read_text().splitlines():
        try:
            record = json.loads(line)
        except json.JSONDecodeError:
            continue  # a line being written
        if record.get("kind") == "valid":
            steps.append(record["step"])
    return steps


def test_two_nodes_resume_exactly_after_one_rank_is_killed(tmp_path):
    base = _corpus(tmp_path) + ["model.dropout=0.2", "training.valid_every=2",
                                "training.max_steps=30", "training.seed=3"]
    sets = [x for item in base for x in ("--set", item)]
    straight = tmp_path / "straight"
    procs = _nodes(straight, sets)
    codes = _wait(procs)
    assert codes == [0, 0], [p.stderr.read().decode()[-2000:] for p in procs]
    assert json.loads((straight / "seqattn.json").read_text())["world_size"] == 2

    broken = tmp_path / "broken"
    procs = _nodes(broken, sets)
    deadline = time.time() + 300
    while not any(s >= 4 for s in _valid_steps(broken)) and time.time() < deadline:
        time.sleep(0.2)
    assert any(s >= 4 for s in _valid_steps(broken)), "no checkpoint at step 4"
    victims = _workers(procs[1]) or _workers(procs[0])
    assert victims
    os.kill(victims[0], signal.SIGKILL)                      # one rank dies
    time.sleep(5)
    for p in procs:                                           # the job is then stopped
        if p.poll() is None:
            os.killpg(p.pid, signal.SIGKILL)
    _wait(procs, timeout=60)
    state = torch.load(broken / "train_state.pt", weights_only=True)
    assert 4 <= state["progress"]["step"] < 30                # killed mid-run
    assert len(state["rng_ranks"]) == 2                       # each rank's dropout stream

    procs = _nodes(broken, sets, "--resume")
    codes = _wait(procs)
    assert codes == [0, 0], [p.stderr.read().decode()[-2000:] for p in procs]
    a, b = _weights(straight / "last.safetensors"), _weights(broken / "last.safetensors")
    assert a.keys() == b.keys()
    for name in a:
        assert torch.equal(a[name], b[name]), name
