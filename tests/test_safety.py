"""Never destroy a user's file, never crash on foreseeable input (issue #14).

Each test states the behaviour of one point of the issue and would fail without it: a changed
input file, a traceback, an "internal error" or a wrong exit code.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from seqattn.checkpoint import read_meta, write_meta
from seqattn.cli import run
from tests.conftest import SAMPLE, default_sigint

ROOT = Path(__file__).resolve().parents[1]


def _cli(args: list[str], capsys) -> tuple[int, str, str]:
    code = run([str(a) for a in args])
    out, err = capsys.readouterr()
    return code, out, err


def _sub(args: list[str], **kwargs) -> subprocess.CompletedProcess:
    env = {**os.environ, "NO_COLOR": "1", "OMP_NUM_THREADS": "1", **kwargs.pop("env", {})}
    streams = {"stdout": subprocess.PIPE, "stderr": subprocess.PIPE, **kwargs}
    return subprocess.run([sys.executable, "-m", "seqattn", *map(str, args)],
                          timeout=300, env=env, **streams)


def _digest(path: Path) -> str:
    if path.is_dir():
        return "".join(f"{p.name}:{_digest(p)}" for p in sorted(path.iterdir()))
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _one_error_line(err: str) -> str:
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1, err
    assert lines[0].startswith("error:") and "internal error" not in err, err
    assert "Traceback" not in err
    return lines[0]


@pytest.fixture()
def texts(tmp_path: Path) -> dict[str, Path]:
    """Eight line-aligned source / reference lines."""
    src, ref = tmp_path / "src.en", tmp_path / "ref.de"
    src.write_text("\n".join((SAMPLE / "valid.en").read_text().splitlines()[:8]) + "\n")
    ref.write_text("\n".join((SAMPLE / "valid.de").read_text().splitlines()[:8]) + "\n")
    return {"src": src, "ref": ref}


SMALL_GOLD = [("A dog runs .", "Ein Hund rennt .", "1-1 2-2 3-3 4p4"),
              ("Two men talk", "Zwei Männer reden", "1-3 2-2 3-1"),
              ("a b c d", "d c b a", "1-4 2-3 3-2 4-1")]


def _gold(folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for k, suffix in enumerate(("src", "tgt", "talp")):
        (folder / f"g.{suffix}").write_text("".join(g[k] + "\n" for g in SMALL_GOLD))
    return folder


@pytest.fixture()
def shipped(tiny_transformer, tmp_path, monkeypatch) -> Path:
    """A shipped models folder (``$SEQATTN_MODELS``) holding the tiny model as 'tiny'."""
    folder = tmp_path / "shipped"
    shutil.copytree(tiny_transformer, folder / "tiny")
    monkeypatch.setenv("SEQATTN_MODELS", str(folder))
    return folder / "tiny"


# =========================================================================== 1. outputs ≠ inputs


@pytest.mark.parametrize("victim", ["ref", "src", "ref-symlink", "src-dot-path"])
def test_evaluate_refuses_to_save_hypotheses_over_an_input(victim, tiny_transformer, texts,
                                                           tmp_path, capsys, monkeypatch):
    kind = victim.split("-")[0]
    target: Path | str = texts[kind]
    if victim.endswith("symlink"):
        target = tmp_path / "link.txt"
        target.symlink_to(texts[kind])
    elif victim.endswith("dot-path"):
        monkeypatch.chdir(tmp_path)
        target = f"./{texts[kind].name}"
    before = {k: _digest(p) for k, p in texts.items()}
    code, out, err = _cli(["evaluate", "-m", tiny_transformer, "--src", texts["src"],
                           "-r", texts["ref"], "--save-hyp", target], capsys)
    assert code == 2 and out == ""
    assert "--save-hyp" in _one_error_line(err) and "input" in err
    assert {k: _digest(p) for k, p in texts.items()} == before


def test_evaluate_refuses_a_hypothesis_file_as_save_hyp(tiny_transformer, texts, tmp_path,
                                                        capsys):
    hyp = tmp_path / "other.de"
    hyp.write_text(texts["ref"].read_text())
    code, _, err = _cli(["evaluate", "-m", tiny_transformer, "--src", texts["src"], "-r",
                         texts["ref"], hyp, "--save-hyp", hyp], capsys)
    assert code == 2 and "HYP" in _one_error_line(err)
    assert hyp.read_text() == texts["ref"].read_text()


def test_align_refuses_pictures_over_its_inputs(tiny_transformer, tmp_path, capsys):
    gold = _gold(tmp_path / "gold")
    src, tgt = gold / "g.src", gold / "g.tgt"
    before = _digest(gold)
    for extra in (["--html", src, src, tgt], ["--html", tgt, src, tgt],
                  ["--calibrate", gold, "--save-to", tmp_path / "new", "--html", gold / "g.talp"]):
        code, out, err = _cli(["align", "-m", tiny_transformer, *extra], capsys)
        assert code == 2 and out == "", err
        assert "--html" in _one_error_line(err)
    assert _digest(gold) == before


def test_align_refuses_html_and_png_on_one_file(tiny_transformer, tmp_path, capsys):
    gold = _gold(tmp_path / "gold")
    pic = tmp_path / "pic"
    code, _, err = _cli(["align", "-m", tiny_transformer, gold / "g.src", gold / "g.tgt",
                         "--html", pic, "--png", pic], capsys)
    assert code == 2 and "same file" in _one_error_line(err) and not pic.exists()


def test_translate_refuses_stdout_appended_onto_its_input(tiny_transformer, texts):
    before = texts["src"].read_bytes()
    with open(texts["src"], "ab") as out:
        proc = _sub(["translate", "-m", tiny_transformer, "-i", texts["src"]], stdout=out)
    assert proc.returncode == 2
    assert "stdout is redirected into the input" in _one_error_line(proc.stderr.decode())
    assert texts["src"].read_bytes() == before


def test_export_refuses_its_own_run_directory(tiny_transformer, tmp_path, capsys):
    model = tmp_path / "model"
    shutil.copytree(tiny_transformer, model)
    before = _digest(model)
    code, _, err = _cli(["export", model, model], capsys)
    assert code == 2 and "OUT" in _one_error_line(err)
    assert _digest(model) == before


# =========================================================================== 2. calibration


def test_calibrating_a_shipped_model_never_writes_it(shipped, tmp_path, capsys):
    gold = _gold(tmp_path / "gold")
    before = _digest(shipped)
    code, out, err = _cli(["align", "-m", "tiny", "--calibrate", gold], capsys)
    assert code == 2 and "shipped model" in _one_error_line(err) and "--save-to" in err
    # a path into the shipped folder is refused the same way
    code, _, err = _cli(["align", "-m", shipped, "--calibrate", gold], capsys)
    assert code == 2 and "shipped" in err
    assert _digest(shipped) == before

    copy = tmp_path / "my-tiny"
    code, out, err = _cli(["align", "-m", "tiny", "--calibrate", gold, "--save-to", copy], capsys)
    assert code == 0 and out == "", err
    assert _digest(shipped) == before                      # the shipped model is untouched
    stored = read_meta(copy)["alignment"]
    assert {"layer", "heads", "shift", "method", "threshold", "aer"} <= set(stored)
    assert f"stored the best setting in {copy}/seqattn.json" in " ".join(err.split())
    assert f"layer {stored['layer']}, heads {stored['heads']}" in err
    for name in ("config.yaml", "model.safetensors", "spm.model"):  # a complete model
        assert (copy / name).read_bytes() == (shipped / name).read_bytes()
    code, out, err = _cli(["align", "-m", copy, gold / "g.src", gold / "g.tgt"], capsys)
    assert code == 0 and len(out.splitlines()) == len(SMALL_GOLD), err


def test_calibration_refuses_a_save_to_directory_holding_something_else(tiny_transformer,
                                                                        tmp_path, capsys):
    gold = _gold(tmp_path / "gold")
    busy = tmp_path / "busy"
    busy.mkdir()
    (busy / "notes.txt").write_text("mine")
    code, _, err = _cli(["align", "-m", tiny_transformer, "--calibrate", gold, "--save-to", busy],
                        capsys)
    assert code == 2 and "not an empty directory" in _one_error_line(err)
    assert [p.name for p in busy.iterdir()] == ["notes.txt"]
    code, _, err = _cli(["align", "-m", tiny_transformer, "--save-to", busy, "a", "b"], capsys)
    assert code == 2 and "--calibrate" in _one_error_line(err)


STORED_SYM = {"sym": "mean", "method": "threshold", "threshold": 0.4, "aer": 0.05,
              "reverse": "rev"}


def test_calibration_names_the_symmetrization_it_drops(tiny_transformer, tmp_path, capsys):
    """A run directory is calibrated in place (the default); a stored symmetrization tuned for
    another view is dropped, and the command says so."""
    model = tmp_path / "run"
    shutil.copytree(tiny_transformer, model)
    meta = read_meta(model)
    old_view = {"layer": 0, "heads": "max", "shift": False}
    meta["alignment"] = {**old_view, "method": "argmax", "threshold": None, "sym": STORED_SYM}
    write_meta(model, {k: v for k, v in meta.items() if k != "format"})
    code, _, err = _cli(["align", "-m", model, "--calibrate", _gold(tmp_path / "gold")], capsys)
    assert code == 0, err
    stored = read_meta(model)["alignment"]
    changed = any(stored.get(k) != v for k, v in old_view.items()) or "blend" in stored
    assert ("sym" not in stored) == changed
    said = "dropped the stored symmetrization mean, threshold 0.4" in " ".join(err.split())
    assert said == changed, err


def test_calibrate_store_view_keeps_the_sym_when_the_view_did_not_change(tiny_transformer,
                                                                          tmp_path):
    import seqattn
    from seqattn import align as al
    from seqattn.align.aer import AlignmentScores
    from seqattn.align.calibrate import SweepRow, store_view

    model = tmp_path / "run"
    shutil.copytree(tiny_transformer, model)
    meta = read_meta(model)
    meta["alignment"] = {"layer": 1, "heads": "mean", "shift": True, "sym": STORED_SYM}
    write_meta(model, {k: v for k, v in meta.items() if k != "format"})
    tr = seqattn.load(model)
    scores = AlignmentScores(0.1, 0.9, 0.9, 0.9, 3, 10, 10, 10, 9, 9)
    same = SweepRow(al.View(1, "mean", True), scores, al.Extraction("threshold", 0.3))
    kept = store_view(tr, same)
    assert kept.dropped == () and read_meta(model)["alignment"]["sym"] == STORED_SYM
    other = SweepRow(al.View(0, "mean", True), scores, al.Extraction())
    dropped = store_view(tr, other)
    assert dropped.dropped == ("symmetrization mean, threshold 0.4",)
    assert "sym" not in read_meta(model)["alignment"]


# =========================================================================== 3. devices


@pytest.mark.skipif(__import__("torch").cuda.is_available(), reason="this machine has CUDA")
@pytest.mark.parametrize("command", ["translate", "align"])
@pytest.mark.parametrize("device", ["cuda", "cuda:1", "tpu", "gpu0"])
def test_an_absent_or_unknown_device_is_a_one_line_error(command, device, tiny_transformer,
                                                         tmp_path, capsys):
    gold = _gold(tmp_path / "gold")
    args = ["A dog runs."] if command == "translate" else [gold / "g.src", gold / "g.tgt"]
    code, out, err = _cli([command, "-m", tiny_transformer, "--device", device, *args], capsys)
    assert code == 2 and out == ""
    assert device in _one_error_line(err)


def test_auto_is_every_command_s_default_and_picks_cuda_when_present(monkeypatch):
    import inspect

    import torch

    from seqattn import translate as tr_mod
    from seqattn.cli import align as align_cli
    from seqattn.cli import translate as translate_cli
    from seqattn.device import pick_device

    for fn in (translate_cli.translate, align_cli.align, tr_mod.load):
        assert inspect.signature(fn).parameters["device"].default == "auto", fn
    assert pick_device("auto").type == ("cuda" if torch.cuda.is_available() else "cpu")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    assert pick_device("auto") == torch.device("cuda")
    assert pick_device("cuda:1") == torch.device("cuda:1")
    with pytest.raises(Exception, match="cuda:0 to cuda:1"):
        pick_device("cuda:2")


# =========================================================================== 5. Ctrl-C at exit


def test_ctrl_c_while_the_interpreter_cleans_up_exits_130_with_one_line(tmp_path):
    script = tmp_path / "late_ctrl_c.py"
    script.write_text(textwrap.dedent("""
        import atexit, os, signal, sys, time

        def late_ctrl_c():  # Ctrl-C after the command finished, during the exit hooks
            os.kill(os.getpid(), signal.SIGINT)
            time.sleep(1)

        if sys.argv[1] == "interrupt":
            atexit.register(late_ctrl_c)
        from seqattn.cli import main
        main(["explain", "--format", "json"])
    """))
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    for mode, code in (("interrupt", 130), ("finish", 0)):
        proc = subprocess.run([sys.executable, str(script), mode], capture_output=True,
                              preexec_fn=default_sigint,
                              text=True, timeout=120, env=env)
        assert proc.returncode == code, proc.stderr
        assert "Traceback" not in proc.stderr and "Exception ignored" not in proc.stderr
        assert proc.stderr.strip() == ("error: interrupted" if code else ""), proc.stderr
        assert json.loads(proc.stdout)["weights"]  # the data was written either way


# =========================================================================== 7, 8. newcomers


def test_a_file_name_given_as_text_gets_a_one_line_warning(tiny_transformer, tmp_path):
    folder = tmp_path / ("a-rather-long-folder-name-so-that-the-warning-is-longer-than-80" * 2)
    folder.mkdir()
    notes = folder / "notes.txt"
    notes.write_text("A dog runs.\n")
    proc = _sub(["translate", "-m", tiny_transformer, notes], env={"COLUMNS": "80"})
    assert proc.returncode == 0
    assert len(proc.stdout.decode().splitlines()) == 1
    lines = [line for line in proc.stderr.decode().splitlines() if line.strip()]
    assert all(line.startswith("warning: ") for line in lines), lines  # never wrapped
    warnings = [line for line in lines if "is a file" in line]
    assert len(warnings) == 1, warnings                 # one record, one line
    (line,) = warnings
    assert line.startswith("warning: ") and line == line.rstrip()
    assert f"'{notes}' is a file" in line and f"use -i {notes}" in line


def test_plain_warnings_are_one_line_each_even_for_multi_line_messages(capsys):
    import logging

    from seqattn.cli.app import setup_logging

    setup_logging()  # stderr is pytest's capture: not a terminal
    logging.getLogger("seqattn.test").warning("first part\nsecond part " + "x" * 200)
    logging.getLogger("seqattn.test").info("plain information")
    err = capsys.readouterr().err
    assert err.splitlines() == [f"warning: first part second part {'x' * 200}",
                                "plain information"]


# =========================================================================== 9. library API


def test_force_align_returns_the_links_the_cli_prints(tiny_transformer, tmp_path, capsys):
    import seqattn
    from seqattn.align.links import pharaoh

    gold = _gold(tmp_path / "gold")
    code, out, err = _cli(["align", "-m", tiny_transformer, gold / "g.src", gold / "g.tgt"],
                          capsys)
    assert code == 0, err
    pairs = [(s, t) for s, t, _ in SMALL_GOLD]
    records = seqattn.force_align(seqattn.load(tiny_transformer), pairs)
    assert [pharaoh(r.links) for r in records] == out.splitlines()
    assert all(r.links for r in records)
    # a model name works too, and so does an explicit extraction
    from seqattn.align.links import Extraction

    again = seqattn.force_align(str(tiny_transformer), pairs[:1], extraction=Extraction())
    assert len(again[0].links) == len(SMALL_GOLD[0][1].split())   # argmax: one per word


def test_export_accepts_a_shipped_short_name(shipped, tmp_path, capsys):
    out = tmp_path / "exported"
    code, _, err = _cli(["export", "tiny", out, "--dtype", "fp32"], capsys)
    assert code == 0, err
    assert (out / "spm.model").read_bytes() == (shipped / "spm.model").read_bytes()
    code, out_text, err = _cli(["translate", "-m", out, "A dog runs."], capsys)
    assert code == 0 and len(out_text.splitlines()) == 1, err


# =========================================================================== 11. evaluate


def _no_model_load(monkeypatch):
    import seqattn.translate

    def refuse(*args, **kwargs):
        raise AssertionError("the model was loaded before the inputs were checked")

    monkeypatch.setattr(seqattn.translate, "load", refuse)


@pytest.mark.parametrize("problem", ["short-ref", "short-baseline", "missing-baseline",
                                     "short-hyp", "bad-metric"])
def test_evaluate_model_mode_checks_every_input_before_translating(problem, tiny_transformer,
                                                                   texts, tmp_path, capsys,
                                                                   monkeypatch):
    _no_model_load(monkeypatch)
    short = tmp_path / "short.de"
    short.write_text("ein Hund\n")
    args = ["evaluate", "-m", tiny_transformer, "--src", texts["src"]]
    args += {"short-ref": ["-r", short],
             "short-baseline": ["-r", texts["ref"], "--baseline", short],
             "missing-baseline": ["-r", texts["ref"], "--baseline", tmp_path / "nope.de"],
             "short-hyp": ["-r", texts["ref"], short],
             "bad-metric": ["-r", texts["ref"], "--metric", "meteor"]}[problem]
    code, out, err = _cli(args, capsys)
    assert code == 2 and out == ""
    line = _one_error_line(err)
    assert ("short.de" in line or "nope.de" in line or "meteor" in line), line


def test_evaluate_model_mode_leaves_no_temporary_files_and_names_the_model(
        tiny_transformer, texts, tmp_path, capsys, monkeypatch):
    import tempfile

    import sacrebleu

    scratch = tmp_path / "tmp"
    scratch.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(scratch))
    monkeypatch.setenv("TMPDIR", str(scratch))
    monkeypatch.setenv("COLUMNS", "200")
    code, out, err = _cli(["evaluate", "-m", tiny_transformer, "--src", texts["src"], "-r",
                           texts["ref"], "-b", "2", "-f", "json", "--metric", "bleu"], capsys)
    assert code == 0, err
    (system,) = json.loads(out)["sets"][0]["systems"]
    assert system["name"] == str(tiny_transformer)
    assert list(scratch.iterdir()) == []
    # the score is that of the model's translations, computed independently
    import seqattn

    hyps = [t.text for t in seqattn.load(tiny_transformer).translate(
        texts["src"].read_text().splitlines(), beam=2)]
    expected = sacrebleu.corpus_bleu(hyps, [texts["ref"].read_text().splitlines()]).score
    assert system["scores"]["bleu"]["score"] == pytest.approx(expected)
    code, out, err = _cli(["evaluate", "-m", tiny_transformer, "--src", texts["src"], "-r",
                           texts["ref"], "--metric", "bleu"], capsys)
    assert code == 0 and str(tiny_transformer) in out and "seqattn-" not in out, out
    assert list(scratch.iterdir()) == []


# =========================================================================== 13. help texts


def _help(args: list[str], capsys, monkeypatch) -> str:
    monkeypatch.setenv("COLUMNS", "200")
    assert run([*args, "--help"]) == 0
    return " ".join(capsys.readouterr().out.split())


def test_help_texts_tell_the_truth(capsys, monkeypatch):
    translate = _help(["translate"], capsys, monkeypatch)
    assert "[default: mean]" not in translate
    assert "default: the model's calibrated view" in translate
    align = _help(["align"], capsys, monkeypatch)
    assert not re.search(r"(?<![./\w])data/gold/", align)   # no path that exists nowhere
    assert "--save-to" in align


def test_every_command_summary_is_one_sentence_on_one_line(capsys, monkeypatch):
    from seqattn.cli.app import app

    monkeypatch.setenv("COLUMNS", "200")
    assert run(["--help"]) == 0
    rows = capsys.readouterr().out.splitlines()
    for command in app.registered_commands:
        summary = (command.callback.__doc__ or "").strip().split("\n\n")[0]
        assert "\n" not in summary and summary.endswith("."), summary
        name = command.name or command.callback.__name__.replace("_", "-")
        (row,) = [r for r in rows if re.match(rf"\W*{name}\s", r)]
        assert summary in row, (summary, row)


def test_each_short_flag_has_one_meaning_and_b_is_beam():
    import typer

    from seqattn.cli.app import app

    command = typer.main.get_command(app)
    meanings: dict[str, set[tuple[str, ...]]] = {}
    for sub in command.commands.values():  # type: ignore[attr-defined]
        for param in sub.params:
            opts = getattr(param, "opts", [])
            longs = tuple(o for o in opts if o.startswith("--"))
            for short in (o for o in opts if not o.startswith("--")):
                meanings.setdefault(short, set()).add(longs)
    assert all(len(m) == 1 for m in meanings.values()), meanings
    assert meanings["-b"] == {("--beam",)}
    evaluate = command.commands["evaluate"]  # type: ignore[attr-defined]
    baseline = next(p for p in evaluate.params if "--baseline" in p.opts)
    assert baseline.opts == ["--baseline"]


def test_gzip_text_reads_like_plain_text_and_a_broken_one_is_one_line(tmp_path, capsys):
    import gzip

    from seqattn.errors import DataError
    from seqattn.textio import read_lines

    lines = ["0-0 1-1", "", "2-0 äö"]
    (tmp_path / "links.txt.gz").write_bytes(gzip.compress(("\n".join(lines) + "\n").encode()))
    assert read_lines(tmp_path / "links.txt.gz", allow_empty=True) == lines
    (tmp_path / "bad.gz").write_bytes(b"not gzip at all")
    with pytest.raises(DataError, match="not a valid gzip file"):
        read_lines(tmp_path / "bad.gz")
    shipped = ROOT / "bench" / "links" / "multi30k-train.en-de.eflomal-gdfa.txt.gz"
    assert len(read_lines(shipped, allow_empty=True)) == 29000   # one line per training pair
