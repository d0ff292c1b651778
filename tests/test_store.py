"""The encoded, memory-mapped training corpus (issue 18): the same pairs as encode_corpus
gives, kept in the run directory, reused while its inputs hold, never read half-written."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from seqattn import store
from seqattn.data import encode_corpus, lengths, read_parallel
from seqattn.vocab import Vocab, segment
from tests.conftest import SAMPLE


@pytest.fixture(scope="module")
def vocab(tiny_transformer) -> Vocab:
    return Vocab(tiny_transformer / "spm.model")


@pytest.fixture
def files(tmp_path) -> tuple[Path, Path]:
    src = (SAMPLE / "train.en").read_text(encoding="utf-8").splitlines()[:300]
    tgt = (SAMPLE / "train.de").read_text(encoding="utf-8").splitlines()[:300]
    src[5], tgt[7] = "", "   "                       # two empty pairs
    src[9] = " ".join(["dog"] * 150)                  # one too long for max_len 100
    (tmp_path / "t.en").write_text("\n".join(src) + "\n", encoding="utf-8")
    (tmp_path / "t.de").write_text("\n".join(tgt) + "\n", encoding="utf-8")
    return tmp_path / "t.en", tmp_path / "t.de"


def _diagonal(pairs):
    return [[(i, i) for i in range(min(len(s.split()), len(t.split())))] for s, t in pairs]


def test_the_store_holds_what_encode_corpus_gives(files, vocab, tmp_path, tiny_transformer):
    pairs = read_parallel(*files)
    links = _diagonal(pairs)
    ref = encode_corpus(pairs, vocab, vocab, 100, links)
    got = store.stored_corpus(tmp_path / "corpus", *files, vocab, vocab, 100,
                              [tiny_transformer / "spm.model"], links)
    assert got.skipped_empty == ref.skipped_empty == 2 and ref.skipped_long >= 1
    assert len(got) == len(ref) and got.skipped_long == ref.skipped_long
    assert list(got.src) == ref.src and list(got.tgt) == ref.tgt
    assert list(lengths(got.src)) == [len(s) for s in ref.src]
    assert list(got.links) == ref.links and got.unusable_links == ref.unusable_links
    assert got.src[3] == ref.src[3] and got.src[-1] == ref.src[-1]


def test_nothing_of_the_store_is_copied_into_process_memory(files, vocab, tmp_path,
                                                             tiny_transformer):
    """Ids, lengths and offsets are memory maps of the store's files (page cache, shared by
    every rank), and the offsets on disk are where each pair's ids start."""
    import numpy as np

    pairs = read_parallel(*files)
    got = store.stored_corpus(tmp_path / "corpus", *files, vocab, vocab, 100,
                              [tiny_transformer / "spm.model"], _diagonal(pairs))
    for ragged in (got.src, got.tgt, got.links.pairs):
        assert all(isinstance(a, np.memmap) for a in (ragged.flat, ragged.lens, ragged.offsets))
        assert ragged.offsets[0] == 0 and len(ragged.offsets) == len(ragged.lens) + 1
        assert (np.diff(ragged.offsets) == ragged.lens).all()
        assert ragged.offsets[-1] == len(ragged.flat)
    assert isinstance(lengths(got.tgt), np.memmap)


def test_batches_are_int32_views_and_cover_every_pair_once():
    import numpy as np

    from seqattn.batching import bucket_batches

    rng = np.random.default_rng(0)
    src, tgt = rng.integers(1, 60, 5000), rng.integers(1, 60, 5000)
    batches = bucket_batches(src, tgt, 600, seed=3)
    assert all(b.dtype == np.int32 for b in batches)
    assert sorted(np.concatenate(batches).tolist()) == list(range(5000))
    for b in batches:                               # the padded size stays within the budget
        assert len(b) * (max(src[b].max(), tgt[b].max()) + 1) <= 600
    again = bucket_batches(src.tolist(), tgt.tolist(), 600, seed=3)   # lists work the same
    assert all(np.array_equal(a, b) for a, b in zip(batches, again))


def test_the_store_is_reused_and_rebuilt_when_an_input_changes(files, vocab, tmp_path,
                                                               tiny_transformer, monkeypatch):
    spm = [tiny_transformer / "spm.model"]
    first = store.stored_corpus(tmp_path / "corpus", *files, vocab, vocab, 100, spm)
    built = []
    real = store._build
    monkeypatch.setattr(store, "_build", lambda *a: built.append(1) or real(*a))
    again = store.stored_corpus(tmp_path / "corpus", *files, vocab, vocab, 100, spm)
    assert built == [] and list(again.src) == list(first.src)
    files[0].write_text("A dog.\n" * 300, encoding="utf-8")          # a changed file
    changed = store.stored_corpus(tmp_path / "corpus", *files, vocab, vocab, 100, spm)
    assert built == [1] and changed.src[0] == segment(vocab.sp, "A dog.").ids
    store.stored_corpus(tmp_path / "corpus", *files, vocab, vocab, 90, spm)  # other max_len
    assert built == [1, 1]


