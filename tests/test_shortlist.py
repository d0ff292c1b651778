"""The vocabulary shortlist (issue 20, part 4): counts against a plain-Python reference, beam
search over a shortlist against beam search over the whole vocabulary with every other piece
masked, and the CLI (build, translate --shortlist, export, errors)."""

from __future__ import annotations

import random
import shutil
from collections import Counter

import pytest
import torch

import seqattn
from seqattn.checkpoint import SHORTLIST
from seqattn.cli import run
from seqattn.data import pad_sources
from seqattn.decode import beam_search
from seqattn.errors import CheckpointError, UsageError
from seqattn.shortlist import Shortlist, build_shortlist, load_shortlist
from seqattn.vocab import EOS, UNK
from tests.conftest import SAMPLE


def _reference(pairs, src_size, tgt_size, per_source, frequent):
    """The shortlist by the module docstring's definition, in plain Python."""
    c_s, c_t, c_st = Counter(), Counter(), Counter()
    for src, tgt in pairs:
        s, t = set(src), set(tgt)
        if not s or not t:
            continue
        c_s.update(s)
        c_t.update(t)
        c_st.update((a, b) for a in s for b in t)
    table = []
    for a in range(src_size):
        scored = [(-2 * n / (c_s[a] + c_t[b]), b) for (x, b), n in c_st.items() if x == a]
        table.append([b for _, b in sorted(scored)[:per_source]])
    common = sorted((b for b in c_t), key=lambda b: (-c_t[b], b))[:frequent]
    return table, sorted(set(common) | {UNK, EOS})


def test_counts_and_dice_match_a_plain_python_reference():
    rnd = random.Random(3)
    src_size, tgt_size = 40, 30
    pairs = []
    for _ in range(300):
        src = [rnd.randrange(4, src_size) for _ in range(rnd.randint(0, 8))]
        # target pieces that depend on the source (so Dice has something to find), plus noise
        tgt = [(a * 7) % tgt_size for a in src if rnd.random() < 0.8]
        tgt += [rnd.randrange(4, tgt_size) for _ in range(rnd.randint(0, 3))]
        pairs.append((src, tgt))
    built = build_shortlist(pairs, src_size, tgt_size, per_source=3, frequent=5)
    table, always = _reference(pairs, src_size, tgt_size, 3, 5)
    got = [[b for b in row if b >= 0] for row in built.candidates.tolist()]
    assert got == table
    assert built.always.tolist() == always
    assert built.pairs == sum(1 for s, t in pairs if s and t)
    assert got[5][0] == 35 % tgt_size          # the planted translation ranks first


def test_a_batch_gets_the_union_of_its_pieces_candidates():
    cands = torch.tensor([[-1, -1], [-1, -1], [-1, -1], [-1, -1], [7, 9], [9, -1]]).int()
    short = Shortlist(cands.numpy(), torch.tensor([1, 3]).int().numpy(), 12, 1)
    src = torch.tensor([[4, 5, 3], [5, 0, 0]])               # pad (0) and eos rows are empty
    assert short.for_sources(src).tolist() == [1, 3, 7, 9]


def test_bad_sizes_and_ids_are_refused():
    with pytest.raises(UsageError, match="--per-source must be at least 1"):
        build_shortlist([([4], [5])], 10, 10, per_source=0)
    with pytest.raises(UsageError, match="outside the vocabularies"):
        build_shortlist([([4], [12])], 10, 10)
    with pytest.raises(UsageError, match="no sentence pair"):
        build_shortlist([([], [5])], 10, 10)


class _Masked(torch.nn.Module):
    """A model whose logits are -inf outside ``vocab``: beam search over it is what the
    shortlist promises (the softmax of the rest, renormalised)."""

    def __init__(self, model, vocab):
        super().__init__()
        self.model = model
        self.mask = torch.full((model.output_layer().weight.size(0),), float("-inf"))
        self.mask[vocab] = 0.0

    def encode(self, *a):
        return self.model.encode(*a)

    def init_state(self, memory):
        return self.model.init_state(memory)

    def step(self, prev, state, memory, project=True):
        logits, state, w = self.model.step(prev, state, memory)
        return logits + self.mask, state, w


