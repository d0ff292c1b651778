"""Tests for ``seqattn evaluate`` (translations): every number against sacrebleu's own API on the
same files, output formats, paired tests, test sets from YAML, errors, and no torch import."""

import io
import json
import os
import random
import subprocess
import sys
from pathlib import Path

import pytest
from sacrebleu.metrics import BLEU, CHRF, TER
from sacrebleu.significance import PairedTest

from seqattn.cli import run
from seqattn.errors import UsageError
from seqattn.evaluate import ScoringOptions, parse_metrics, read_lines

MULTI30K = (Path(__file__).resolve().parents[1].parent / "shared" / "data" / "multi30k"
            / "test_2016_flickr.de")
N = 200  # sentences: enough for stable scores, small enough for fast paired tests


def reference_lines() -> list[str]:
    """The first N lines of Multi30k test2016 (German), or generated text without the data."""
    if MULTI30K.exists():
        return MULTI30K.read_text(encoding="utf-8").splitlines()[:N]
    rng = random.Random(0)
    words = "Ein Mann eine Frau Hund läuft über grünes Gras spielt Straße Fußball Kinder".split()
    return [" ".join(rng.choices(words, k=rng.randint(4, 14))) + " ." for _ in range(N)]


def perturb(lines: list[str], rate: float, seed: int) -> list[str]:
    """A fake system output: words dropped, replaced, repeated and lowercased at ``rate``."""
    rng = random.Random(seed)
    out = []
    for line in lines:
        words = []
        for word in line.split():
            u = rng.random()
            if u < rate / 4:
                continue
            words.append(word.lower() if u < rate / 2 else rng.choice(line.split())
                         if u < rate else word)
        out.append(" ".join(words))
    return out


def tokenized_lowercase(lines: list[str]) -> list[str]:
    """Roughly what the paper convention scores: punctuation split off, lowercased."""
    return [" ".join(line.lower().replace(",", " ,").replace(".", " .").split()) for line in lines]


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("evaluate")
    ref = reference_lines()
    texts = {
        "ref.de": ref, "ref2.de": perturb(ref, 0.3, 9), "a.de": perturb(ref, 0.25, 1),
        "système_b.de": perturb(ref, 0.4, 2), "c.de": perturb(ref, 0.27, 3),
        "ref.tok.de": tokenized_lowercase(ref),
        "a.tok.de": tokenized_lowercase(perturb(ref, 0.25, 1)),
    }
    paths = {}
    for name, lines in texts.items():
        paths[name] = root / name
        paths[name].write_text("\n".join(lines) + "\n", encoding="utf-8")
    return paths


def cli(capsys, *args) -> tuple[int, str, str]:
    code = run(["evaluate", *map(str, args)])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def lines_of(path: Path) -> list[str]:
    return path.read_text(encoding="utf-8").splitlines()


def sacrebleu_metric(metric: str, refs: list[list[str]], lowercase=False, tokenize=None):
    if metric == "bleu":
        return BLEU(lowercase=lowercase, tokenize=tokenize, references=refs)
    if metric == "ter":
        return TER(references=refs)
    return CHRF(word_order=2 if metric == "chrf++" else 0, lowercase=lowercase, references=refs)


@pytest.mark.parametrize("metric", ["bleu", "chrf", "chrf++", "ter"])
@pytest.mark.parametrize(
    ("flags", "lowercase", "tokenize", "refs", "hyp"),
    [
        ([], False, None, ["ref.de"], "a.de"),
        (["--lowercase", "--tokenize", "none"], True, "none", ["ref.tok.de"], "a.tok.de"),
        (["--tokenize", "intl"], False, "intl", ["ref.de", "ref2.de"], "système_b.de"),
    ],
    ids=["default", "paper", "intl-2refs"],
)
def test_scores_equal_sacrebleu(capsys, corpus, metric, flags, lowercase, tokenize, refs, hyp):
    ref_args = [a for r in refs for a in ("-r", corpus[r])]
    code, out, _ = cli(capsys, *ref_args, corpus[hyp], "--metric", metric, "-f", "json", *flags)
    assert code == 0
    ours = json.loads(out)["sets"][0]["systems"][0]["scores"][metric]
    expected = sacrebleu_metric(metric, [lines_of(corpus[r]) for r in refs], lowercase, tokenize)
    score = expected.corpus_score(lines_of(corpus[hyp]), None)
    signature = expected.get_signature().format()
    assert ours["score"] == score.score  # full precision, through JSON
    assert ours["signature"] == signature
    assert ours["formatted"] == score.format(signature=signature)
    code, out, _ = cli(capsys, *ref_args, corpus[hyp], "--metric", metric, *flags)
    assert f" {score.format(score_only=True)} " in out  # the table, as sacrebleu rounds it
    assert signature in out


