"""Tests for seqattn.aer: hand-computed cases, file parsing, and the published fast_align and
GIZA++ figures (lilt/alignment-scripts) reproduced from ../shared/data/gold."""

import json
import logging
import re
from pathlib import Path

import pytest

from seqattn.align.aer import aer, parse_pharaoh, parse_talp, read_pharaoh, read_talp, score_files
from seqattn.cli import run
from seqattn.errors import DataError

GOLD = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "gold"
GOLD_FILES = {"enfr": "enfr_hansards_naacl2003/enfr.talp", "roen": "roen_naacl2003/roen.talp"}
NO_DATA = f"shared data not found at {GOLD} (CI checks out ../shared beside the clone)"

# The shared fast_align predictions are the files lilt/alignment-scripts committed in 5548c58,
# and the results file committed with them there scores them exactly as `aer` does, all 12
# lines. The shared *-results.txt is a later version (1a1d6b4, which added the bpe.word rows)
# printed after fast_align was run again: its link counts are not those of the stored files
# (enfr grow-diagonal: 5379 printed, 5374 links in the file, none duplicated), and four of its
# figures moved by 0.1. No scoring convention explains that (checked: dedup is moot, no link
# falls outside the .src/.tgt sentences, truncating instead of rounding matches 3 of 24 lines,
# lilt's and awesome-align's scripts/aer.py compute exactly what `aer` does), so for those four
# lines the figures published with these very files (5548c58) are the ones to reproduce.
PUBLISHED_WITH_THESE_FILES = {
    ("fastalign", "test.enfr.intersection.talp"): ["11.2", "92.4", "84.5"],  # later: 92.3
    ("fastalign", "test.roen.intersection.talp"): ["34.3", "87.9", "52.4"],  # later: 34.4
    ("fastalign", "test.roen.talp"): ["33.8", "71.9", "61.4"],  # later: 71.8, 61.3
    ("fastalign", "test.roen.union.talp"): ["34.9", "62.1", "68.3"],  # later: 35.0
}
RESULT_LINE = re.compile(r"^(\S+): ([\d.]+)% \(([\d.]+)%/([\d.]+)%/(\d+)\)$")


def published_results() -> list:
    """One pytest.param per line of reference_outputs/*/*-results.txt."""
    params = []
    for results in sorted(GOLD.glob("reference_outputs/*/*-results.txt")):
        tool, pair = results.parent.name, results.name.split("-")[0]
        for line in results.read_text().splitlines():
            name, *figures = RESULT_LINE.match(line).groups()
            params.append(pytest.param(tool, pair, name, figures, id=f"{tool}-{name}"))
    return params or [pytest.param(None, None, None, None, marks=pytest.mark.skip(reason=NO_DATA))]


@pytest.mark.parametrize(("tool", "pair", "name", "figures"), published_results())
def test_reproduces_published_figures(tool, pair, name, figures):
    hyp = GOLD / "reference_outputs" / tool / name
    if not hyp.exists():
        pytest.skip("prediction file not in shared/data (the bpe.word outputs were not copied)")
    r = score_files(hyp, GOLD / GOLD_FILES[pair], gold_one_indexed=True,
                    reverse=".reverse." in name)  # reverse files are written target-source
    ours = [f"{100 * v:.1f}" for v in (r.aer, r.precision, r.recall)]
    assert ours == PUBLISHED_WITH_THESE_FILES.get((tool, name), figures[:3])
    if tool == "giza":
        assert r.hyp_links == int(figures[3])
    else:  # fast_align's printed counts come from the later run (see above)
        assert abs(r.hyp_links - int(figures[3])) <= 5


def test_every_shipped_prediction_file_has_a_published_line():
    if not GOLD.is_dir():
        pytest.skip(NO_DATA)
    names = {p.values[0:3:2] for p in published_results()}
    files = {(f.parent.name, f.name) for f in GOLD.glob("reference_outputs/*/*.talp")}
    assert len(files) == 24 and files <= names


def test_hand_computed_example():
    sure = [{(0, 0), (1, 1)}]
    possible = [{(1, 2)}]  # sure links are added to the possible ones
    r = aer([{(0, 0), (1, 2), (2, 2)}], sure, possible)
    # |A| = 3, |S| = 2, |A∩S| = 1, |A∩P| = 2
    assert (r.hyp_links, r.sure_links, r.possible_links) == (3, 2, 3)
    assert (r.sure_matches, r.possible_matches) == (1, 2)
    assert r.aer == pytest.approx(1 - 3 / 5)
    assert r.precision == pytest.approx(2 / 3)
    assert r.recall == pytest.approx(1 / 2)
    assert r.f1 == pytest.approx(4 / 7)


def test_perfect_and_empty_alignments():
    sure, possible = [{(0, 0), (1, 1)}], [{(0, 1)}]
    perfect = aer(sure, sure, possible)
    assert (perfect.aer, perfect.precision, perfect.recall, perfect.f1) == (0.0, 1.0, 1.0, 1.0)
    # aligning to possible links only: full precision, no recall
    only_possible = aer([{(0, 1)}], sure, possible)
    assert only_possible.precision == 1.0 and only_possible.recall == 0.0
    assert only_possible.aer == pytest.approx(1 - 1 / 3)
    nothing = aer([set()], sure, possible)
    assert (nothing.aer, nothing.precision, nothing.recall, nothing.f1) == (1.0, 0.0, 0.0, 0.0)


def test_counts_are_summed_over_the_corpus_not_averaged():
    hyp = [{(0, 0)}, {(0, 0), (1, 1), (2, 2), (3, 3)}]
    sure = [{(0, 1)}, {(0, 0), (1, 1), (2, 2), (3, 3)}]
    r = aer(hyp, sure, [set(), set()])
    assert r.precision == pytest.approx(4 / 5)  # the mean of per-sentence precisions is 0.5
    assert r.aer == pytest.approx(1 - 8 / 10)
    assert r.sentences == 2