def test_a_half_written_store_is_never_used(files, vocab, tmp_path, tiny_transformer,
                                            monkeypatch):
    spm = [tiny_transformer / "spm.model"]

    def killed(*args):
        raise KeyboardInterrupt

    with monkeypatch.context() as m:
        m.setattr(store, "_write", killed)
        with pytest.raises(KeyboardInterrupt):
            store.stored_corpus(tmp_path / "corpus", *files, vocab, vocab, 100, spm)
    assert not (tmp_path / "corpus").exists()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".corpus")]
    ok = store.stored_corpus(tmp_path / "corpus", *files, vocab, vocab, 100, spm)
    assert len(ok) == len(encode_corpus(read_parallel(*files), vocab, vocab, 100))


def test_a_training_run_keeps_its_store_and_resume_reuses_it(tmp_path):
    from seqattn.config import config_from_dict
    from seqattn.train import train
    from tests.test_train import _corpus

    cfg = config_from_dict({}, _corpus(tmp_path) + ["training.max_steps=2",
                                                    "training.valid_every=2"])
    train(cfg, tmp_path / "run")
    meta = tmp_path / "run" / "corpus" / "meta.json"
    stamp = meta.stat().st_mtime_ns
    train(config_from_dict({}, _corpus(tmp_path) + ["training.max_steps=4",
                                                     "training.valid_every=2"]),
          tmp_path / "run", resume=True)
    assert meta.stat().st_mtime_ns == stamp                           # not rebuilt


def test_length_ratio_filtering_is_counted(files, vocab, tmp_path, tiny_transformer):
    """data.max_ratio: a pair whose longer side has more than r times the pieces of the shorter
    is skipped and counted; the kept pairs are encode_corpus's pairs within the ratio."""
    ref = encode_corpus(read_parallel(*files), vocab, vocab, 100)
    within = [(s, t) for s, t in zip(ref.src, ref.tgt)
              if max(len(s), len(t)) <= 1.3 * max(1, min(len(s), len(t)))]
    assert 0 < len(within) < len(ref)
    got = store.stored_corpus(tmp_path / "corpus", *files, vocab, vocab, 100,
                              [tiny_transformer / "spm.model"], max_ratio=1.3)
    assert list(zip(got.src, got.tgt)) == within
    assert got.skipped_ratio == len(ref) - len(within) and got.skipped_long == ref.skipped_long


def test_training_reports_the_ratio_filter(tmp_path, capsys):
    from seqattn.cli import run
    from tests.test_train import _corpus

    args = ["train", "--out", str(tmp_path / "run"), "--set", "training.max_steps=1",
            "--set", "training.valid_every=1", "--set", "data.max_ratio=1.2"]
    for item in _corpus(tmp_path):
        args += ["--set", item]
    assert run(args) == 0
    err = capsys.readouterr().err
    assert "with a length ratio above 1.2 skipped" in err
    assert run(["train", "--out", str(tmp_path / "x"), "--set", "data.max_ratio=0.5"]) == 2
    assert "data.max_ratio must be >= 1" in capsys.readouterr().err


def test_epoch_sample_draws_each_corpus_its_weight_times():
    from collections import Counter

    sample = store.epoch_sample([3, 4], [1.0, 2.5], seed=7)
    counts = Counter(sample.tolist())
    assert len(sample) == 3 + 10
    assert all(counts[i] == 1 for i in range(3))                 # the main corpus once
    assert sorted(counts[i] for i in range(3, 7)) == [2, 2, 3, 3]  # twice, half of them thrice
    assert (store.epoch_sample([3, 4], [1.0, 2.5], seed=7) == sample).all()
    other = {tuple(store.epoch_sample([3, 40], [1.0, 0.5], seed=s).tolist()) for s in range(5)}
    assert len(other) > 1                                         # another draw each epoch
    assert len(store.epoch_sample([3, 40], [0.0, 0.5], seed=1)) == 20


