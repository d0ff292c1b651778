"""Numbers survive translation (issue 17): attention-guided copying of source numbers."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from seqattn.align import numbers
from seqattn.cli import run

MODEL = Path(__file__).resolve().parents[1] / "models" / "en-de"
BUS = "42 people are waiting for bus 17 in front of a store."


@pytest.mark.parametrize("word,number", [("17,", "17"), ("(1987).", "1987"), ("3.5", "3.5"),
                                         ("10,000", "10,000"), ("7:30", "7:30"), ("2nd", None),
                                         ("A380", None), ("dogs", None), ("...", None)])
def test_number_of(word, number):
    assert numbers.number_of(word) == number


@pytest.mark.parametrize("word,number,written", [("Vier", "42", "42"), ("197", "1987", "1987"),
                                                 ("Jahren.", "1987", "1987."),
                                                 ("„999“", "1908", "„1908“"),
                                                 ("(8)", "3", "(3)"), ("drei5.", "3.5", "3.5."),
                                                 ("19-97,", "1987", "1987,")])
def test_write_puts_the_number_between_the_edge_punctuation(word, number, written):
    assert numbers._write(word, number) == written


@pytest.fixture(scope="module")
def en_de():
    if not (MODEL / "seqattn.json").is_file():
        pytest.skip("models/en-de is not shipped in this checkout")
    import seqattn

    return seqattn.load(MODEL, device="cpu")


def test_the_shipped_model_keeps_numbers_with_copying(en_de):
    [tr] = en_de.translate([BUS], attention=False)
    plain, pieces = tr.text, list(tr.hyps[0].pieces)
    assert "42" not in plain.split()           # the model alone writes "Vier Personen"
    assert numbers.copy_numbers(en_de, tr) >= 1
    out = tr.text.split()
    assert "42" in out and any(w.startswith("17") for w in out)
    assert tr.hyps[0].pieces == pieces and tr.hyps[0].copied  # the model's pieces kept
    assert len(out) == len(plain.split())       # a word replaced, none added


def test_lines_without_numbers_get_no_forced_pass(en_de, monkeypatch):
    [tr] = en_de.translate(["Two dogs play in 2nd place."], attention=False)

    def boom(*args, **kwargs):
        raise AssertionError("a forced pass for a line without numbers")

    monkeypatch.setattr("seqattn.align.force.word_attention", boom)
    assert numbers.copy_numbers(en_de, tr) == 0


def test_cli_copies_by_default_and_reports_it_in_jsonl(capsys):
    if not (MODEL / "seqattn.json").is_file():
        pytest.skip("models/en-de is not shipped in this checkout")
    assert run(["translate", "-m", str(MODEL), "-f", "jsonl", BUS]) == 0
    record = json.loads(capsys.readouterr().out)
    assert "42" in record["translation"].split() and record["copied"]
    i, j = record["copied"][0]
    assert record["source_words"][i] in ("42", "17") and \
        record["target_words"][j].strip(".,") in ("42", "17")
    assert run(["translate", "-m", str(MODEL), "--no-copy-numbers", BUS]) == 0
    assert "42" not in capsys.readouterr().out.split()


def test_evaluate_model_mode_translates_as_translate_does(tmp_path, capsys):
    """The hypotheses evaluate scores are translate's output with the same defaults (numbers
    copied, sentences split); --no-copy-numbers gives the model's own words back."""
    if not (MODEL / "seqattn.json").is_file():
        pytest.skip("models/en-de is not shipped in this checkout")
    lines = [BUS, "A man rides a bike. A dog plays in the snow."]
    src, ref = tmp_path / "s.en", tmp_path / "r.de"
    src.write_text("\n".join(lines) + "\n", encoding="utf-8")
    ref.write_text("42 Menschen warten.\nEin Mann fährt Rad. Ein Hund spielt.\n",
                   encoding="utf-8")
    assert run(["translate", "-m", str(MODEL), "-i", str(src)]) == 0
    translated = capsys.readouterr().out.splitlines()
    for flags, hyp in (([], tmp_path / "a.de"), (["--no-copy-numbers"], tmp_path / "b.de")):
        assert run(["evaluate", "-m", str(MODEL), "--src", str(src), "-r", str(ref),
                    "--save-hyp", str(hyp), "-f", "json", *flags]) == 0
    assert (tmp_path / "a.de").read_text(encoding="utf-8").splitlines() == translated
    plain = (tmp_path / "b.de").read_text(encoding="utf-8").splitlines()
    assert "42" in translated[0].split() and "42" not in plain[0].split()


def test_retext_keeps_what_the_words_do_not_show():
    assert numbers._retext("Vier Hunde.", ["Vier", "Hunde."], ["42", "Hunde."]) == "42 Hunde."
    # a word holding a piece the decoded text leaves out (<unk>): only that word is replaced
    assert numbers._retext("Ein Hund 3", ["Ein<unk>", "Hund", "3"], ["Ein<unk>", "Hund", "7"]) \
        == "Ein Hund 7"


def test_a_number_twice_in_the_source_is_copied_twice(en_de):
    """Present by count, not by value: "12 ... 12" needs two 12s in the output."""
    [tr] = en_de.translate(["The 12 dogs and 12 cats play."], attention=False, n_best=3)
    numbers.copy_numbers(en_de, tr)
    for hyp in tr.hyps:
        assert [w.strip(".,") for w in hyp.text.split()].count("12") == 2, hyp.text


def test_copying_reads_the_models_view_whatever_the_display_flags(capsys):
    if not (MODEL / "seqattn.json").is_file():
        pytest.skip("models/en-de is not shipped in this checkout")
    line = "42 people are waiting for bus 17 in front of a store."
    assert run(["translate", "-m", str(MODEL), line]) == 0
    plain = capsys.readouterr().out
    assert run(["translate", "-m", str(MODEL), "--shift-att", "--layer", "0", line]) == 0
    assert capsys.readouterr().out == plain


def test_a_joined_line_copies_only_in_its_sentences_with_numbers(en_de, monkeypatch):
    """One forced pass per sentence that holds a number, none for the others; the line's
    words, text and copied pairs are the sentences' joined."""
    import seqattn.align.force as force

    line = "Two dogs play. 42 people are waiting for bus 17 in front of a store. It rains."
    [tr] = en_de.translate([line], attention=False)
    assert tr.sentences == 3
    calls = []
    real = force.word_attention

    def counted(trn, t, h, view=None):
        calls.append(t.source)
        return real(trn, t, h, view)

    monkeypatch.setattr(force, "word_attention", counted)
    assert numbers.copy_numbers(en_de, tr) >= 1
    assert calls == ["42 people are waiting for bus 17 in front of a store."]
    hyp = tr.hyps[0]
    assert hyp.text == " ".join(h.text for _, h in hyp.parts) and hyp.text.split() == hyp.words
    assert "42" in hyp.words
    for i, j in hyp.copied:
        assert numbers.number_of(tr.src.words[i]) == numbers.number_of(hyp.words[j])
