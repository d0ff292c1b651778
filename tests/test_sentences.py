"""Real input (issue 17): several sentences a line, ALL-CAPS lines, sentences longer than any
the model was trained on. The joined results are checked against the sentences translated one
by one (an independent path through the same model)."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest
import torch

import seqattn
from seqattn.cli import run
from seqattn.sentences import fold_caps, is_all_caps, restore_caps, split_sentences

MODELS = Path(__file__).resolve().parents[1] / "models"
FOUR = "A man rides a bike. A dog plays in the snow. Two girls talk. It rains."


@pytest.fixture(scope="module")
def en_de():
    if not (MODELS / "en-de" / "seqattn.json").is_file():
        pytest.skip("models/en-de is not shipped in this checkout")
    return seqattn.load(MODELS / "en-de", device="cpu")


@pytest.mark.parametrize("line,expected", [
    (FOUR, ["A man rides a bike.", "A dog plays in the snow.", "Two girls talk.", "It rains."]),
    ("E.S.E. Electronics.", ["E.S.E. Electronics."]),                    # a test2016 line
    ("The U.S. flag flies. A man waves.", ["The U.S. flag flies.", "A man waves."]),
    ("Ein Mann, z. B. ein Lehrer, lacht. Die Kinder auch.",
     ["Ein Mann, z. B. ein Lehrer, lacht.", "Die Kinder auch."]),
    ("It rains.It pours.", ["It rains.It pours."]),                     # no space: one word
    ("Stop. ?? !", ["Stop. ?? !"]),                                     # nothing to say alone
    ("  A dog runs  ", ["A dog runs"]),
    ("", []),
    ("   ", []),
])
def test_split_sentences(line, expected):
    lang = "de" if "Kinder" in line else "en"
    assert split_sentences(line, lang) == expected


@pytest.mark.parametrize("space", ["\u00a0", "\u0085", "\u2009", "\u202f", "\u3000", "\u2028",
                                   "\u1680", "\u2002"])
def test_split_sentences_survives_every_kind_of_space(space):
    """sentencex's Rust panicked on "letter, multi-byte space, stop" (a BaseException that
    took the whole run down); the words still come back in order."""
    line = f"Vitamin C{space}. Good. A dog{space}runs."
    parts = split_sentences(line)
    assert " ".join(parts).split() == line.split() and len(parts) >= 2


@pytest.mark.parametrize("line,expected", [("IT IS 5. 7.", ["IT IS 5. 7."]),
                                           ("1. 2. 3.", ["1. 2. 3."])])
def test_a_part_without_a_letter_stays_with_the_sentence_before(line, expected):
    assert split_sentences(line) == expected


def test_the_cli_translates_lines_with_odd_spaces(capsys):
    assert run(["translate", "-m", str(MODELS / "en-de"), "-f", "jsonl", "A dog runs.",
                "Vitamin C\u00a0. Good.", "A cat."]) == 0
    out = capsys.readouterr().out.splitlines()
    assert len(out) == 3 and all(json.loads(x)["translation"] for x in out)


def test_split_sentences_keeps_every_word_in_order():
    line = "Two men ride bikes. A child, e.g. a boy, waves at 3.5 m/s! Dogs bark? Yes."
    parts = split_sentences(line, "en")
    assert len(parts) >= 3 and " ".join(parts).split() == line.split()


@pytest.mark.parametrize("text,caps", [("A DOG RUNS IN THE PARK.", True), ("USA", False),
                                       ("A man in a USA shirt.", False), ("OK!", False),
                                       ("ZWEI HUNDE", True), ("1234 ...", False)])
def test_is_all_caps(text, caps):
    assert is_all_caps(text) is caps


def test_fold_and_restore_caps():
    assert fold_caps("A DOG RUNS.").text == "A dog runs." and fold_caps("A DOG RUNS.").caps
    assert fold_caps("\"TWO DOGS\"").text == "\"Two dogs\""
    assert fold_caps("A dog runs.").text == "A dog runs." and not fold_caps("A dog runs.").caps
    shout = "ZWEI HUNDE LAUFEN ÜBER DIE STRASSE."
    assert restore_caps("Zwei Hunde laufen über die Straße.") == shout


def test_a_line_of_four_sentences_is_four_translations_joined(en_de):
    """Nothing dropped: the line's translation is the four sentences' translations, each made
    alone, joined; its score is the sum of their log-probabilities; the k-th of the n-best
    joins their k-th."""
    alone = en_de.translate(split_sentences(FOUR), n_best=2)
    [line] = en_de.translate([FOUR], n_best=2)
    assert line.sentences == 4
    assert line.text == " ".join(t.text for t in alone)
    assert line.hyps[1].text == " ".join(t.hyps[1].text for t in alone)
    assert line.score == pytest.approx(sum(t.hyps[0].log_prob for t in alone), abs=1e-4)
    assert line.src.words == FOUR.split()
    assert line.hyps[0].words == [w for t in alone for w in t.hyps[0].words]
    [whole] = en_de.translate([FOUR], split_sentences=False)
    assert whole.sentences == 1 and whole.text != line.text  # one sentence drops content


def test_a_joined_line_aligns_block_by_block(en_de):
    """Words of one sentence attend only to their own sentence's source words, and each block
    is exactly that sentence's own attention."""
    from seqattn.align import word_attention

    [line] = en_de.translate([FOUR])
    alone = en_de.translate(split_sentences(FOUR))
    words, eos = word_attention(en_de, line, line.hyps[0])
    assert words.shape == (len(line.hyps[0].words), len(FOUR.split()))
    r = c = 0
    for t in alone:
        block, block_eos = word_attention(en_de, t, t.hyps[0])
        rows, cols = block.shape
        assert torch.allclose(words[r:r + rows, c:c + cols], block, atol=1e-5)
        assert words[r:r + rows].sum() == pytest.approx(block.sum().item(), abs=1e-4)
        assert torch.allclose(eos[r:r + rows], block_eos, atol=1e-5)
        r, c = r + rows, c + cols
    assert (r, c) == tuple(words.shape)