def test_beam_over_a_shortlist_equals_beam_with_the_rest_masked(tiny_model):
    tr = seqattn.load(tiny_model)
    lines = (SAMPLE / "test.en").read_text(encoding="utf-8").splitlines()[:6]
    src, src_pad = pad_sources(tr.src_vocab.encode(lines))
    V = tr.model.output_layer().weight.size(0)
    vocab = torch.tensor(sorted({UNK, EOS, *random.Random(0).sample(range(4, V), 40)}))
    short = beam_search(tr.model, src, src_pad, 3, 8, n_best=2, alpha=0.6, min_len=3,
                        vocab=vocab)
    masked = beam_search(_Masked(tr.model, vocab), src, src_pad, 3, 8, n_best=2, alpha=0.6,
                         min_len=3)
    full = beam_search(tr.model, src, src_pad, 3, 8, n_best=2, alpha=0.6)
    allowed = set(vocab.tolist())
    for a, b in zip(short, masked):
        assert all(len(h.tokens) > 3 for h in a)              # min_len on the eos column
        assert [h.tokens for h in a] == [h.tokens for h in b]
        assert [h.score for h in a] == pytest.approx([h.score for h in b], abs=1e-5)
        assert all(set(h.tokens) <= allowed for h in a)
    assert any(set(h.tokens) - allowed for hyps in full for h in hyps)  # it did restrict
    # the whole vocabulary as a shortlist is no shortlist
    whole = beam_search(tr.model, src, src_pad, 3, 8, n_best=2, alpha=0.6,
                        vocab=torch.arange(V))
    for a, b in zip(whole, full):
        assert [h.tokens for h in a] == [h.tokens for h in b]
        assert [h.score for h in a] == pytest.approx([h.score for h in b], abs=1e-5)
    with pytest.raises(ValueError, match="end-of-sentence"):
        beam_search(tr.model, src, src_pad, 3, 8, vocab=torch.tensor([5, 6]))


@pytest.fixture()
def model_copy(tiny_transformer, tmp_path):
    return shutil.copytree(tiny_transformer, tmp_path / "m")