def test_joined_corpora_read_as_one(files, vocab, tmp_path, tiny_transformer):
    spm = [tiny_transformer / "spm.model"]
    a = store.stored_corpus(tmp_path / "a", *files, vocab, vocab, 100, spm)
    b = store.stored_corpus(tmp_path / "b", *files, vocab, vocab, 50, spm)
    both = store.joined([a, b])
    assert len(both) == len(a) + len(b) and list(both.src) == list(a.src) + list(b.src)
    assert both.src[len(a)] == b.src[0] and both.tgt[-1] == b.tgt[-1]
    assert list(lengths(both.tgt)) == list(lengths(a.tgt)) + list(lengths(b.tgt))
    assert both.skipped_long == a.skipped_long + b.skipped_long


def test_training_on_weighted_corpora(tmp_path, capsys):
    from seqattn.cli import run
    from tests.test_train import _corpus

    base = _corpus(tmp_path)
    extra = tmp_path / "extra"
    extra.mkdir()
    for lang in ("en", "de"):
        lines = (SAMPLE / f"train.{lang}").read_text(encoding="utf-8").splitlines()[200:260]
        (extra / f"x.{lang}").write_text("\n".join(lines) + "\n", encoding="utf-8")
    args = ["train", "--out", str(tmp_path / "run"), "--set", "training.max_steps=2",
            "--set", "training.valid_every=2", "--set",
            f"data.corpora=[{{src: {extra / 'x.en'}, tgt: {extra / 'x.de'}, weight: 2}}]"]
    for item in base:
        args += ["--set", item]
    assert run(args) == 0
    err = capsys.readouterr().err
    found = re.search(r"x\.en: (\d+) pairs kept .* weight 2: (\d+) per epoch", err)
    assert found and int(found[2]) == 2 * int(found[1]) and 50 < int(found[1]) <= 60
    assert (tmp_path / "run" / "corpus-1" / "meta.json").is_file()
    guided = args[:2] + [str(tmp_path / "g")] + args[3:] + [
        "--set", f"training.guided_alignment={extra / 'x.en'}"]
    assert run(guided) == 2
    assert "data.corpora and training.guided_alignment" in capsys.readouterr().err


def test_encoding_reports_its_progress_chunk_by_chunk(files, vocab, tmp_path, tiny_transformer,
                                                      monkeypatch):
    heard: list[int] = []
    monkeypatch.setattr(store, "CHUNK", 70)                # 300 lines: 5 chunks
    store.stored_corpus(tmp_path / "corpus", *files, vocab, vocab, 100,
                        [tiny_transformer / "spm.model"], progress=heard.append)
    assert heard == [70, 140, 210, 280, 300]
    store.stored_corpus(tmp_path / "corpus", *files, vocab, vocab, 100,   # reused: no work
                        [tiny_transformer / "spm.model"], progress=heard.append)
    assert heard == [70, 140, 210, 280, 300]


def test_the_cli_draws_an_encoding_bar_on_a_terminal_only():
    import io

    from rich.console import Console

    from seqattn.cli.train import RichReporter

    term = Console(file=io.StringIO(), force_terminal=True, width=100)
    reporter = RichReporter(console=term)
    reporter.encoding("train.en", 40_000, 100_000)
    assert reporter.progress is not None
    assert reporter.progress.tasks[0].completed == 40_000
    assert reporter.progress.tasks[0].total == 100_000
    reporter.encoding("train.en", 100_000, 100_000)   # done: the bar goes
    assert reporter.progress is None
    assert "encoding train.en" in term.file.getvalue()
    plain = RichReporter(console=Console(file=io.StringIO(), width=100))
    plain.encoding("train.en", 40_000, 100_000)
    assert plain.progress is None and plain.console.file.getvalue() == ""


def test_guided_links_are_read_in_step_with_the_text(files, vocab, tmp_path, tiny_transformer,
                                                     monkeypatch):
    """The Pharaoh file is streamed chunk by chunk beside the text (never held whole), and the
    store holds the same links as from a list."""
    from seqattn.data import iter_pharaoh

    pairs = read_parallel(*files)
    links = _diagonal(pairs)
    path = tmp_path / "links.txt"
    path.write_text("".join(" ".join(f"{i}-{j}" for i, j in x) + "\n" for x in links))
    monkeypatch.setattr(store, "CHUNK", 70)
    streamed = store.stored_corpus(tmp_path / "a", *files, vocab, vocab, 100,
                                   [tiny_transformer / "spm.model"], iter_pharaoh(path), path)
    listed = store.stored_corpus(tmp_path / "b", *files, vocab, vocab, 100,
                                 [tiny_transformer / "spm.model"], links, path)
    assert list(streamed.links) == list(listed.links)
    assert sum(1 for x in streamed.links if x) > 250