def test_jsonl_of_a_joined_line_has_links_over_the_whole_line(en_de, capsys):
    assert run(["translate", "-m", str(MODELS / "en-de"), "--format", "jsonl", FOUR,
                "It rains."]) == 0
    first, second = (json.loads(x) for x in capsys.readouterr().out.splitlines())
    assert first["source_words"] == FOUR.split()
    last = [(s, t) for s, t in first["links"] if s >= len(FOUR.split()) - 2]
    assert last, first["links"]  # the last sentence's words are linked ...
    n_t = len(first["target_words"])
    # ... to the last words of the translation, as the second line's links are on their own
    offset_t = n_t - len(second["target_words"])
    offset_s = len(FOUR.split()) - len(second["source_words"])
    assert sorted(last) == sorted((s + offset_s, t + offset_t) for s, t in second["links"])


def test_cli_no_split_translates_the_line_as_one(en_de, capsys):
    assert run(["translate", "-m", str(MODELS / "en-de"), "--no-split", FOUR]) == 0
    whole = capsys.readouterr().out.strip()
    assert whole == en_de.translate([FOUR], split_sentences=False)[0].text


def test_all_caps_is_translated_in_sentence_case_and_given_capitals_back(en_de, capsys):
    [shout] = en_de.translate(["A DOG RUNS IN THE PARK."])
    [plain] = en_de.translate(["A dog runs in the park."])
    assert shout.caps and shout.text == plain.text.upper() and "HUND" in shout.text
    assert shout.src.words == "A DOG RUNS IN THE PARK.".split()
    assert shout.hyps[0].words == [w.upper() for w in plain.hyps[0].words]
    assert run(["translate", "-m", str(MODELS / "en-de"), "--no-caps",
                "A DOG RUNS IN THE PARK."]) == 0
    assert capsys.readouterr().out.strip() != shout.text


def test_a_sentence_longer_than_any_in_training_gets_a_warning(tiny_transformer, caplog):
    tr = seqattn.load(tiny_transformer)
    long = " ".join(["dog"] * (tr.trained_pieces + 5))
    with caplog.at_level(logging.WARNING, logger="seqattn"):
        out = tr.translate(["A dog.", long], max_len=3)
    assert len(out) == 2
    warned = [r.getMessage() for r in caplog.records if "trained on" in r.getMessage()]
    assert len(warned) == 1 and warned[0].startswith("line 2 ")