def test_table_rows_and_conventions(capsys, corpus):
    code, out, _ = cli(capsys, "-r", corpus["ref.de"], corpus["a.de"], corpus["c.de"])
    assert code == 0
    lines = out.splitlines()
    for name in ("a.de", "c.de"):
        assert sum(name in line for line in lines) == 1
    assert "BLEU: cased, tokenize=13a: the sacreBLEU default" in out
    assert "TER is an error rate: lower is better." in out
    code, out, _ = cli(capsys, "-r", corpus["ref.tok.de"], corpus["a.tok.de"], "--lowercase",
                       "--tokenize", "none", "--metrics", "bleu")
    assert "lowercased, tokenize=none: the paper convention" in out
    assert "case:lc|eff:no|tok:none" in out


def test_json_document(capsys, corpus):
    code, out, _ = cli(capsys, "-r", corpus["ref.de"], corpus["a.de"], corpus["système_b.de"],
                       "--metrics", "bleu,ter", "-f", "json")
    assert code == 0
    assert "système_b.de" in out  # ensure_ascii=False
    doc = json.loads(out)
    assert doc["convention"]["name"] == "sacrebleu" and doc["paired_test"] is None
    assert list(doc["convention"]["metrics"]) == ["bleu", "ter"]
    (test_set,) = doc["sets"]
    assert test_set["sentences"] == N and test_set["refs"] == [str(corpus["ref.de"])]
    assert [s["name"] for s in test_set["systems"]] == [str(corpus["a.de"]),
                                                        str(corpus["système_b.de"])]
    for system in test_set["systems"]:
        assert list(system["scores"]) == ["bleu", "ter"]
        assert system["scores"]["bleu"]["signature"].startswith("nrefs:1|case:mixed")
        assert set(system["scores"]["ter"]) == {"name", "score", "signature", "formatted"}


def test_tsv_shape(capsys, corpus):
    code, out, _ = cli(capsys, "-r", corpus["ref.de"], corpus["a.de"], corpus["c.de"], "-f", "tsv")
    rows = [line.split("\t") for line in out.splitlines()]
    assert code == 0 and rows[0] == ["set", "system", "metric", "score", "signature"]
    assert len(rows) == 1 + 2 * 3 and all(len(row) == 5 for row in rows)
    assert [row[2] for row in rows[1:4]] == ["bleu", "chrf", "ter"]
    code, out, _ = cli(capsys, "-r", corpus["ref.de"], corpus["a.de"], corpus["c.de"], "-f", "tsv",
                       "--metric", "bleu", "--baseline", corpus["a.de"])
    rows = [line.split("\t") for line in out.splitlines()]
    assert rows[0][-3:] == ["mean", "ci", "p_value"] and len(rows) == 3
    assert rows[1][-1] == "" and 0 < float(rows[2][-1]) <= 1  # the baseline has no p-value


@pytest.mark.parametrize("test", ["bs", "ar"])
def test_paired_test_equals_sacrebleu(capsys, corpus, monkeypatch, test):
    seed_before = os.environ.get("SACREBLEU_SEED")
    systems = [corpus["a.de"], corpus["c.de"], corpus["système_b.de"]]
    code, out, _ = cli(capsys, "-r", corpus["ref.de"], *systems[1:], "--baseline", systems[0],
                       "--metrics", "bleu,chrf", "--paired-test", test, "--paired-bs-n", 300,
                       "--paired-ar-n", 300, "--seed", 7, "-f", "json")
    assert code == 0 and os.environ.get("SACREBLEU_SEED") == seed_before
    doc = json.loads(out)
    assert doc["paired_test"] == {"test": test, "baseline": str(systems[0]), "n_samples": 300,
                                  "bs_n": 300, "seed": 7}
    ref = [lines_of(corpus["ref.de"])]
    monkeypatch.setenv("SACREBLEU_SEED", "7")
    metrics = {"bleu": BLEU(references=ref), "chrf": CHRF(references=ref)}
    signatures, table = PairedTest(
        [(str(p), lines_of(p)) for p in systems], metrics, references=None, test_type=test,
        n_samples=300, n_ar_confidence=300 if test == "ar" else -1)()
    ours = doc["sets"][0]["systems"]
    assert [s["name"] for s in ours] == [str(p) for p in systems]
    assert [s["baseline"] for s in ours] == [True, False, False]
    for m, name in (("bleu", "BLEU"), ("chrf", "chrF2")):
        for system, expected in zip(ours, table[name]):
            got = system["scores"][m]
            assert (got["score"], got["mean"], got["ci"], got["p_value"]) == (
                expected.score, expected.mean, expected.ci, expected.p_value)
            assert got["signature"] == signatures[name].format()
    code, out, _ = cli(capsys, "-r", corpus["ref.de"], *systems[1:], "--baseline", systems[0],
                       "--metrics", "bleu", "--paired-test", test, "--paired-bs-n", 300,
                       "--paired-ar-n", 300, "--seed", 7)
    p = table["BLEU"][1].p_value
    assert f"p = {p:.4f}{'*' if p < 0.05 else ''}" in out and "(baseline)" in out
    assert "seed 7" in out and "seed:7|" in out


