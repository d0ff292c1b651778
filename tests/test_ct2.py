"""CTranslate2 export and engine (issue 20): the converted model decodes exactly as ours, plain
text through it never imports torch, alignments come from a native forced pass, and what
CTranslate2 cannot hold or do is a one-line error."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("ctranslate2")

from seqattn.cli import run  # noqa: E402
from seqattn.engines.ct2 import CT2Translator  # noqa: E402
from seqattn.translate import load  # noqa: E402

DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "multi30k"
LINES = ["A man in a blue shirt is playing the guitar.", "", "TWO DOGS PLAY. A cat sleeps.",
         "A woman holds 3 apples.", "Children run across a field of flowers near the river."]


@pytest.fixture(scope="module")
def export(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("ct2") / "en-de"
    assert run(["-q", "export", "en-de", str(out), "--format", "ctranslate2"]) == 0
    return out


def test_export_layout(export):
    meta = json.loads((export / "seqattn.json").read_text())
    assert meta["engines"] == {"ctranslate2": {"dir": "ctranslate2", "dtype": "fp32"}}
    assert (export / "ctranslate2" / "model.bin").is_file()
    assert (export / "model.safetensors").is_file()      # native weights kept by default
    assert meta["stored_dtype"] == "float16"


def test_same_output_as_native_greedy_and_beam(export):
    """Greedy: identical (no length normalisation at all); beam 5 with the same normalisation
    (power): identical, scores (length-normalised log-probabilities) within 1e-4."""
    lines = LINES + (DATA / "test_2016_flickr.en").read_text().splitlines()[:40]
    ct2 = CT2Translator(export, threads=2)
    native = load(export, device="cpu")
    for beam in (1, 5):
        ours = native.translate(lines, beam=beam, length_norm="power", attention=False)
        theirs = ct2.translate(lines, beam=beam)
        assert [t.text for t in theirs] == [t.text for t in ours]
        for a, b in zip(theirs, ours):
            if a.hyps:
                assert a.hyps[0].score == pytest.approx(b.hyps[0].score, abs=1e-4)
                assert a.hyps[0].log_prob == pytest.approx(b.hyps[0].log_prob, abs=1e-3)
    assert theirs[1].text == "" and theirs[2].text.split(".")[0].isupper()  # line policies


def test_plain_text_does_not_import_torch(export):
    code = ("import sys\nfrom seqattn.cli import run\n"
            f"code = run(['translate', '-m', {str(export)!r}, 'A dog runs.', 'A cat sleeps.'])\n"
            "assert code == 0, code\nassert 'torch' not in sys.modules, 'torch was imported'\n")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    assert len(r.stdout.splitlines()) == 2


def test_jsonl_links_come_from_a_native_forced_pass(export, capsys):
    """Through CTranslate2 the output is CTranslate2's, its links those the native engine
    gives for the same output (here the outputs agree, so the records do)."""
    capsys.readouterr()
    args = ["translate", "-f", "jsonl", "--length-norm", "power", *LINES[:1], LINES[3]]
    assert run([*args[:1], "-m", str(export), *args[1:]]) == 0
    ct2 = [json.loads(x) for x in capsys.readouterr().out.splitlines()]
    assert run([*args[:1], "-m", str(export), "--engine", "native", *args[1:]]) == 0
    native = [json.loads(x) for x in capsys.readouterr().out.splitlines()]
    for a, b in zip(ct2, native, strict=True):
        assert a["translation"] == b["translation"] and a["links"] == b["links"]
        assert a["score"] == pytest.approx(b["score"], abs=1e-4)
    assert "3" in ct2[1]["target_words"]           # the number copied, as natively


def test_translation_only_export(tmp_path, capsys):
    out = tmp_path / "small"
    assert run(["-q", "export", "en-de", str(out), "--format", "ctranslate2", "--dtype", "int8",
                "--no-native"]) == 0
    assert not (out / "model.safetensors").exists()
    capsys.readouterr()
    assert run(["translate", "-m", str(out), "A dog runs.", "2 cats."]) == 0
    captured = capsys.readouterr()
    assert len(captured.out.splitlines()) == 2
    assert "numbers are not copied" in captured.err
    assert run(["translate", "-m", str(out), "--align", "A dog runs."]) == 2
    assert "no native weights" in capsys.readouterr().err
    assert run(["translate", "-m", str(out), "--engine", "native", "A dog."]) == 2


@pytest.mark.parametrize("args,says", [
    (["export", "en-de-rnn", "OUT", "--format", "ctranslate2"], "CTranslate2 cannot hold a rnn"),
    (["export", "en-de", "OUT", "--format", "onnx"], "--format must be one of"),
    (["export", "en-de", "OUT", "--format", "ctranslate2", "--dtype", "int4"], "--dtype"),
    (["export", "en-de", "OUT", "--no-native"], "--no-native"),
    (["translate", "-m", "en-de", "--engine", "ctranslate2", "A dog."], "no CTranslate2 model"),
    (["translate", "-m", "en-de", "--engine", "fast", "A dog."], "--engine must be"),
    (["translate", "-m", "en-de", "--length-norm", "cubic", "A dog."], "--length-norm"),
])
def test_refused(args, says, tmp_path, capsys):
    args = [str(tmp_path / "out") if a == "OUT" else a for a in args]
    capsys.readouterr()
    assert run(args) == 2
    err = capsys.readouterr().err
    assert says in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "out").exists()


def test_ctranslate2_engine_refuses_gnmt(export, capsys):
    capsys.readouterr()
    assert run(["translate", "-m", str(export), "--length-norm", "gnmt", "A dog."]) == 2
    assert "length ** α" in capsys.readouterr().err


@pytest.mark.parametrize("norm,tie", [("post", False), ("pre", True)])
def test_converted_random_models_decode_alike(tmp_path, monkeypatch, norm, tie):
    """Random weights (no trained regularity to hide a wrong matrix), both LayerNorm
    placements, tied and untied embeddings: the same greedy pieces as ours."""
    import conftest

    monkeypatch.setitem(conftest.TINY_MODELS, "transformer", [
        *conftest.TINY_MODELS["transformer"], f"model.norm={norm}",
        f"model.tie_embeddings={str(tie).lower()}"])
    model = conftest.make_model_dir(tmp_path / "m", "transformer", seed=3)
    out = tmp_path / "ct2"
    assert run(["-q", "export", str(model), str(out), "--format", "ctranslate2"]) == 0
    lines = (conftest.SAMPLE / "train.en").read_text().splitlines()[:30]
    # one sentence a batch: CTranslate2's output limit is per batch, ours per sentence
    ours = load(out, device="cpu").translate(lines, beam=1, attention=False, batch_size=1)
    theirs = CT2Translator(out, threads=1).translate(lines, beam=1, batch_size=1)
    # Random models rarely say eos: most outputs run to the limit, 20-odd pieces, each one a
    # chance for a wrong matrix to show (a swapped k/v fusion changes every line). Their
    # near-flat distributions also hold near ties, which float32 in another library may break
    # the other way, so a line may part late; the scores are compared on the shipped model.
    same = sum(a.pieces == b.pieces for a, b in zip(_best(theirs), _best(ours)))
    assert same >= 0.9 * len(_best(ours))


def _best(translations):
    return [t.hyps[0] for t in translations if t.hyps]


def test_serve_translates_with_the_export(export, capsys):
    """A served CTranslate2 export answers what `seqattn translate` gives through it."""
    from fastapi.testclient import TestClient

    from seqattn.serve.api import create_app
    from seqattn.serve.service import Service

    service = Service.load([str(export)], device="cpu")
    assert list(service.decoders) == [export.name]
    capsys.readouterr()
    assert run(["translate", "-m", str(export), "-f", "jsonl", *LINES]) == 0
    want = [json.loads(x) for x in capsys.readouterr().out.splitlines()]
    with TestClient(create_app(service), base_url="http://127.0.0.1:8000") as c:
        models = c.get("/v1/models").json()["models"]
        assert models[0]["engine"] == "ctranslate2"
        got = c.post("/v1/translate", json={"texts": LINES, "align": True}).json()
        refused = c.post("/v1/translate", json={"text": "a", "length_norm": "gnmt"})
    for g, w in zip(got["translations"], want, strict=True):
        assert g["translation"] == w["translation"] and g["links"] == w["links"]
    assert refused.status_code == 422 and "length ** α" in refused.json()["error"]


@pytest.mark.parametrize("engine", ["ctranslate2", "native"])
def test_a_line_typed_at_a_terminal_is_answered_at_once(export, engine):
    """stdin a terminal: each line is translated when it is typed, not when 256 lines (or the
    end of input) have come."""
    import os
    import pty
    import select

    master, slave = pty.openpty()
    proc = subprocess.Popen([sys.executable, "-m", "seqattn", "-q", "translate", "-m",
                             str(export), "--engine", engine], stdin=slave,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    os.close(slave)
    try:
        os.write(master, b"A dog runs.\n")
        ready, _, _ = select.select([proc.stdout], [], [], 30)
        assert ready, "no answer while the terminal stays open"
        assert proc.stdout.readline().decode().strip() == "Ein Hund rennt."
    finally:
        os.write(master, b"\x04")   # end of input
        proc.wait(30)
        os.close(master)
    assert proc.returncode == 0, proc.stderr.read()


def test_n_best_and_tsv_through_ctranslate2(export, capsys):
    """--n-best through CTranslate2: the same hypotheses, in the same order, as the native
    beam searching as it does (power normalisation)."""
    lines = LINES[:1] + LINES[3:]
    capsys.readouterr()
    assert run(["translate", "-m", str(export), "-f", "tsv", "--n-best", "3", *lines]) == 0
    ct2 = [row.split("\t") for row in capsys.readouterr().out.splitlines()]
    assert run(["translate", "-m", str(export), "--engine", "native", "--length-norm", "power",
                "-f", "tsv", "--n-best", "3", *lines]) == 0
    native = [row.split("\t") for row in capsys.readouterr().out.splitlines()]
    assert len(ct2) == len(lines) and all(len(row) == 1 + 2 * 3 for row in ct2)
    for a, b in zip(ct2, native):
        assert a[0::2] == b[0::2]                                  # source and hypotheses
        assert [float(x) for x in a[2::2]] == pytest.approx([float(x) for x in b[2::2]],
                                                            abs=1e-3)


def test_every_jsonl_record_carries_what_reproduces_it(export, capsys, tmp_path):
    """A ``repro`` field in every record (never a header line: one line per input line), with
    the engine, its version, the model and a hash of the weights that decoded, the device,
    the precision and the search actually run."""
    import hashlib

    capsys.readouterr()
    assert run(["translate", "-m", str(export), "-f", "jsonl", "--beam", "3", "A dog.", "",
                "A cat."]) == 0
    records = [json.loads(x) for x in capsys.readouterr().out.splitlines()]
    assert len(records) == 3 and all(r["repro"] == records[0]["repro"] for r in records)
    repro = records[0]["repro"]
    weights = (export / "ctranslate2" / "model.bin").read_bytes()
    assert repro["model_sha256"] == hashlib.sha256(weights).hexdigest()[:16]
    assert (repro["engine"], repro["model"], repro["device"]) == ("ctranslate2", "en-de", "cpu")
    assert repro["decoding"]["beam_size"] == 3 and repro["decoding"]["length_norm"] == "power"
    assert run(["translate", "-m", str(export), "--engine", "native", "-f", "jsonl",
                "A dog."]) == 0
    native = json.loads(capsys.readouterr().out)["repro"]
    assert native["engine"] == "native" and native["torch"] and native["precision"] == "fp32"
    assert native["model_sha256"] == hashlib.sha256(
        (export / "model.safetensors").read_bytes()).hexdigest()[:16]
    assert native["decoding"]["length_norm"] == "gnmt" and native["decoding"]["beam_size"] == 5
    (tmp_path / "s").write_text("a dog\n")
    (tmp_path / "t").write_text("ein Hund\n")
    assert run(["align", "-m", str(export), "-f", "jsonl", str(tmp_path / "s"),
                str(tmp_path / "t")]) == 0
    aligned = json.loads(capsys.readouterr().out)
    assert aligned["repro"]["model_sha256"] == native["model_sha256"]
    assert "decoding" not in aligned["repro"]
