"""`seqattn translate` and the library API: line safety, formats, errors."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
from types import SimpleNamespace

import pytest

import seqattn
from seqattn.align import word_attention
from seqattn.cli import run


def _cli(args: list[str], stdin: bytes | None = None) -> subprocess.CompletedProcess:
    """In a real process (for what only a process shows: pipes, exit hooks, terminals)."""
    return subprocess.run([sys.executable, "-m", "seqattn", *args], input=stdin,
                          capture_output=True, timeout=300,
                          env={**os.environ, "NO_COLOR": "1"})


@pytest.fixture()
def cli(capsys, monkeypatch):
    """The CLI in this process (no start-up cost), shaped like :func:`_cli`'s result."""
    def call(args: list[str], stdin: bytes | None = None) -> SimpleNamespace:
        monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(stdin or b"")))
        code = run(args)
        out, err = capsys.readouterr()
        return SimpleNamespace(returncode=code, stdout=out.encode(), stderr=err.encode())
    return call


def test_library_api(tiny_transformer):
    tr = seqattn.load(tiny_transformer)
    out = tr.translate(["A dog runs.", "", "Two men talk on a bench."], beam=2, n_best=2)
    assert [t.id for t in out] == [0, 1, 2]
    assert out[1].text == "" and out[1].hyps == [] and out[1].score is None
    for t in (out[0], out[2]):
        assert len(t.hyps) == 2 and t.hyps[0].score >= t.hyps[1].score
        words, eos = word_attention(tr, t, t.hyps[0])
        assert words.shape == (len(t.hyps[0].words), len(t.src.words))
        row_mass = words.sum(dim=1) + eos
        assert row_mass.tolist() == pytest.approx([1.0] * len(row_mass), abs=1e-5)


def test_one_line_out_per_line_in(tiny_model, cli):
    lines = ["A man.", "", "   ", "Zwei Hunde\tim Schnee ✓ 🙂", "x" * 50, "עברית", "end."]
    data = ("\r\n".join(lines) + "\n").encode()
    proc = cli(["translate", "-m", str(tiny_model), "--beam", "2"], stdin=data)
    assert proc.returncode == 0, proc.stderr.decode()
    out = proc.stdout.decode().split("\n")
    assert out[-1] == "" and len(out) - 1 == len(lines)
    assert out[1] == "" and out[2] == ""
    assert all(out[i] for i in (0, 3, 4, 5, 6))


def test_jsonl_and_tsv(tiny_transformer, cli):
    src = b"A man sleeps.\n\nTwo dogs run in the park.\n"
    proc = cli(["translate", "-m", str(tiny_transformer), "-f", "jsonl", "--attention"],
                stdin=src)
    assert proc.returncode == 0, proc.stderr.decode()
    rows = [json.loads(line) for line in proc.stdout.decode().splitlines()]
    assert [r["id"] for r in rows] == [0, 1, 2]
    assert rows[1]["translation"] == "" and rows[1]["links"] == []
    r = rows[2]
    assert r["source_words"] == ["Two", "dogs", "run", "in", "the", "park."]
    assert len(r["links"]) == len(r["target_words"])
    assert all(0 <= s < len(r["source_words"]) for s, _ in r["links"])
    assert len(r["attention"]) == len(r["target_words"])
    assert r["alignment"] == " ".join(f"{s}-{t}" for s, t in r["links"])
    proc = cli(["translate", "-m", str(tiny_transformer), "-f", "tsv"], stdin=src)
    cols = [line.split("\t") for line in proc.stdout.decode().split("\n")[:-1]]
    assert [len(c) for c in cols] == [3, 3, 3] and cols[1] == ["", "", ""]
    float(cols[0][2])


def test_invalid_utf8_is_replaced_with_a_warning(tiny_transformer, cli):
    proc = cli(["translate", "-m", str(tiny_transformer)], stdin=b"ok\n\xff\xfe bad\nfine\n")
    assert proc.returncode == 0
    assert len(proc.stdout.decode().split("\n")) == 4
    assert "line 2 is not valid UTF-8" in proc.stderr.decode()


def test_long_line_is_cut_with_a_warning(tiny_transformer, cli):
    long_line = " ".join(["dog"] * 1100)
    proc = cli(["translate", "-m", str(tiny_transformer), "--beam", "1"],
                stdin=f"a dog\n{long_line}\n".encode())
    assert proc.returncode == 0
    assert len(proc.stdout.decode().split("\n")) == 3
    assert "line 2 has" in proc.stderr.decode()


def test_align_table_goes_to_stderr_when_piped(tiny_transformer):
    proc = _cli(["translate", "-m", str(tiny_transformer), "--align", "A dog runs."])
    assert proc.returncode == 0
    assert proc.stdout.decode().count("\n") == 1
    err = proc.stderr.decode()
    assert "attends to" in err and "entropy" in err and "dog" in err


def test_head_closes_pipe_quietly(tiny_transformer):
    lines = b"A dog.\n" * 300
    proc = subprocess.run(f"'{sys.executable}' -m seqattn translate -m '{tiny_transformer}' "
                          "--beam 1 | head -1", shell=True, input=lines, capture_output=True,
                          executable="/bin/bash", timeout=300)
    assert proc.returncode == 0
    assert proc.stdout.count(b"\n") == 1 and proc.stderr == b""


