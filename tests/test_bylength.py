"""`seqattn evaluate --by-length` (issue 21): buckets of source length, each scored by sacreBLEU
on its own lines, checked against sacrebleu's corpus functions called directly."""

from __future__ import annotations

import importlib.util
import json
import random
import subprocess
import sys
from pathlib import Path

import pytest
import sacrebleu

from seqattn.bylength import length_buckets
from seqattn.cli import run

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data" / "multi30k"


def test_buckets_merge_from_the_short_end_and_a_short_tail_joins_the_last():
    lengths = [3] * 5 + [15] * 2 + [25] * 4 + [0] + [41] * 1
    buckets = length_buckets(lengths, width=10, min_sentences=4)
    # 1-10 holds 5; 11-20 (2) is too few and takes in 21-30 (4); 41-50 (1) is too few and
    # joins the bucket before it; the empty line (0 words) is in no bucket
    assert [(b.lo, b.hi, len(b.lines)) for b in buckets] == [(1, 10, 5), (11, 50, 7)]
    assert sorted(i for b in buckets for i in b.lines) == [i for i, n in enumerate(lengths)
                                                           if n > 0]
    assert [b.label for b in length_buckets([1, 1, 2], width=1, min_sentences=1)] == ["1", "2"]
    assert length_buckets([], 10, 5) == []


def _write(path: Path, lines: list[str]) -> str:
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return str(path)


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    """400 test2016 pairs and two systems: the reference with words dropped, more the longer
    the sentence, and the reference shuffled within the file."""
    tmp = tmp_path_factory.mktemp("bylength")
    src = (DATA / "test_2016_flickr.en").read_text(encoding="utf-8").splitlines()[:400]
    ref = (DATA / "test_2016_flickr.de").read_text(encoding="utf-8").splitlines()[:400]
    rng = random.Random(3)
    drop = [" ".join(w for w in line.split() if rng.random() > len(s.split()) / 40)
            for line, s in zip(ref, src)]
    shuffled = ref[:]
    rng.shuffle(shuffled)
    return (_write(tmp / "src.en", src), _write(tmp / "ref.de", ref),
            _write(tmp / "drop.de", drop), _write(tmp / "shuf.de", shuffled), src, ref,
            {"drop": drop, "shuf": shuffled}, tmp)


def test_each_bucket_is_sacrebleus_corpus_score_of_its_lines(files, capsys):
    src_p, ref_p, drop_p, shuf_p, src, ref, hyps, _ = files
    assert run(["evaluate", "-r", ref_p, drop_p, shuf_p, "--by-length", src_p,
                "--bucket-width", "5", "--min-bucket", "40", "-f", "json"]) == 0
    doc = json.loads(capsys.readouterr().out)["by_length"]
    assert doc["systems"] == [drop_p, shuf_p] and doc["metrics"] == ["bleu", "chrf"]
    seen = []
    for bucket in doc["buckets"]:
        lo, hi = bucket["words"]
        lines = [i for i, s in enumerate(src) if lo <= len(s.split()) <= hi]
        assert bucket["sentences"] == len(lines) >= 40
        seen += lines
        refs = [[ref[i] for i in lines]]
        for name, path in (("drop", drop_p), ("shuf", shuf_p)):
            hyp = [hyps[name][i] for i in lines]
            assert bucket["scores"][path]["bleu"] == pytest.approx(
                sacrebleu.corpus_bleu(hyp, refs).score, abs=1e-9)
            assert bucket["scores"][path]["chrf"] == pytest.approx(
                sacrebleu.corpus_chrf(hyp, refs).score, abs=1e-9)
    assert sorted(seen) == list(range(len(src)))               # every line, once
    # the dropping system was built to get worse with length: the buckets show it
    drop_bleu = [b["scores"][drop_p]["bleu"] for b in doc["buckets"]]
    assert drop_bleu[0] > drop_bleu[-1] + 10


def test_table_chart_tsv_and_other_metrics(files, capsys):
    src_p, ref_p, drop_p, _, _, _, _, _ = files
    assert run(["evaluate", "-r", ref_p, drop_p, "--by-length", src_p]) == 0
    out = capsys.readouterr().out
    assert "BLEU by source length" in out and "█" in out and "chrF2" in out
    assert run(["evaluate", "-r", ref_p, drop_p, "--by-length", src_p, "-f", "tsv",
                "--metric", "ter"]) == 0
    rows = capsys.readouterr().out.splitlines()
    assert rows[0].split("\t") == ["lo", "hi", "sentences", "mean_words", "system", "metric",
                                   "score"]
    assert {r.split("\t")[5] for r in rows[1:]} == {"ter"}


