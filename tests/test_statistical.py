"""guided_alignment: eflomal — links made by seqattn itself (issue 16, point 2)."""

from __future__ import annotations

import importlib.util
import sys

import pytest

from seqattn.align.statistical import token_words
from seqattn.cli import run
from seqattn.config import config_from_dict
from tests.test_train import _corpus

HAVE_EFLOMAL = all(importlib.util.find_spec(m) for m in ("eflomal", "sacremoses"))


def test_token_words_maps_tokens_back_to_the_words_given():
    assert token_words("A dog's ball.", ["A", "dog", "'s", "ball", "."]) == [0, 1, 1, 2, 2]
    assert token_words("two  spaces", ["two", "spaces"]) == [0, 1]
    assert token_words("a &amp; b", ["a", "&", "b"]) is None       # the tokenizer changed it


def _config(tmp_path) -> list[str]:
    """200 training pairs (tests.test_train's tiny corpus), a Transformer, links by eflomal."""
    return [*_corpus(tmp_path, n_train=200), "model.arch=transformer", "training.max_steps=2",
            "training.valid_every=2", "training.guided_alignment=eflomal"]


def test_without_the_extra_the_error_says_how_to_install_it(tmp_path, monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "eflomal", None)  # as if not installed
    code = run(["train", "--out", str(tmp_path / "run"),
                *[x for o in _config(tmp_path) for x in ("--set", o)]])
    err = capsys.readouterr().err
    assert code == 2 and "pip install 'seqattn[align]'" in err and len(err.splitlines()) == 1
    assert not (tmp_path / "run" / "guided.eflomal.txt").exists()


@pytest.mark.slow
@pytest.mark.skipif(not HAVE_EFLOMAL, reason="the [align] extra is not installed")
def test_train_makes_its_own_links_with_eflomal_and_reuses_them(tmp_path):
    from seqattn.train import train

    cfg = config_from_dict({}, _config(tmp_path))
    train(cfg, tmp_path / "run")
    links = (tmp_path / "run" / "guided.eflomal.txt").read_text(encoding="utf-8").splitlines()
    src = (tmp_path / "train.en").read_text(encoding="utf-8").splitlines()
    tgt = (tmp_path / "train.de").read_text(encoding="utf-8").splitlines()
    assert len(links) == len(src) == 200
    for line, s, t in zip(links, src, tgt):  # every link names words the pair has
        for item in line.split():
            i, j = map(int, item.split("-"))
            assert i < len(s.split()) and j < len(t.split())
    assert sum(bool(x) for x in links) > 190
    # "A dog ..." -> "Ein Hund ...": the first words link (a property any aligner has here)
    firsts = sum("0-0" in line.split() for line in links)
    assert firsts > 150, firsts
    before = (tmp_path / "run" / "guided.eflomal.txt").stat().st_mtime_ns
    cfg = config_from_dict({}, [*_config(tmp_path), "training.max_steps=4"])
    train(cfg, tmp_path / "run", resume=True)                      # reused, not recomputed
    assert (tmp_path / "run" / "guided.eflomal.txt").stat().st_mtime_ns == before