def test_cli_builds_uses_and_exports_a_shortlist(model_copy, tmp_path, capsys):
    src, tgt = SAMPLE / "train.en", SAMPLE / "train.de"
    assert run(["-q", "shortlist", str(model_copy), "--src", str(src), "--tgt", str(tgt),
                "--per-source", "5", "--frequent", "20"]) == 0
    path = model_copy / SHORTLIST
    vocab = seqattn.load(model_copy).src_vocab
    short = load_shortlist(model_copy, len(vocab), len(vocab))
    assert short.candidates.shape == (len(vocab), 5) and short.always.size >= 20
    assert short.pairs == sum(1 for line in src.read_text(encoding="utf-8").splitlines())
    before = path.read_bytes()
    capsys.readouterr()
    # a second build without --force: one line, exit 2, the file unchanged
    assert run(["shortlist", str(model_copy), "--src", str(src), "--tgt", str(tgt)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "exists; --force replaces it" in err[0]
    assert path.read_bytes() == before
    # translating with it (the 5 lines are one batch): only the batch's candidate pieces
    lines = (SAMPLE / "test.en").read_text(encoding="utf-8").splitlines()[:5]
    tr = seqattn.load(model_copy, shortlist=True)
    outs = tr.translate(lines, beam=3, max_len=8, split_sentences=False)
    sources = sorted({i for out in outs for i in out.src.ids})
    allowed = set(short.always.tolist()) | set(short.candidates[sources].reshape(-1).tolist())
    produced = {tr.tgt_vocab.sp.piece_to_id(p) for out in outs for p in out.hyps[0].pieces}
    assert produced and produced <= allowed
    # --force rebuilds it (other sizes)
    assert run(["-q", "shortlist", str(model_copy), "--src", str(src), "--tgt", str(tgt),
                "--per-source", "7", "--force"]) == 0
    assert load_shortlist(model_copy, len(vocab), len(vocab)).candidates.shape[1] == 7
    # a shortlist of the whole vocabulary is no shortlist: the same translations
    V = len(vocab)
    Shortlist(short.candidates, torch.arange(V).int().numpy(), V, 1).save(path)
    plain = [t.text for t in seqattn.load(model_copy).translate(lines, beam=3, max_len=8)]
    every = [t.text for t in seqattn.load(model_copy, shortlist=True).translate(
        lines, beam=3, max_len=8)]
    assert every == plain
    capsys.readouterr()
    assert run(["-q", "translate", "-m", str(model_copy), "--shortlist", "--beam", "3",
                "--max-len", "8", *lines]) == 0
    assert capsys.readouterr().out.splitlines() == plain
    # jsonl says which shortlist searched (its hash), and nothing without one
    import hashlib
    import json

    digest = hashlib.sha256(path.read_bytes()).hexdigest()[:16]
    for flag, expected in ((["--shortlist"], digest), ([], None)):
        assert run(["-q", "translate", "-m", str(model_copy), *flag, "-f", "jsonl", "x"]) == 0
        record = json.loads(capsys.readouterr().out)
        assert record["repro"]["decoding"].get("shortlist_sha256") == expected
    # export carries it
    assert run(["-q", "export", str(model_copy), str(tmp_path / "e")]) == 0
    assert (tmp_path / "e" / SHORTLIST).read_bytes() == path.read_bytes()


@pytest.mark.parametrize("args, message", [
    (["--per-source", "0"], "--per-source must be at least 1; got 0"),
    (["--frequent", "-1"], "--frequent must be 0 or more; got -1"),
    (["--src", "/nonexistent/x.en"], "--src '/nonexistent/x.en' is not a file"),
])
def test_cli_shortlist_bad_input(model_copy, args, message, capsys):
    full = ["shortlist", str(model_copy), "--src", str(SAMPLE / "train.en"), "--tgt",
            str(SAMPLE / "train.de")]
    for i in range(0, len(args), 2):      # replace or add the option
        if args[i] in full:
            full[full.index(args[i]) + 1] = args[i + 1]
        else:
            full += args[i:i + 2]
    assert run(full) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: ") and message in err[0]
    assert not (model_copy / SHORTLIST).exists()


def test_translate_shortlist_without_one_or_through_ctranslate2(model_copy, tmp_path, capsys):
    assert run(["translate", "-m", str(model_copy), "--shortlist", "x"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "has no vocabulary shortlist (shortlist.safetensors)" in err[0]
    pytest.importorskip("ctranslate2")
    assert run(["-q", "export", str(model_copy), str(tmp_path / "c"), "--format",
                "ctranslate2"]) == 0
    capsys.readouterr()
    assert run(["translate", "-m", str(tmp_path / "c"), "--shortlist", "x"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "--shortlist is for the native engine" in err[0]


def test_a_shipped_model_is_never_changed(capsys):
    from seqattn.shipped import resolve_model

    shipped = resolve_model("en-de") / SHORTLIST
    before = shipped.read_bytes()
    assert run(["shortlist", "en-de", "--src", str(SAMPLE / "train.en"), "--tgt",
                str(SAMPLE / "train.de"), "--force"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "is a shipped model and is never changed" in err[0]
    assert shipped.read_bytes() == before


def test_the_shipped_en_de_shortlist_translates():
    tr = seqattn.load("en-de", device="cpu", shortlist=True)
    assert tr.shortlist is not None and tr.shortlist.pairs == 29000
    (out,) = tr.translate(["A dog runs in the park."], beam=5)
    assert out.text and out.hyps[0].score < 0


def test_a_shortlist_of_another_vocabulary_is_refused(model_copy):
    vocab = seqattn.load(model_copy).src_vocab
    V = len(vocab)
    Shortlist(torch.zeros(V + 1, 2).int().numpy(), torch.tensor([3]).int().numpy(), V,
              1).save(model_copy / SHORTLIST)
    with pytest.raises(CheckpointError, match="does not fit this model's vocabularies"):
        load_shortlist(model_copy, V, V)
    # the right sizes, but counted with another sentencepiece model (its hash), or no eos
    Shortlist(torch.zeros(V, 2).int().numpy(), torch.tensor([1, 3]).int().numpy(), V, 1,
              "0" * 64).save(model_copy / SHORTLIST)
    with pytest.raises(CheckpointError, match="does not fit this model's vocabularies"):
        load_shortlist(model_copy, V, V)
    Shortlist(torch.zeros(V, 2).int().numpy(), torch.tensor([1]).int().numpy(), V,
              1).save(model_copy / SHORTLIST)
    with pytest.raises(CheckpointError, match="does not fit this model's vocabularies"):
        load_shortlist(model_copy, V, V)
    (model_copy / SHORTLIST).write_bytes(b"not a shortlist")
    with pytest.raises(CheckpointError, match="is not a readable shortlist"):
        load_shortlist(model_copy, V, V)