@pytest.mark.parametrize("args, message", [
    (["-m", "/nonexistent/model"], "is neither a directory nor a shipped model"),
    (["-f", "xml"], "Invalid value for '--format'"),
    (["--beam", "0"], "Invalid value for '--beam'"),
    (["--n-best", "3", "--beam", "2"], "--n-best (3) cannot exceed --beam (2)"),
    (["-i", "/nonexistent.txt"], "does not exist"),
    (["--layer", "7"], "--layer 7 is out of range"),
    (["--heads", "9"], "--heads must be mean, max or a head number"),
    (["--precision", "fp16"], "fp16 decoding needs a CUDA device (not cpu); use bf16"),
    (["--precision", "int8"], "precision must be one of: fp32, bf16, fp16; got 'int8'"),
])
def test_bad_usage(tiny_transformer, args, message, capsys):
    full = ["translate", *args] if "-m" in args else ["translate", "-m", str(tiny_transformer),
                                                      *args]
    code = run([*full, "x"] if "-i" not in args else full)
    captured = capsys.readouterr()
    assert code == 2 and captured.out == ""
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and message in lines[0]


def test_bf16_decodes_in_bfloat16_and_stays_close_to_fp32(tiny_model):
    """--precision bf16 really runs in bfloat16 (scores change) and stays close to fp32."""
    import torch

    lines = ["A man rides a bike.", "Two dogs play in the snow.", "A girl in a red coat."]
    ref = seqattn.load(tiny_model)
    half = seqattn.load(tiny_model, precision="bf16")
    a = ref.translate(lines, beam=3, max_len=6, min_len=6)   # fixed length: comparable scores
    b = half.translate(lines, beam=3, max_len=6, min_len=6)
    sa, sb = [x.score for x in a], [x.score for x in b]
    assert sa != sb                                          # bf16 was used
    # and it is a rounding, no more: where both chose the same output (bf16 may now and then
    # choose another, whose score is not comparable), the scores are close
    same = [(x.score, y.score) for x, y in zip(a, b) if x.text == y.text]
    assert same
    assert [y for _, y in same] == pytest.approx([x for x, _ in same], rel=0.03)
    w = b[0].hyps[0].weights
    assert w.dtype == torch.float32                          # handed out as float32
    torch.testing.assert_close(w.sum(-1), torch.ones(w.shape[:-1]), atol=1e-5, rtol=0)
    # forced alignment under bf16 too: float32 word attention, close to fp32's but not equal
    fa = list(seqattn.align.align(ref, [(lines[1], "Zwei Hunde spielen im Schnee.")]))[0]
    fb = list(seqattn.align.align(half, [(lines[1], "Zwei Hunde spielen im Schnee.")]))[0]
    assert fb.words.dtype == torch.float32 and fb.words.shape == fa.words.shape
    assert not torch.equal(fa.words, fb.words)
    torch.testing.assert_close(fb.words, fa.words, atol=0.03, rtol=0)


@pytest.mark.parametrize("avx2, avx512_bf16, amx, slow", [
    (True, False, False, True),     # an AVX2 x86 CPU: bfloat16 is emulated
    (True, True, False, False),     # AVX-512 BF16
    (True, False, True, False),     # AMX
    (False, False, False, False),   # not x86 (Arm): cannot be told, no warning
])
def test_bf16_on_a_cpu_without_bfloat16_instructions_warns(tiny_model, monkeypatch, caplog,
                                                          avx2, avx512_bf16, amx, slow):
    import torch

    from seqattn.device import BF16_SLOW, slow_bf16

    monkeypatch.setattr(torch.cpu, "_is_avx2_supported", lambda: avx2)
    monkeypatch.setattr(torch.cpu, "_is_avx512_bf16_supported", lambda: avx512_bf16)
    monkeypatch.setattr(torch.cpu, "_is_amx_tile_supported", lambda: amx)
    assert slow_bf16(torch.device("cpu")) is slow
    assert slow_bf16(torch.device("meta")) is False          # only the CPU is probed
    with caplog.at_level("WARNING"):
        seqattn.load(tiny_model, device="cpu", precision="bf16")
        seqattn.load(tiny_model, device="cpu")               # fp32: never
    warned = [r.getMessage() for r in caplog.records if r.getMessage() == BF16_SLOW]
    assert len(warned) == (1 if slow else 0)


def test_broken_model_directories(tiny_transformer, tmp_path, capsys):
    import shutil

    broken = tmp_path / "m"
    shutil.copytree(tiny_transformer, broken)
    weights = broken / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[: 1000])
    assert run(["translate", "-m", str(broken), "x"]) == 2
    err = capsys.readouterr().err
    assert "model.safetensors" in err and "corrupt or truncated" in err
    (broken / "spm.model").unlink()
    assert run(["translate", "-m", str(broken), "x"]) == 2
    assert "no sentencepiece model" in capsys.readouterr().err
    (broken / "seqattn.json").unlink()
    assert run(["translate", "-m", str(broken), "x"]) == 2
    assert "not a seqattn model directory" in capsys.readouterr().err
