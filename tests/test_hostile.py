"""Hostile input is bounded (issue 17): whatever the source, no output has more than
``decoding.max_output_len`` pieces (``--max-output-len``), and hostile lines through a model
with its default options (beam 5) give one output line each."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from seqattn.cli import run
from seqattn.config import DecodeConfig, config_from_dict
from seqattn.errors import ConfigError
from seqattn.models import EOS_ID
from seqattn.models.transformer import TransformerSeq2Seq
from seqattn.translate import Translator, load

ROOT = Path(__file__).resolve().parents[1]
CAP = DecodeConfig().max_output_len
LINE = "A man in a red shirt rides a bike."


@pytest.fixture(autouse=True)
def _one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture
def never_ends(monkeypatch):
    """Every Transformer's end-of-sentence logit pushed 10^4 below the rest: a model that never
    stops by itself (finite, so beam search can still force eos at the limit, as it must)."""
    step = TransformerSeq2Seq.step

    def without_eos(self, prev_tokens, state, memory):
        logits, state, weights = step(self, prev_tokens, state, memory)
        logits = logits.clone()
        logits[:, EOS_ID] = logits.min() - 1e4
        return logits, state, weights

    monkeypatch.setattr(TransformerSeq2Seq, "step", without_eos)


@pytest.fixture
def translator(tiny_transformer) -> Translator:
    return load(tiny_transformer, device="cpu")


def test_the_default_cap_is_256():
    assert CAP == 256  # the value --help states (see test_help_states_the_cap)


@pytest.mark.parametrize("beam", [1, 5])
def test_cap_stops_a_model_that_never_ends(never_ends, translator, beam):
    src_len = len(translator.translate([LINE], beam=1, max_len=1)[0].segmented.ids) + 1
    assert 50 * src_len + 5 > CAP + 20  # a·S+b alone would allow more than any cap below
    [free] = translator.translate([LINE], beam=beam, max_len_a=50.0, max_output_len=CAP + 20,
                                  attention=False)
    [capped] = translator.translate([LINE], beam=beam, max_len_a=50.0, attention=False)
    [low] = translator.translate([LINE], beam=beam, max_output_len=3, attention=False)
    assert [len(t.hyps[0].pieces) for t in (free, capped, low)] == [CAP + 20, CAP, 3]
    if beam == 1:  # greedy: the cap only cuts the same output short
        assert capped.hyps[0].pieces == free.hyps[0].pieces[:CAP]


def test_cap_below_a_s_plus_b_leaves_short_outputs_alone(never_ends, translator):
    # the tiny model's a·S+b is 1.0·S+5: a cap above it changes nothing
    src_len = len(translator.translate([LINE], beam=1, max_len=1)[0].segmented.ids) + 1
    [t] = translator.translate([LINE], beam=1, max_output_len=src_len + 6, attention=False)
    assert len(t.hyps[0].pieces) == src_len + 5


def test_a_10000_character_line_with_default_options_stops_at_the_cap(never_ends, translator):
    line = ("dog " * 2500)[:10_000]
    [t] = translator.translate([line], attention=False)  # the model's options: beam 5
    assert translator.cfg.decoding.beam_size == 5
    assert t.truncated and len(t.segmented.ids) == translator.max_source_pieces == 1023
    # without the cap: min(1.0 · 1024 + 5, the model's 1023 positions) = 1023 pieces
    assert len(t.hyps[0].pieces) == CAP


# ----------------------------------------------------------------------------- configuration


def test_output_limit():
    src_len = torch.tensor([1, 10, 163, 1000])
    assert DecodeConfig().output_limit(src_len).tolist() == [11, 25, 254, 256]  # 1.5·S+10
    assert DecodeConfig(max_output_len=20).output_limit(src_len).tolist() == [11, 20, 20, 20]
    assert DecodeConfig(max_len=7).output_limit(src_len).tolist() == [7, 7, 7, 7]
    assert DecodeConfig(max_len_a=0.0, max_len_b=0).output_limit(src_len).tolist() == [1] * 4


@pytest.mark.parametrize("given, message", [
    ({"max_output_len": 0}, r"^decoding\.max_output_len must be >= 1, got 0$"),
    ({"max_len": 257}, r"^decoding\.max_len \(257\) cannot exceed decoding\.max_output_len "
                       r"\(256\)"),
    ({"min_len": 300}, r"^decoding\.min_len \(300\) cannot exceed decoding\.max_output_len "
                       r"\(256\)"),
    ({"max_len": 9, "max_output_len": 8}, r"^decoding\.max_len \(9\) cannot exceed "
                                          r"decoding\.max_output_len \(8\)"),
])
def test_contradictions_are_config_errors(given, message):
    with pytest.raises(ConfigError, match=message) as e:
        DecodeConfig().override(**given)
    assert e.value.params == tuple(f"decoding.{k}" for k in given)


def test_cap_from_yaml():
    cfg = config_from_dict({"decoding": {"max_output_len": 64}})
    assert cfg.decoding.max_output_len == 64
    assert DecodeConfig(max_len=256).max_len == 256  # at the cap is fine
    with pytest.raises(ConfigError, match="decoding.max_output_len must be an integer"):
        config_from_dict({"decoding": {"max_output_len": "many"}})


# ----------------------------------------------------------------------------------- the CLI


def _one_error_line(capsys) -> str:
    captured = capsys.readouterr()
    assert captured.out == ""
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), captured.err
    return lines[0]


@pytest.mark.parametrize("flags, message", [
    (["--max-output-len", "0"], "--max-output-len must be >= 1, got 0"),
    (["--max-output-len", "-3"], "--max-output-len must be >= 1, got -3"),
    (["--max-output-len", "abc"], "Invalid value for '--max-output-len'"),
    (["--max-len", "9", "--max-output-len", "8"], "--max-len (9) cannot exceed "
                                                  "--max-output-len (8)"),
    (["--max-len", "300"], "--max-len (300) cannot exceed decoding.max_output_len (256)"),
])
def test_translate_bad_values_exit_2_in_one_line(flags, message, tiny_transformer, capsys):
    assert run(["-q", "translate", "-m", str(tiny_transformer), *flags, "A dog."]) == 2
    assert message in _one_error_line(capsys)


def test_evaluate_bad_values_exit_2_in_one_line(tiny_transformer, tmp_path, capsys):
    text = tmp_path / "t.txt"
    text.write_text("A dog.\n", encoding="utf-8")
    args = ["-q", "evaluate", "-m", str(tiny_transformer), "--src", str(text), "-r", str(text)]
    assert run([*args, "--max-output-len", "0"]) == 2
    assert "--max-output-len must be >= 1, got 0" in _one_error_line(capsys)
    assert run(["-q", "evaluate", "-r", str(text), str(text), "--max-output-len", "5"]) == 2
    assert "belong to model mode" in _one_error_line(capsys)


def test_translate_flag_reaches_the_search(never_ends, tiny_transformer, capsys):
    code = run(["-q", "translate", "-m", str(tiny_transformer), "-f", "jsonl",
                "--max-output-len", "4", LINE, "Two dogs play in the snow."])
    assert code == 0
    records = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [len(r["target_pieces"]) for r in records] == [4, 4]


def test_evaluate_passes_the_flag_on(tiny_transformer, tmp_path, capsys, monkeypatch):
    seen = []
    stream = Translator.stream

    def recording(self, lines, **options):
        seen.append(options)
        return stream(self, lines, **options)

    monkeypatch.setattr(Translator, "stream", recording)
    text = tmp_path / "t.txt"
    text.write_text("A dog.\n", encoding="utf-8")
    assert run(["-q", "evaluate", "-m", str(tiny_transformer), "--src", str(text), "-r",
                str(text), "--max-output-len", "3", "-f", "json"]) == 0
    assert [o["max_output_len"] for o in seen] == [3]


@pytest.mark.parametrize("command", ["translate", "evaluate"])
def test_help_states_the_cap(command, capsys, monkeypatch):
    monkeypatch.setenv("COLUMNS", "300")
    assert run([command, "--help"]) == 0
    [line] = [x for x in capsys.readouterr().out.splitlines() if "--max-output-len" in x]
    assert re.search(rf"default: the model's decoding\.max_output_len, {CAP}\]", line), line


# ------------------------------------------------------------------------------ fuzz smoke


def test_fuzz_lines_through_a_model_with_default_options(tiny_transformer):
    # seed 2: 40 lines with invalid-UTF-8 and empty ones, and a 10,000-character line of
    # repeated sentences (about 140 of them, translated one by one)
    proc = subprocess.run([sys.executable, str(ROOT / "bench" / "fuzz_lines.py"), "--lines",
                           "40", "--seed", "2", "--model", str(tiny_transformer)],
                          capture_output=True, text=True, timeout=300,
                          env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    summary = json.loads(proc.stdout)
    assert summary["result"] == "ok" and summary["problems"] == []
    assert summary["categories"]["long"] == 1 and summary["invalid_utf8_lines"] > 0
    assert summary["blank_lines"] > 0
    t = summary["translate"]
    assert t["options"] == [] and t["exit"] == 0 and t["lines_out"] == 40
    assert t["invalid_utf8_warnings"] == summary["invalid_utf8_lines"]