def test_sentence_scores(capsys, corpus):
    code, out, _ = cli(capsys, "-r", corpus["ref.de"], "-r", corpus["ref2.de"], corpus["a.de"],
                       corpus["c.de"], "--sentence")
    assert code == 0
    records = [json.loads(line) for line in out.splitlines()]
    assert len(records) == 2 * N
    assert [r["id"] for r in records[:3]] == [0, 1, 2]
    assert records[N]["system"] == str(corpus["c.de"]) and records[N]["id"] == 0
    refs = [lines_of(corpus["ref.de"]), lines_of(corpus["ref2.de"])]
    bleu, chrf, ter = BLEU(effective_order=True), CHRF(), TER()
    for record in records[:20]:
        sent_refs = [stream[record["id"]] for stream in refs]
        assert record["refs"] == sent_refs
        assert record["scores"] == {
            "bleu": bleu.sentence_score(record["hyp"], sent_refs).score,
            "chrf": chrf.sentence_score(record["hyp"], sent_refs).score,
            "ter": ter.sentence_score(record["hyp"], sent_refs).score,
        }


def test_sets_from_yaml(capsys, corpus, tmp_path):
    base = corpus["ref.de"].parent
    sets = tmp_path / "sets.yaml"
    sets.write_text(
        f"t2016:\n  refs: {base / 'ref.de'}\n"
        f"  hyps: {{rnn: {base / 'a.de'}, tf: {base / 'c.de'}}}\n"
        f"tok:\n  refs: [{base / 'ref.tok.de'}]\n  hyps:\n    tf: {base / 'a.tok.de'}\n",
        encoding="utf-8")
    code, out, _ = cli(capsys, "--sets", sets, "--metric", "bleu", "-f", "json")
    assert code == 0
    doc = json.loads(out)
    assert [s["name"] for s in doc["sets"]] == ["t2016", "tok"]
    assert [[x["name"] for x in s["systems"]] for s in doc["sets"]] == [["rnn", "tf"], ["tf"]]
    expected = BLEU(references=[lines_of(corpus["ref.tok.de"])])
    assert doc["sets"][1]["systems"][0]["scores"]["bleu"]["score"] == expected.corpus_score(
        lines_of(corpus["a.tok.de"]), None).score
    code, out, _ = cli(capsys, "--sets", sets, "--metric", "bleu")
    assert "t2016" in out and "tok" in out and "rnn" in out
    assert next(line for line in out.splitlines() if "rnn" in line).rstrip(" │").endswith("-")


def test_yaml_paths_are_relative_to_the_file(capsys, corpus):
    sets = corpus["ref.de"].parent / "relative.yaml"
    sets.write_text("t:\n  refs: ref.de\n  hyps: {a: a.de, b: c.de}\n", encoding="utf-8")
    code, out, _ = cli(capsys, "--sets", sets, "--metric", "chrf", "--baseline", "b",
                       "--paired-bs-n", 50)
    assert code == 0 and "b (baseline)" in out


def test_stdin_hypothesis(capsys, corpus, monkeypatch):
    data = corpus["a.de"].read_bytes()
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(data), encoding="utf-8"))
    code, out, _ = cli(capsys, "-r", corpus["ref.de"], "-", "--metric", "bleu", "-f", "json")
    expected = BLEU(references=[lines_of(corpus["ref.de"])]).corpus_score(lines_of(corpus["a.de"]),
                                                                          None)
    assert code == 0 and json.loads(out)["sets"][0]["systems"][0]["scores"]["bleu"]["score"] == (
        expected.score)