@pytest.mark.skipif(importlib.util.find_spec("matplotlib") is None, reason="needs matplotlib")
def test_png_chart(files, capsys):
    src_p, ref_p, drop_p, shuf_p, _, _, _, tmp = files
    png = tmp / "charts" / "by-length.png"
    assert run(["evaluate", "-r", ref_p, drop_p, shuf_p, "--by-length", src_p,
                "--png", str(png)]) == 0
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


@pytest.mark.parametrize("extra, message", [
    (["--sentence"], "does not combine with --sentence"),
    (["--baseline", "DROP"], "does not combine with --baseline"),
    (["--png", "REF"], "would destroy the input"),
])
def test_bad_combinations_are_one_line_errors(files, capsys, extra, message):
    src_p, ref_p, drop_p, _, _, _, _, _ = files
    extra = [{"DROP": drop_p, "REF": ref_p}.get(x, x) for x in extra]
    before = Path(ref_p).read_bytes()
    assert run(["evaluate", "-r", ref_p, drop_p, "--by-length", src_p, *extra]) == 2
    assert message in capsys.readouterr().err
    assert Path(ref_p).read_bytes() == before


def test_bucket_flags_need_by_length_and_sources_must_align(files, tmp_path, capsys):
    _, ref_p, drop_p, _, _, _, _, _ = files
    assert run(["evaluate", "-r", ref_p, drop_p, "--min-bucket", "3"]) == 2
    assert "belong to --by-length" in capsys.readouterr().err
    short = _write(tmp_path / "short.en", ["A dog."])
    assert run(["evaluate", "-r", ref_p, drop_p, "--by-length", short]) == 2
    assert "must be line-aligned" in capsys.readouterr().err


def test_model_mode_compares_several_models(tiny_model_bahdanau, tiny_noattn, tmp_path):
    src = _write(tmp_path / "s.en", ["A dog runs.", "Two men play football in a park today.",
                                     "A cat."])
    ref = _write(tmp_path / "s.de", ["Ein Hund rennt.", "Zwei Männer spielen Fußball.",
                                     "Eine Katze."])
    res = subprocess.run([sys.executable, "-m", "seqattn", "evaluate",
                          "-m", str(tiny_model_bahdanau), "-m", str(tiny_noattn), "--src", src,
                          "-r", ref, "--by-length", src, "--min-bucket", "1", "--no-split",
                          "-f", "json"], capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stderr
    doc = json.loads(res.stdout)["by_length"]
    assert doc["systems"] == [str(tiny_model_bahdanau), str(tiny_noattn)]
    assert [b["sentences"] for b in doc["buckets"]] == [3]
    # each system is scored on its own model's translations (as `translate` gives them)
    scores = doc["buckets"][0]["scores"]
    refs = [Path(ref).read_text(encoding="utf-8").splitlines()]
    for model in (tiny_model_bahdanau, tiny_noattn):
        out = subprocess.run([sys.executable, "-m", "seqattn", "translate", "-m", str(model),
                              "-i", src, "--no-split"], capture_output=True, text=True,
                             timeout=300)
        hyp = out.stdout.splitlines()
        assert scores[str(model)]["chrf"] == pytest.approx(
            sacrebleu.corpus_chrf(hyp, refs).score, abs=1e-9)
    assert scores[str(tiny_model_bahdanau)]["chrf"] != scores[str(tiny_noattn)]["chrf"]


def test_the_long_sentence_builder_uses_every_caption_once_in_groups_of_2_to_5(tmp_path):
    sys.path.insert(0, str(ROOT / "bench"))
    try:
        from long_sentences import groups
    finally:
        sys.path.pop(0)
    for n in (2, 3, 7, 1000):
        cut = groups(n, seed=1)
        assert [i for g in cut for i in g] == list(range(n))
        assert all(2 <= len(g) <= 6 for g in cut) and all(len(g) <= 5 for g in cut[:-1])
    res = subprocess.run([sys.executable, str(ROOT / "bench" / "long_sentences.py"),
                          "--out", str(tmp_path)], capture_output=True, text=True, timeout=60)
    assert res.returncode == 0, res.stderr
    en = (tmp_path / "long.en").read_text(encoding="utf-8").splitlines()
    de = (tmp_path / "long.de").read_text(encoding="utf-8").splitlines()
    captions = (DATA / "test_2016_flickr.en").read_text(encoding="utf-8").splitlines()
    assert len(en) == len(de) and en[:1000] == captions
    assert " ".join(en[1000:]).split() == " ".join(captions).split()
    assert max(len(line.split()) for line in en) > 50
