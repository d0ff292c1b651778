"""seqattn serve as a real process on 127.0.0.1: concurrent clients get exactly the offline
translations, SIGTERM finishes what is in flight and exits 0, Ctrl-C exits 130, a taken port is
a one-line error. (The throughput and latency figures: bench/serve_load.py.)"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

pytest.importorskip("uvicorn")

DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "multi30k"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def post(port: int, path: str, body: dict, timeout: float = 120) -> tuple[int, dict]:
    req = urllib.request.Request(f"http://127.0.0.1:{port}{path}", json.dumps(body).encode(),
                                 {"content-type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read())


def start(*args: str) -> tuple[subprocess.Popen, int]:
    """A server on a free port, its stderr in a file (read with :func:`stop`)."""
    port = free_port()
    log = tempfile.TemporaryFile("w+", encoding="utf-8")
    proc = subprocess.Popen([sys.executable, "-m", "seqattn", "serve", "--port", str(port),
                             "--device", "cpu", *args], stdout=subprocess.DEVNULL,
                            stderr=log, text=True, env={**os.environ, "OMP_NUM_THREADS": "2"})
    proc.log = log  # type: ignore[attr-defined]
    deadline = time.time() + 90
    while time.time() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"server exited {proc.returncode}: {stop(proc)}")
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=2):
                return proc, port
        except OSError:
            time.sleep(0.3)
    proc.kill()
    raise AssertionError("server did not answer /health within 90 s")


def stop(proc: subprocess.Popen, timeout: float = 60) -> str:
    """Wait for ``proc`` to end; its stderr."""
    proc.wait(timeout)
    proc.log.seek(0)  # type: ignore[attr-defined]
    return proc.log.read()  # type: ignore[attr-defined]


@pytest.fixture(scope="module")
def server():
    proc, port = start("-m", "en-de")
    yield proc, port
    if proc.poll() is None:
        proc.kill()


@pytest.mark.slow
def test_concurrent_clients_get_the_offline_translations(server, tmp_path):
    """The issue's load: 16 clients × 50 single-sentence requests (test2016's first 800
    lines): no error, nothing lost, every answer the offline one (about a minute)."""
    _, port = server
    lines = (DATA / "test_2016_flickr.en").read_text(encoding="utf-8").splitlines()[:800]
    src = tmp_path / "in.en"
    src.write_text("\n".join(lines) + "\n", encoding="utf-8")
    offline = subprocess.run([sys.executable, "-m", "seqattn", "translate", "-m", "en-de",
                              "-f", "jsonl", "-i", str(src), "--device", "cpu"],
                             capture_output=True, text=True, check=True).stdout.splitlines()
    want = [json.loads(x) for x in offline]

    def ask(k: int) -> tuple[int, int, dict]:
        status, body = post(port, "/v1/translate", {"text": lines[k], "align": True})
        return k, status, body

    with ThreadPoolExecutor(16) as pool:   # 16 clients, 50 requests each, interleaved
        answers = list(pool.map(ask, range(len(lines))))
    assert all(status == 200 for _, status, _ in answers)
    for k, _, body in answers:
        got = body["translations"][0]
        assert got["source"] == lines[k]          # nothing lost or swapped between requests
        assert got["translation"] == want[k]["translation"]
        assert got["links"] == want[k]["links"]
        assert got["score"] == pytest.approx(want[k]["score"], abs=1e-4)
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/health") as r:
        health = json.loads(r.read())
    assert health["lines"] >= len(lines) and health["batches"] < len(lines)  # batched


def test_sigterm_finishes_in_flight_requests_and_exits_0():
    proc, port = start("-m", "en-de", "--batch-wait-ms", "300")
    result: dict = {}
    texts = ["A man is riding a bicycle down a busy street in the city."] * 32

    def ask() -> None:
        result["answer"] = post(port, "/v1/translate", {"texts": texts, "beam": 5})

    t = threading.Thread(target=ask)
    t.start()
    time.sleep(0.15)           # the request is waiting for its batch, or decoding
    proc.send_signal(signal.SIGTERM)
    t.join(120)
    err = stop(proc)
    assert proc.returncode == 0, err
    status, body = result["answer"]
    assert status == 200 and len(body["translations"]) == 32
    assert "stopped (SIGTERM)" in err and "Traceback" not in err


def test_ctrl_c_exits_130():
    proc, _ = start("-m", "en-de")
    proc.send_signal(signal.SIGINT)
    err = stop(proc)
    assert proc.returncode == 130, err
    assert "Traceback" not in err


def test_taken_port_is_one_line_error(server):
    _, port = server
    r = subprocess.run([sys.executable, "-m", "seqattn", "serve", "--port", str(port)],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 1
    assert f"port {port}" in r.stderr and "in use" in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1