def test_read_lines_and_parse_metrics(tmp_path):
    crlf = tmp_path / "crlf.txt"
    crlf.write_bytes(b"a b\r\nc\x1cd\r\n\n")  # \x1c is not a line break for sacrebleu either
    assert read_lines(crlf) == ["a b", "c\x1cd", ""]
    assert parse_metrics(None) == ("bleu", "chrf", "ter")
    assert parse_metrics(["BLEU,chrf++", "ter", "bleu"]) == ("bleu", "chrf++", "ter")
    with pytest.raises(UsageError, match="did you mean 'chrf'"):
        parse_metrics(["chfr"])
    assert ScoringOptions(lowercase=True, tokenize="none").convention == "paper"
    assert ScoringOptions().convention == "sacrebleu"
    assert ScoringOptions(tokenize="intl").convention == "custom"


ERRORS = {  # id: (arguments, message); {name} stands for a file of the test below
    "hyp-lines": (["-r", "{ref}", "{short}"],
                  "hypothesis '{short}' has 3 lines but reference '{ref}' has 200"),
    "ref-lines": (["-r", "{ref}", "-r", "{short}", "{a}"],
                  "reference '{short}' has 3 lines but '{ref}' has 200"),
    "empty": (["-r", "{ref}", "{empty}"], "'{empty}' is empty"),
    "missing": (["-r", "{ref}", "{dir}/missing.de"], "no such file: '{dir}/missing.de'"),
    "directory": (["-r", "{ref}", "{dir}"], "'{dir}' is a directory"),
    "nul-bytes": (["-r", "{ref}", "{nul}"], "binary file"),
    "not-utf8": (["-r", "{ref}", "{latin1}"], "'{latin1}' is not valid UTF-8 (line 2"),
    "metric": (["-r", "{ref}", "{a}", "--metric", "bleu,blue"], "unknown metric 'blue'"),
    "tokenizer": (["-r", "{ref}", "{a}", "--tokenize", "moses"], "unknown BLEU tokenizer 'moses'"),
    "format": (["-r", "{ref}", "{a}", "-f", "xml"], "unknown format 'xml'"),
    "sentence-format": (["-r", "{ref}", "{a}", "--sentence", "-f", "tsv"], "must be jsonl"),
    "sentence-baseline": (["-r", "{ref}", "{a}", "--sentence", "--baseline", "{a}"], "--baseline"),
    "twice": (["-r", "{ref}", "{a}", "{a}"], "given twice"),
    "baseline-alone": (["-r", "{ref}", "{a}", "--baseline", "{a}"],
                       "the baseline is its only system"),
    "paired-test": (["-r", "{ref}", "{a}", "--baseline", "{ref}", "--paired-test", "boot"],
                    "unknown paired test"),
    "seed": (["-r", "{ref}", "{a}", "--seed", "0"], "--seed"),
    "no-ref": (["{a}"], "give -r REF and at least one HYP"),
    "yaml-key": (["--sets", "{yaml_bad_key}"], "unknown key 'ref' (did you mean 'refs'?)"),
    "yaml-syntax": (["--sets", "{yaml_invalid}"], "is not valid YAML"),
    "yaml-baseline": (["--sets", "{yaml_ok}", "--baseline", "nobody"],
                      "baseline 'nobody' is not a system of set 't'"),
    "yaml-and-ref": (["--sets", "{yaml_ok}", "-r", "{ref}"], "not both"),
}


@pytest.mark.parametrize(("args", "message"), ERRORS.values(), ids=ERRORS)
def test_errors_exit_2_with_one_line(capsys, corpus, tmp_path, args, message):
    files = {"short": "a\nb\nc\n", "empty": "", "yaml_bad_key": "t: {ref: x, hyps: {a: y}}\n",
             "yaml_invalid": "t: [\n", "yaml_ok": f"t: {{refs: {corpus['ref.de']}, "
                                                  f"hyps: {{a: {corpus['a.de']}}}}}\n"}
    paths = {name: tmp_path / name for name in [*files, "nul", "latin1"]}
    for name, text in files.items():
        paths[name].write_text(text, encoding="utf-8")
    paths["nul"].write_bytes(b"text\0more\n")
    paths["latin1"].write_bytes("ok\nFußball\n".encode("latin-1"))
    names = {"ref": corpus["ref.de"], "a": corpus["a.de"], "dir": tmp_path, **paths}
    code, out, err = cli(capsys, *(a.format(**names) for a in args))
    assert code == 2
    assert out == ""
    assert err.startswith("error:") and err.count("\n") == 1
    assert message.format(**names) in err