def test_aer_rejects_misaligned_or_empty_input():
    with pytest.raises(DataError, match="2 sentences but the gold has 1"):
        aer([set(), set()], [set()], [set()])
    with pytest.raises(DataError, match="undefined"):
        aer([set()], [set()], [{(0, 0)}])


def test_parse_talp_and_pharaoh():
    gold = parse_talp("1-1 2p3 3-2", one_indexed=True)
    assert gold.sure == {(0, 0), (2, 1)}
    assert gold.possible == {(0, 0), (1, 2), (2, 1)}
    assert parse_pharaoh("0-1 2-0 2-0") == {(0, 1), (2, 0)}
    assert parse_pharaoh("0-1 2-0", reverse=True) == {(1, 0), (0, 2)}
    assert parse_pharaoh("   ") == frozenset()


@pytest.mark.parametrize("token", ["1-", "a-b", "1-2-3", "1:2", "-1-2", "１-2", "1p2p3", "x"])
def test_malformed_links_name_file_and_line(token):
    with pytest.raises(DataError, match=r"^f\.talp:7: malformed link"):
        parse_talp(f"0-0 {token}", where="f.talp:7")


def test_possible_link_in_hypothesis_and_zero_in_one_indexed_file():
    with pytest.raises(DataError, match="h:1: possible link '1p2'"):
        parse_pharaoh("1p2", where="h:1")
    with pytest.raises(DataError, match="g:2: .*index 0.*not 1-indexed"):
        parse_talp("0-1", one_indexed=True, where="g:2")


def write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


def test_score_files_with_reverse_and_line_mismatch(tmp_path):
    gold = write(tmp_path / "gold.talp", "1-1 2p2\n1-2\n")
    hyp = write(tmp_path / "hyp.align", "0-0 1-1\n0-1\n")
    rev = write(tmp_path / "rev.align", "0-0 1-1\n1-0\n")
    r = score_files(hyp, gold, gold_one_indexed=True)
    assert (r.hyp_links, r.sure_matches, r.possible_matches) == (3, 2, 3)
    assert score_files(rev, gold, gold_one_indexed=True, reverse=True) == r
    assert read_pharaoh(rev, reverse=True) == read_pharaoh(hyp)
    assert read_talp(gold, one_indexed=True)[1].sure == {(0, 1)}
    short = write(tmp_path / "short.align", "0-0\n")
    with pytest.raises(DataError, match=r"'.*short.align' has 1 lines but gold '.*' has 2"):
        score_files(short, gold, gold_one_indexed=True)


def test_warns_when_gold_looks_one_indexed(tmp_path, caplog):
    gold = write(tmp_path / "gold.talp", "1-1 2-2\n")
    hyp = write(tmp_path / "hyp.align", "0-0 1-1\n")
    with caplog.at_level(logging.WARNING, logger="seqattn.aer"):
        score_files(hyp, gold)
    assert "--gold-one-indexed" in caplog.text


def test_cli_json_and_tsv(tmp_path, capsys):
    gold = write(tmp_path / "gold.talp", "1-1 2p2 3-3\n")
    hyp = write(tmp_path / "hyp.align", "0-0 1-1 2-1\n")
    assert run(["evaluate", "--align", str(hyp), "--gold", str(gold), "--gold-one-indexed",
                "-f", "json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert (doc["gold"], doc["gold_one_indexed"], doc["reverse"]) == (str(gold), True, False)
    (data,) = doc["alignments"]
    expected = score_files(hyp, gold, gold_one_indexed=True)
    assert data["hyp"] == str(hyp) and data["aer"] == expected.aer and data["f1"] == expected.f1
    assert (data["hyp_links"], data["sure_links"], data["possible_links"]) == (3, 2, 3)
    assert run(["evaluate", "--align", str(hyp), "--align", str(hyp), "--gold", str(gold),
                "--gold-one-indexed", "-f", "tsv"]) == 0
    rows = [line.split("\t") for line in capsys.readouterr().out.splitlines()]
    assert rows[0][:5] == ["hyp", "aer", "precision", "recall", "f1"]
    assert len(rows) == 3 and all(len(row) == len(rows[0]) for row in rows)


@pytest.mark.skipif(not GOLD.is_dir(), reason=NO_DATA)
def test_cli_table_shows_published_figure(capsys):
    hyp = GOLD / "reference_outputs/giza/test.enfr.grow-diagonal.talp"
    assert run(["evaluate", "--align", str(hyp), "--gold", str(GOLD / GOLD_FILES["enfr"]),
                "--gold-one-indexed"]) == 0
    out = capsys.readouterr().out
    assert "5.9" in out and "97.5" in out and "89.7" in out


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--align", "{hyp}"], "needs --gold"),
        (["--align", "{hyp}", "--gold", "{gold}", "-r", "{gold}"], "does not combine with --ref"),
        (["-r", "{gold}", "{hyp}", "--gold", "{gold}"], "need --align"),
        (["--align", "{gold}", "--gold", "{gold}"], "possible link"),
        (["--align", "{hyp}", "--gold", "{gold}", "-f", "xml"], "unknown format"),
        (["--align", "{tmp}", "--gold", "{gold}"], "is a directory"),
    ],
)
def test_cli_errors(tmp_path, capsys, args, message):
    paths = {"hyp": write(tmp_path / "h.align", "0-0\n"), "tmp": tmp_path,
             "gold": write(tmp_path / "g.talp", "1p1\n")}
    assert run(["evaluate", *(a.format(**paths) for a in args)]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err.startswith("error:") and captured.err.count("\n") == 1
    assert message in captured.err
