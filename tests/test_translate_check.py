"""``seqattn translate --check`` (issue 17): the evidence card of ``align --check`` for the
model's own translations, checked against ``align --check`` on the same pairs."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from seqattn.cli import run

MODEL = Path(__file__).resolve().parents[1] / "models" / "en-de"
LINES = ["A dog dog dog.", "Two dogs are playing in the snow.", "A man rides a bike. It rains."]


@pytest.fixture(autouse=True)
def _shipped():
    if not (MODEL / "seqattn.json").is_file():
        pytest.skip("models/en-de is not shipped in this checkout")


def test_jsonl_checks_equal_align_check_on_the_same_pairs(capsys, monkeypatch):
    import io

    assert run(["translate", "-m", str(MODEL), "--check", "-f", "jsonl", *LINES[:2]]) == 0
    records = [json.loads(x) for x in capsys.readouterr().out.splitlines()]
    assert [r["checks"]["repeated"] != [] for r in records] == [True, False]  # "Hund Hund."
    pairs = "".join(f"{r['source']} ||| {r['translation']}\n" for r in records)
    monkeypatch.setattr("sys.stdin", io.TextIOWrapper(io.BytesIO(pairs.encode())))
    assert run(["align", "-m", str(MODEL), "-", "--check", "-f", "jsonl"]) == 0
    aligned = [json.loads(x) for x in capsys.readouterr().out.splitlines()]
    assert [a["checks"] for a in aligned] == [r["checks"] for r in records]


def test_text_output_stays_clean_and_flags_go_to_stderr_naming_the_line(capsys):
    assert run(["translate", "-m", str(MODEL), "--check", *LINES]) == 0
    out, err = capsys.readouterr()
    assert len(out.splitlines()) == 3 and "warning" not in out
    assert "line 1: repetition of 'Hund" in err
    assert not [x for x in err.splitlines() if x.startswith("warning: line 2:") and "repet" in x]


def test_the_table_gets_a_flags_column(capsys):
    assert run(["translate", "-m", str(MODEL), "--check", "--align", LINES[0]]) == 0
    _, err = capsys.readouterr()  # not a terminal: the table goes to stderr
    assert "flags" in err and "repeat" in err