def test_no_torch_and_no_sacrebleu_at_startup(corpus):
    align = corpus["ref.de"].parent / "x.align"
    align.write_text("0-0 1-1\n", encoding="utf-8")
    script = f"""
import sys
from seqattn.cli import run
assert run(["--help"]) == 0
assert "sacrebleu" not in sys.modules, "seqattn --help imported sacrebleu"
assert run(["evaluate", "--help"]) == 0
assert "sacrebleu" not in sys.modules, "seqattn evaluate --help imported sacrebleu"
assert run(["evaluate", "-r", {str(corpus["ref.de"])!r}, {str(corpus["a.de"])!r},
            "-f", "json"]) == 0
assert run(["evaluate", "-r", {str(corpus["ref.de"])!r}, {str(corpus["a.de"])!r},
            {str(corpus["c.de"])!r}, "--baseline", {str(corpus["c.de"])!r}, "--paired-bs-n", "20",
            "--metric", "bleu"]) == 0
assert "sacrebleu" in sys.modules
assert run(["evaluate", "--align", {str(align)!r}, "--gold", {str(align)!r}]) == 0
assert "torch" not in sys.modules, "seqattn evaluate imported torch"
"""
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                            timeout=120)
    assert result.returncode == 0, result.stderr


def test_model_mode_translates_then_scores(tiny_transformer, tmp_path, capsys):
    import sacrebleu

    from seqattn.cli import run as cli_run
    from tests.conftest import SAMPLE

    src, ref = tmp_path / "src.en", tmp_path / "ref.de"
    src.write_text("\n".join((SAMPLE / "valid.en").read_text().splitlines()[:8]) + "\n")
    ref.write_text("\n".join((SAMPLE / "valid.de").read_text().splitlines()[:8]) + "\n")
    hyp = tmp_path / "hyp.de"
    code = cli_run(["evaluate", "-m", str(tiny_transformer), "--src", str(src), "-r", str(ref),
                    "--beam", "2", "--save-hyp", str(hyp), "-f", "json", "--metrics", "bleu"])
    assert code == 0
    data = json.loads(capsys.readouterr().out)
    hyps = hyp.read_text(encoding="utf-8").splitlines()
    assert len(hyps) == 8
    expected = sacrebleu.corpus_bleu(hyps, [ref.read_text(encoding="utf-8").splitlines()])
    (system,) = data["sets"][0]["systems"]
    assert system["scores"]["bleu"]["score"] == pytest.approx(expected.score)


@pytest.mark.parametrize("args, message", [
    (["-m", "x", "-r", "r.de"], "model mode needs all of"),
    (["--beam", "3", "-r", "r.de", "h.de"], "belong to model mode"),
])
def test_model_mode_usage_errors(args, message, capsys):
    from seqattn.cli import run as cli_run

    assert cli_run(["evaluate", *args]) == 2
    assert message in capsys.readouterr().err


def test_paper_convention_is_moses_tokenized_lowercased_bleu(tmp_path, capsys):
    """--paper adds BLEU as published Multi30k figures compute it; checked against sacremoses
    and sacrebleu called directly (tokenize, lowercase, BLEU on the tokens)."""
    import json

    import sacrebleu
    from sacremoses import MosesTokenizer

    from seqattn.cli import run

    data = Path(__file__).resolve().parents[2] / "shared" / "data" / "multi30k"
    refs = (data / "val.de").read_text(encoding="utf-8").splitlines()[:300]
    hyps = [" ".join(r.split()[::-1]) if k % 3 == 0 else r.replace(",", " ,") + " Ja"
            for k, r in enumerate(refs)]            # wrong in varied ways, commas and casing
    ref_file, hyp_file = tmp_path / "val.de", tmp_path / "hyp.de"
    ref_file.write_text("\n".join(refs) + "\n", encoding="utf-8")
    hyp_file.write_text("\n".join(hyps) + "\n", encoding="utf-8")
    tok = MosesTokenizer("de")

    def paper(lines):
        return [tok.tokenize(x, escape=False, return_str=True).lower() for x in lines]

    want = sacrebleu.corpus_bleu(paper(hyps), [paper(refs)], tokenize="none", force=True).score
    capsys.readouterr()
    assert run(["evaluate", "-r", str(ref_file), str(hyp_file), "--paper", "-f", "json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    scores = doc["sets"][0]["systems"][0]["scores"]
    assert scores["bleu-paper"]["score"] == pytest.approx(want, abs=1e-9)
    assert scores["bleu"]["score"] != pytest.approx(want, abs=0.01)   # a different convention
    assert "tok:moses-de" in doc["sets"][0]["signatures"]["bleu-paper"]
    assert doc["repro"]["sacrebleu"] == sacrebleu.__version__
