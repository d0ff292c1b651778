"""`seqattn align`: subword → word merging, link extraction, symmetrization, checks, forced
alignment (library and CLI), calibration, and pictures."""

from __future__ import annotations

import dataclasses
import io
import json
import re
import shutil
import sys
from pathlib import Path

import pytest
import torch

from seqattn import align as al
from seqattn import vocab
from seqattn.align import checks as chk
from seqattn.align.aer import aer, parse_pharaoh
from seqattn.align.symmetrize import grow_diag, grow_diag_final, grow_diag_final_and, symmetrize
from seqattn.checkpoint import LoadedModel, read_meta, write_meta
from seqattn.cli import run
from seqattn.errors import UsageError

# --------------------------------------------------------------------------- helpers


class FakeSP:
    """Stands in for a SentencePieceProcessor with hand-chosen pieces.

    Offsets follow sentencepiece's habits: a piece starting with ▁ also covers the whitespace
    before it (so a lone ▁ covers only whitespace, and the sentence's dummy prefix covers none).
    """

    def __init__(self, pieces: list[str]):
        self.pieces = pieces

    def encode_as_offset_mapping(self, text: str) -> dict:
        offsets, pos = [], 0
        for piece in self.pieces:
            begin = pos
            body = piece
            if piece.startswith(vocab.MARK):
                body = piece[1:]
                while pos < len(text) and text[pos].isspace():
                    pos += 1
            assert text[pos: pos + len(body)] == body, (piece, text[pos:])
            pos += len(body)
            offsets.append((begin, pos))
        return {"pieces": self.pieces, "ids": list(range(4, 4 + len(self.pieces))),
                "offsets": offsets}


def _seg(text: str, pieces: list[str]) -> vocab.Segmented:
    return vocab.segment(FakeSP(pieces), text)


def _one_hot_rows(targets: list[int], n_cols: int) -> torch.Tensor:
    """Piece rows that each put all their weight on one column."""
    w = torch.zeros(len(targets), n_cols)
    w[torch.arange(len(targets)), torch.tensor(targets)] = 1.0
    return w


def _cli(args: list[str], capsys, monkeypatch=None, stdin: bytes | None = None):
    if stdin is not None:
        monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(stdin)))
    code = run(args)
    out, err = capsys.readouterr()
    return code, out, err


# --------------------------------------------------------------------------- segmentation


SEGMENTATIONS = [
    # a word split into 3 pieces
    ("the Strandkorbvermietung opens", ["▁the", "▁Strand", "korb", "vermietung", "▁opens"],
     [0, 1, 1, 1, 2]),
    # the sentence starts with a split word whose dummy prefix is a lone, empty ▁ piece
    ("Überraschung über", ["▁", "Ü", "berraschung", "▁über"], [0, 0, 0, 1]),
    # punctuation attached to words, and a lone ▁ before a split word
    ("A dog runs.", ["▁A", "▁dog", "▁", "runs", "."], [0, 1, 2, 2, 2]),
    ("dogs, cats!", ["▁dog", "s", ",", "▁cat", "s", "!"], [0, 0, 0, 1, 1, 1]),
    # runs of spaces (and leading spaces): the ▁ piece swallows them, indices do not move
    ("  Two   dogs,  running!", ["▁T", "wo", "▁dog", "s", ",", "▁", "running", "!"],
     [0, 0, 1, 1, 1, 2, 2, 2]),
    # a tab and a lone ▁ that is the user's own word
    ("a\t▁ b", ["▁a", "▁▁", "▁b"], [0, 1, 2]),
]


@pytest.mark.parametrize("text, pieces, expected", SEGMENTATIONS)
def test_segment_maps_pieces_to_the_words_they_came_from(text, pieces, expected):
    seg = _seg(text, pieces)
    assert seg.words == text.split()
    assert seg.word_of_piece == expected


@pytest.mark.parametrize("text, pieces, expected", SEGMENTATIONS)
def test_copy_alignment_is_the_diagonal_whatever_the_segmentation(text, pieces, expected):
    # align a text with itself, each piece attending to its own copy: links must be i-i for
    # every word, however the words were cut (split words, lone ▁, spaces, punctuation)
    seg = _seg(text, pieces)
    w = _one_hot_rows(list(range(len(pieces))), len(pieces) + 1)
    for merge in al.MERGES:
        words, eos = al.word_weights(w, seg.word_of_piece, seg.word_of_piece, len(seg.words),
                                     len(seg.words), merge=merge)
        assert al.extract_links(words) == {(i, i) for i in range(len(seg.words))}
        assert eos.tolist() == [0.0] * len(seg.words)


def test_real_sentencepiece_never_shifts_a_word(tiny_transformer):
    from seqattn.vocab import Vocab

    sp = Vocab(tiny_transformer / "spm.model").sp
    for text in ["A dog runs.", "  Two   dogs,  running!", "Überraschung über  日本語 ▁ x",
                 "Strandkorbvermietung is fun", "עברית טקסט, ok", "a\tb"]:
        seg = vocab.segment(sp, text)
        assert seg.words == text.split()
        assert sorted(set(seg.word_of_piece)) == list(range(len(seg.words)))
        for piece, piece_id, w in zip(seg.pieces, seg.ids, seg.word_of_piece):
            body = piece.replace(vocab.MARK, "")
            if body and piece_id != 1:  # an unknown piece prints as ⁇, not as its text
                assert body in seg.words[w], (text, piece, seg.words[w])


# --------------------------------------------------------------------------- merging


def test_split_source_word_gets_the_sum_of_its_pieces():
    src = _seg("the Strandkorbvermietung opens", ["▁the", "▁Strand", "korb", "vermietung",
                                                 "▁opens"])
    tgt = _seg("die Vermietung öffnet", ["▁die", "▁Vermiet", "ung", "▁öffnet"])
    # target pieces: die -> the; Vermiet -> Strand / korb (half each); ung -> vermietung;
    # öffnet -> opens; columns: 5 source pieces + eos
    w = torch.tensor([[1.0, 0, 0, 0, 0, 0],
                      [0, 0.5, 0.5, 0, 0, 0],
                      [0, 0, 0, 0.8, 0, 0.2],
                      [0, 0, 0, 0, 1.0, 0]])
    words, eos = al.word_weights(w, tgt.word_of_piece, src.word_of_piece, 3, 3)
    # Vermietung = mean of its two piece rows: (1.0 + 0.8) / 2 on the split source word
    torch.testing.assert_close(words, torch.tensor([[1.0, 0, 0], [0, 0.9, 0], [0, 0, 1.0]]))
    torch.testing.assert_close(eos, torch.tensor([0.0, 0.1, 0.0]))
    assert al.extract_links(words) == {(0, 0), (1, 1), (2, 2)}


@pytest.mark.parametrize("merge, expected", [
    ("sum", [[0.2, 0.8]]),                 # source pieces summed: 0.1 + 0.1, 0.3 + 0.5
    ("mean", [[0.1, 0.4]]),                # averaged: 0.2 / 2, 0.8 / 2
    ("max", [[0.1, 0.5]]),                 # best piece: 0.1, 0.5
])
def test_merge_modes(merge, expected):
    w = torch.tensor([[0.1, 0.1, 0.3, 0.5, 0.0]])                     # 1 target piece
    words, eos = al.word_weights(w, [0], [0, 0, 1, 1], 1, 2, merge=merge)
    torch.testing.assert_close(words, torch.tensor(expected))
    assert eos.tolist() == [0.0]


def test_max_merge_on_target_pieces_and_unknown_merge():
    w = torch.tensor([[0.9, 0.1], [0.2, 0.8]])                        # 2 target pieces, 1 word
    words, _ = al.word_weights(w, [0, 0], [0], 1, 1, merge="max")
    assert words.tolist() == [[pytest.approx(0.9)]]
    with pytest.raises(UsageError, match="sum, mean, max"):
        al.word_weights(w, [0, 0], [0], 1, 1, merge="median")


def test_hand_built_sentence_links_survive_odd_spacing_and_punctuation():
    src = _seg("  Two   dogs,  running!", ["▁T", "wo", "▁dog", "s", ",", "▁", "running", "!"])
    tgt = _seg("Zwei  Hunde, rennend!", ["▁Zwei", "▁Hund", "e", ",", "▁renn", "end", "!"])
    # each target piece looks at one source piece: Zwei->wo, Hund->dog, e->s, ","->",",
    # renn->running, end->▁ (the lone marker of 'running!'), "!"->"!"
    w = _one_hot_rows([1, 2, 3, 4, 6, 5, 7], 9)
    words, eos = al.word_weights(w, tgt.word_of_piece, src.word_of_piece, len(tgt.words),
                                 len(src.words))
    assert al.pharaoh(al.extract_links(words)) == "0-0 1-1 2-2"
    assert words.sum(dim=1).tolist() == [1.0, 1.0, 1.0] and eos.tolist() == [0.0] * 3


def test_rows_without_weight_get_no_argmax_link():
    words = torch.tensor([[0.0, 0.0], [0.2, 0.7]])
    assert al.extract_links(words) == {(1, 1)}
    assert al.argmax_links(words) == [(0, 0), (1, 1)]  # the old helper keeps its behaviour


def test_threshold_and_both():
    words = torch.tensor([[0.6, 0.35, 0.05], [0.1, 0.45, 0.45]])
    assert al.extract_links(words, "threshold", 0.35) == {(0, 0), (1, 0), (1, 1), (2, 1)}
    assert al.extract_links(words, "both", 0.5) == {(0, 0), (1, 1)}
    with pytest.raises(UsageError, match="needs extraction.threshold"):
        al.extract_links(words, "threshold")


# --------------------------------------------------------------------------- views


def test_view_rows_plain_shift_and_heads():
    # (L=2, H=2, Tp + 1 = 3, Sp + 1 = 2): entry value encodes (layer, head, row)
    w = torch.zeros(2, 2, 3, 2)
    for layer in range(2):
        for head in range(2):
            for row in range(3):
                w[layer, head, row, 0] = 100 * layer + 10 * head + row
    plain = al.view_rows(w, al.View(1, "1"))
    assert plain[:, 0].tolist() == [110, 111]            # rows y1, y2 (the eos row is left out)
    shifted = al.view_rows(w, al.View(1, "1", shift=True))
    assert shifted[:, 0].tolist() == [111, 112]          # the last word reads the eos step
    assert al.view_rows(w, al.View(0, "mean"))[:, 0].tolist() == [5, 6]
    assert al.view_rows(w, al.View(0, "max"))[:, 0].tolist() == [10, 11]


def test_view_rows_blend_mixes_a_plainly_read_second_view():
    w = torch.zeros(2, 2, 3, 2)
    for layer in range(2):
        for head in range(2):
            for row in range(3):
                w[layer, head, row, 0] = 100 * layer + 10 * head + row
    view = al.View(1, "1", shift=True, blend=al.Blend(0, "max", 0.25))
    # 0.75 · rows y2, eos of layer 1 head 1 + 0.25 · rows y1, y2 of layer 0's max over heads
    assert al.view_rows(w, view)[:, 0].tolist() == [0.75 * 111 + 0.25 * 10,
                                                    0.75 * 112 + 0.25 * 11]
    assert view.as_dict()["blend"] == {"layer": 0, "heads": "max", "weight": 0.25}


@pytest.mark.parametrize("text, expected", [
    ("2:mean:0.4", al.Blend(2, "mean", 0.4)), ("0:3:0.25", al.Blend(0, "3", 0.25)),
    ("none", None), ("None", None)])
def test_blend_parse(text, expected):
    assert al.Blend.parse(text) == expected


@pytest.mark.parametrize("text, message", [
    ("2:mean", "takes LAYER:HEADS:WEIGHT"), ("x:mean:0.4", "takes LAYER:HEADS:WEIGHT"),
    ("1:mean:1", "between 0 and 1"), ("1:mean:0", "between 0 and 1"),
    ("1:mean:nan", "between 0 and 1")])
def test_blend_parse_errors(text, message):
    with pytest.raises(UsageError, match=message):
        al.Blend.parse(text)


def test_resolve_view_validates_and_reads_the_calibrated_shift(tiny_transformer):
    tr = __import__("seqattn").load(tiny_transformer)
    assert al.resolve_view(tr) == al.View(0, "mean", False, "sum")    # 2 layers: penultimate
    with pytest.raises(UsageError, match=r"view.layer 2 is out of range.*0\.\.1"):
        al.resolve_view(tr, layer=2)
    with pytest.raises(UsageError, match="view.heads must be mean, max or a head number 0..3"):
        al.resolve_view(tr, heads="4")
    tr.loaded.meta = {**tr.loaded.meta, "alignment": {"layer": 1, "heads": "2", "shift": True}}
    assert al.resolve_view(tr) == al.View(1, "2", True, "sum")
    blend = {"layer": 0, "heads": "max", "weight": 0.3}
    tr.loaded.meta["alignment"] = {"layer": 1, "heads": "2", "shift": True, "blend": blend}
    assert al.resolve_view(tr).blend == al.Blend(0, "max", 0.3)
    assert al.resolve_view(tr, blend=None).blend is None                 # --blend none
    assert al.resolve_view(tr, blend=al.Blend(1, "0", 0.5)).blend == al.Blend(1, "0", 0.5)
    with pytest.raises(UsageError, match="view.blend layer 2 is out of range"):
        al.resolve_view(tr, blend=al.Blend(2, "mean", 0.5))
    tr.loaded.meta["alignment"]["blend"] = {"layer": 0, "heads": "9", "weight": 0.3}
    with pytest.raises(UsageError, match=r"view.blend heads .* got '9' \(read from the model"):
        al.resolve_view(tr)


# --------------------------------------------------------------------------- pharaoh


@pytest.mark.parametrize("links", [set(), {(0, 0)}, {(3, 1), (0, 2), (1, 1), (10, 0)}])
def test_pharaoh_round_trip(links):
    text = al.pharaoh(links)
    assert parse_pharaoh(text) == frozenset(links)
    pairs = [tuple(map(int, t.split("-"))) for t in text.split()]
    assert pairs == sorted(pairs)  # source-major order, as atools writes it


# --------------------------------------------------------------------------- symmetrization

# forward a and reverse b, both (source, target); derivation by hand:
#   intersection I = {(0,0), (1,1)}; union U = I + {(0,1), (1,2), (2,2), (3,0), (4,4)}
#   grow-diag from I, candidates U \ I in order (0,1) (1,2) (2,2) (3,0) (4,4):
#     (0,1): source 0 and target 1 are both aligned             -> no
#     (1,2): target 2 unaligned, neighbour (1,1)                 -> add
#     (2,2): source 2 unaligned, neighbour (1,2)                 -> add
#     (3,0), (4,4): no chosen neighbour (also in a second pass)  -> no
#   final(a): (3,0) has source 3 unaligned -> add; (4,4) both unaligned -> add
#   final-and(a): (3,0) has target 0 aligned -> no; (4,4) -> add
#   final(b): (0,1) both aligned -> no
SYM_A = {(0, 0), (1, 1), (1, 2), (3, 0), (4, 4)}
SYM_B = {(0, 0), (0, 1), (1, 1), (2, 2)}
GD = {(0, 0), (1, 1), (1, 2), (2, 2)}


@pytest.mark.parametrize("heuristic, expected", [
    ("intersection", {(0, 0), (1, 1)}),
    ("union", SYM_A | SYM_B),
    ("grow-diag", GD),
    ("grow-diag-final", GD | {(3, 0), (4, 4)}),
    ("grow-diag-final-and", GD | {(4, 4)}),
])
def test_symmetrization_hand_example(heuristic, expected):
    assert symmetrize(SYM_A, SYM_B, heuristic) == expected


def test_soft_symmetrization_by_hand():
    import torch

    from seqattn.align.symmetrize import soft_symmetrize

    fwd = torch.tensor([[0.6, 0.4, 0.0], [0.1, 0.1, 0.8]])           # (T=2, S=3)
    rev = torch.tensor([[0.9, 0.1], [0.2, 0.8], [0.0, 1.0]])          # (S=3, T=2)
    mean = soft_symmetrize(fwd, rev, "mean")
    torch.testing.assert_close(mean, torch.tensor([[0.75, 0.3, 0.0], [0.1, 0.45, 0.9]]))
    geo = soft_symmetrize(fwd, rev, "geomean")
    torch.testing.assert_close(geo, torch.tensor([[0.54 ** 0.5, 0.08 ** 0.5, 0.0],
                                                  [0.01 ** 0.5, 0.08 ** 0.5, 0.8 ** 0.5]]))
    # threshold 0.4 on the mean: (source 0, target 0), (1, 1), (2, 1); argmax drops (1, 1)
    assert al.extract_links(mean, "threshold", 0.4) == {(0, 0), (1, 1), (2, 1)}
    assert al.extract_links(mean, "argmax") == {(0, 0), (2, 1)}
    with pytest.raises(ValueError, match="not transposes"):
        soft_symmetrize(fwd, fwd, "mean")


def test_grow_diag_needs_a_second_pass():
    # I = {(2,2)}; (0,0) comes first but touches nothing until (1,1) is added in pass 1
    a, b = {(2, 2), (0, 0)}, {(2, 2), (1, 1)}
    assert grow_diag(a, b) == {(0, 0), (1, 1), (2, 2)}


def test_grow_diag_final_adds_only_where_a_word_is_unaligned():
    # I = {} so grow adds nothing; final(a) adds (0,0) and (1,1); final(b): (0,1) has both
    # words aligned by then -> no; (2,1) has source 2 unaligned -> add (not with -and)
    a, b = {(0, 0), (1, 1)}, {(0, 1), (2, 1)}
    assert grow_diag_final(a, b) == {(0, 0), (1, 1), (2, 1)}
    assert grow_diag_final_and(a, b) == {(0, 0), (1, 1)}
    with pytest.raises(UsageError, match="grow-diag-final"):
        symmetrize(a, b, "grow")


# --------------------------------------------------------------------------- checks


@pytest.mark.parametrize("words, expected", [
    ("a dog runs".split(), []),
    ("the the dog".split(), [(0, 2, 1)]),
    ("a dog a dog a dog .".split(), [(0, 6, 2)]),
    ("ein Hund , EIN hund , ein".split(), [(0, 7, 3)]),
    ("x y x z z".split(), [(3, 5, 1)]),
])
def test_tandem_repeats(words, expected):
    assert chk.tandem_repeats(words) == expected


def test_evidence_card():
    words = torch.tensor([[0.85, 0.05, 0.0, 0.05, 0.05],   # focused
                          [0.18, 0.18, 0.1, 0.18, 0.18],   # flat: normalised entropy 0.99
                          [0.3, 0.02, 0.05, 0.02, 0.01]])  # 0.6 of its mass on eos
    eos = 1 - words.sum(dim=1)
    card = chk.evidence(words, eos, ["Hund", "Hund", "x"])
    assert card.omitted == [2]                      # column sums 1.33 .25 .15 .25 .24
    assert card.repeated == [(0, 2, 1)]
    assert card.flat == [1] and card.eos == [2]
    assert card.target_flags(1) == ["repeat", "flat"] and card.target_flags(2) == ["eos"]
    assert chk.evidence(words[:, :2], eos, ["a", "b", "c"]).flat == []  # too few source words


# --------------------------------------------------------------------------- force_align


def test_force_align_shapes_order_and_batching(tiny_model):
    tr = __import__("seqattn").load(tiny_model)
    pairs = [("A dog runs.", "Ein Hund rennt."), ("", "leer"), ("nur Quelle", "  "),
             ("Two   men talk on a bench, happily.", "Zwei Männer reden auf einer Bank."),
             ("x", "y z w v u")]
    batched = al.force_align(tr, pairs, batch_tokens=24, chunk=3)  # several batches + chunks
    alone = [al.force_align(tr, [p])[0] for p in pairs]
    assert [r.id for r in batched] == [0, 1, 2, 3, 4]
    assert batched[1].empty and batched[2].empty and batched[1].words is None
    for r, a in zip(batched, alone):
        if r.empty:
            continue
        assert r.words.shape == (len(r.tgt.words), len(r.src.words))
        assert r.tgt.words == r.target.split()
        torch.testing.assert_close(r.words.sum(dim=1) + r.eos, torch.ones(len(r.tgt.words)))
        torch.testing.assert_close(r.words, a.words, atol=1e-5, rtol=1e-4)


def test_force_align_keeps_all_layers_and_heads(tiny_transformer):
    tr = __import__("seqattn").load(tiny_transformer)
    (rec,) = al.force_align(tr, [("A dog.", "Ein Hund.")], keep_weights=True)
    assert rec.weights.shape == (2, 4, len(rec.tgt.ids) + 1, len(rec.src.ids) + 1)


# --------------------------------------------------------------------------- the reverse task


SYMBOLS = 20
VOCAB = 4 + SYMBOLS


class WordSP:
    """A word-level 'sentencepiece': word ``sK`` is one piece with id 4 + K. The reverse-task
    model was trained on symbol ids, so this lets its text go through the real force_align
    path (segment, teacher forcing, merging, extraction) with one piece per word."""

    def encode_as_offset_mapping(self, text: str) -> dict:
        spans = [m.span() for m in re.finditer(r"\S+", text)]
        words = [text[a:b] for a, b in spans]
        return {"pieces": words, "ids": [4 + int(w[1:]) for w in words], "offsets": spans}


class WordVocab:
    sp = WordSP()


@pytest.fixture(scope="module")
def reverse_translator(tmp_path_factory):
    """A Bahdanau GRU trained for 120 steps to reverse symbol sequences (about 2 s on 1 CPU)."""
    from seqattn.config import config_from_dict
    from seqattn.data import make_batch
    from seqattn.models import PAD_ID, build_model
    from seqattn.translate import Translator

    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # tiny matrices: more threads only add contention
    torch.set_flush_denormal(True)
    try:
        cfg = config_from_dict({}, ["model.arch=rnn", "model.attention=bahdanau",
                                    "model.hidden_size=32", "model.embed_size=16",
                                    "model.enc_layers=1", "model.dec_layers=1",
                                    "model.dropout=0.0"])
        torch.manual_seed(0)
        gen = torch.Generator().manual_seed(1)
        model = build_model(cfg.model, VOCAB, VOCAB)
        opt = torch.optim.Adam(model.parameters(), lr=1e-2)
        model.train()
        for _ in range(120):  # a fresh batch of random sequences each step
            seqs = _random_sequences(64, gen)
            b = make_batch(seqs, [x[::-1] for x in seqs])
            logits, _ = model(b.src, b.src_pad, b.tgt_in)
            loss = torch.nn.functional.cross_entropy(logits.flatten(0, 1), b.tgt_out.flatten(),
                                                     ignore_index=PAD_ID)
            opt.zero_grad()
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            opt.step()
        model.eval()
    finally:
        torch.set_num_threads(threads)
        torch.set_flush_denormal(False)
    path = tmp_path_factory.mktemp("reverse-model")
    write_meta(path, {"src_vocab": VOCAB, "tgt_vocab": VOCAB, "step": 120})
    loaded = LoadedModel(model, cfg, WordVocab(), WordVocab(), read_meta(path), path)
    return Translator(loaded)


def _random_sequences(n: int, gen: torch.Generator) -> list[list[int]]:
    lengths = torch.randint(3, 7, (n,), generator=gen).tolist()
    return [torch.randint(4, VOCAB, (k,), generator=gen).tolist() for k in lengths]


def _reverse_pairs(n: int, seed: int) -> tuple[list[tuple[str, str]], list[set]]:
    seqs = _random_sequences(n, torch.Generator().manual_seed(seed))
    pairs = [(" ".join(f"s{i - 4}" for i in x), " ".join(f"s{i - 4}" for i in x[::-1]))
             for x in seqs]
    mirror = [{(len(x) - 1 - j, j) for j in range(len(x))} for x in seqs]
    return pairs, mirror


@pytest.mark.slow
def test_reverse_task_model_aligns_the_mirror(reverse_translator):
    pairs, mirror = _reverse_pairs(100, seed=2)
    records = al.force_align(reverse_translator, pairs, al.View(0, "mean", False, "sum"))
    scores = aer([al.extract_links(r.words) for r in records],
                 mirror, mirror)
    assert scores.aer <= 0.02, scores
    shifted = al.force_align(reverse_translator, pairs, al.View(0, "mean", True, "sum"))
    assert aer([al.extract_links(r.words) for r in shifted], mirror, mirror).aer > 0.5


@pytest.mark.slow
def test_calibration_picks_the_plain_view_and_stores_it(reverse_translator, tmp_path):
    from seqattn.align.calibrate import calibrate

    pairs, mirror = _reverse_pairs(30, seed=3)
    gold = tmp_path / "gold"
    gold.mkdir()
    (gold / "r.src").write_text("".join(s + "\n" for s, _ in pairs), encoding="utf-8")
    (gold / "r.tgt").write_text("".join(t + "\n" for _, t in pairs), encoding="utf-8")
    (gold / "r.talp").write_text(  # 1-indexed sure links, as the shipped gold sets
        "".join(" ".join(f"{s + 1}-{t + 1}" for s, t in sorted(m)) + "\n" for m in mirror),
        encoding="utf-8")
    rows, best = calibrate(reverse_translator, gold)
    # argmax, then threshold, confident and bidir at 0.3, 0.4, 0.5: 10 extractions
    assert len(rows) == 2 * 10 and best.view == al.View(0, "mean", False, "sum")
    assert best.scores.aer <= 0.02
    meta = read_meta(reverse_translator.loaded.path)
    assert meta["alignment"]["shift"] is False and meta["step"] == 120
    assert set(meta["alignment"]) == {"layer", "heads", "shift", "method", "threshold", "aer"}
    assert (meta["alignment"]["method"], meta["alignment"]["threshold"]) == (
        best.extraction.method, best.extraction.threshold)
    only, _ = calibrate(reverse_translator, gold, al.Extraction("threshold", 0.5), store=False)
    assert [r.extraction for r in only] == [al.Extraction("threshold", 0.5)] * 2


# --------------------------------------------------------------------------- CLI


ODD_SOURCES = ["A man.", "", "   ", "Zwei Hunde\tim Schnee ✓ 🙂", "日本語の文", "עברית", "end."]
ODD_TARGETS = ["Ein Mann.", "nicht leer", "x", "Two dogs", "", "hebrew", "Ende ."]


def test_files_mode_keeps_one_line_per_pair(tiny_transformer, tmp_path, capsys):
    src, tgt = tmp_path / "a.src", tmp_path / "a.tgt"
    src.write_text("\r\n".join(ODD_SOURCES) + "\n", encoding="utf-8")
    tgt.write_text("\n".join(ODD_TARGETS), encoding="utf-8")          # no final newline
    code, out, err = _cli(["align", "-m", str(tiny_transformer), str(src), str(tgt)], capsys)
    assert code == 0, err
    lines = out.split("\n")
    assert lines[-1] == "" and len(lines) - 1 == len(ODD_SOURCES)
    for k in (1, 2, 4):                                                # an empty side
        assert lines[k] == ""
    for k in (0, 3, 5, 6):
        assert parse_pharaoh(lines[k])


def test_stdin_mode_keeps_one_line_per_pair(tiny_transformer, capsys, monkeypatch):
    data = "".join(f"{s} ||| {t}\n" for s, t in zip(ODD_SOURCES, ODD_TARGETS)) + "\n|||\n"
    code, out, err = _cli(["align", "-m", str(tiny_transformer), "-", "-f", "jsonl", "--check"],
                          capsys, monkeypatch, data.encode())
    assert code == 0, err
    rows = [json.loads(line) for line in out.splitlines()]
    assert [r["id"] for r in rows] == list(range(len(ODD_SOURCES) + 2))
    for r in rows:
        assert len(r["link_probs"]) == len(r["links"])
        assert r["alignment"] == " ".join(f"{s}-{t}" for s, t in r["links"])
        if r["target_words"] and r["source_words"]:
            assert len(r["attention"]) == len(r["eos"]) == len(r["target_words"])
            assert r["view"] == {"layer": 0, "heads": "mean", "shift": False, "merge": "sum"}
            assert set(r["checks"]) == {"omitted", "repeated", "flat", "eos"}
        else:
            assert r["links"] == [] and r["attention"] == []
    assert rows[3]["source_words"] == ["Zwei", "Hunde", "im", "Schnee", "✓", "🙂"]


def test_mismatched_files_error(tiny_transformer, tmp_path, capsys):
    src, tgt = tmp_path / "a.src", tmp_path / "a.tgt"
    src.write_text("a\nb\nc\n", encoding="utf-8")
    tgt.write_text("a\nb\n", encoding="utf-8")
    code, out, err = _cli(["align", "-m", str(tiny_transformer), str(src), str(tgt)], capsys)
    assert code == 2 and out == ""
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ")
    assert "a.src' has 3 lines but" in lines[0] and "a.tgt' has 2" in lines[0]


@pytest.mark.parametrize("line, what", [("just a source", "no '|||'"),
                                        ("a ||| b ||| c", "2 '|||'")])
def test_bad_separator_line_error(tiny_transformer, capsys, monkeypatch, line, what):
    data = f"ok ||| gut\n{line}\n".encode()
    code, _, err = _cli(["align", "-m", str(tiny_transformer), "-"], capsys, monkeypatch, data)
    assert code == 2
    assert err.startswith("error: stdin line 2: expected 'source ||| target'") and what in err
    assert len(err.strip().splitlines()) == 1


@pytest.mark.parametrize("args, message", [
    (["--layer", "7", "-"], "--layer 7 is out of range"),
    (["--heads", "first", "-"], "--heads must be mean, max or a head number"),
    (["--sym", "union", "-"], "--sym needs --reverse-model"),
    (["--method", "threshold", "-"], "needs --threshold"),
    (["--method", "argmax", "--threshold", "0.2", "-"], "does not apply to --method argmax"),
    (["a.src"], "give TGT_FILE"),
    ([], "give SRC_FILE TGT_FILE"),
    (["-", "x.tgt"], "give no TGT_FILE"),
    (["--format", "csv", "-"], "csv"),
    (["--blend", "7:mean:0.4", "-"], "--blend layer 7 is out of range"),
    (["--blend", "1:mean", "-"], "--blend takes LAYER:HEADS:WEIGHT"),
    (["--blend", "1:mean:0.4", "-a", "encoder", "-"], "--blend applies to cross-attention"),
])
def test_usage_errors_exit_2(tiny_transformer, capsys, monkeypatch, args, message):
    code, out, err = _cli(["align", "-m", str(tiny_transformer), *args], capsys, monkeypatch,
                          b"a ||| b\n")
    assert code == 2 and out == ""
    assert err.startswith("error: ") and message in err


def test_png_without_matplotlib(tiny_transformer, capsys, monkeypatch, tmp_path):
    from seqattn.align import viz as alignviz

    monkeypatch.setattr(alignviz, "have_matplotlib", lambda: False)
    code, _, err = _cli(["align", "-m", str(tiny_transformer), "-", "--png",
                         str(tmp_path / "x.png")], capsys, monkeypatch, b"a ||| b\n")
    assert code == 2 and "pip install matplotlib" in err


def test_html_page_is_written_escaped_and_self_contained(tiny_transformer, tmp_path, capsys,
                                                         monkeypatch):
    page = tmp_path / "out" / "align.html"
    data = "<b>A</b> & dog ||| 'Ein' \"Hund\" <i>\n\n日本語 ||| עברית ok\n".encode()
    code, out, err = _cli(["align", "-m", str(tiny_transformer), "-", "--html", str(page),
                           "--check"], capsys, monkeypatch, data)
    assert code == 0, err
    assert out.count("\n") == 3
    text = page.read_text(encoding="utf-8")
    assert "&lt;b&gt;A&lt;/b&gt;" in text and "&amp;" in text and "&quot;Hund&quot;" in text
    assert "<b>A" not in text and "<i>" not in text
    assert "日本語" in text and "עברית" in text and 'dir="auto"' in text
    assert not re.search(r"<script|<link|src=|https?://", text)
    assert [p.name for p in page.parent.iterdir()] == ["align.html"]  # no temporary left


@pytest.mark.parametrize("fmt, expect", [("table", ["entropy", "runner-up", "Hund", "flags"]),
                                         ("heatmap", ["dog", "Hund", "eos", "link"])])
def test_table_and_heatmap_render(tiny_transformer, capsys, monkeypatch, fmt, expect):
    data = b"A dog runs. ||| Ein Hund rennt.\n ||| \n"
    code, out, err = _cli(["align", "-m", str(tiny_transformer), "-", "-f", fmt, "--check"],
                          capsys, monkeypatch, data)
    assert code == 0, err
    for word in expect:
        assert word in out
    assert out.endswith("\n\n")                           # the empty pair: an empty line


def test_reverse_model_symmetrizes(tiny_transformer, capsys, monkeypatch):
    data = b"A dog runs. ||| Ein Hund rennt.\n"
    code, out, err = _cli(["align", "-m", str(tiny_transformer), "--reverse-model",
                           str(tiny_transformer), "--sym", "intersection", "-", "-f", "jsonl"],
                          capsys, monkeypatch, data)
    assert code == 0, err
    (row,) = [json.loads(line) for line in out.splitlines()]
    assert row["sym"] == "intersection"
    assert len(row["reverse_attention"]) == len(row["source_words"])
    assert len(row["reverse_link_probs"]) == len(row["link_probs"]) == len(row["links"])
    assert len(row["links"]) <= len(row["target_words"])


def test_soft_symmetrization_through_the_cli(tiny_transformer, capsys, monkeypatch):
    """--sym mean: the links are those of the mean of both directions' attention matrices."""
    import torch

    data = b"A dog runs in the park. ||| Ein Hund rennt im Park.\n"
    code, out, err = _cli(["align", "-m", str(tiny_transformer), "--reverse-model",
                           str(tiny_transformer), "--sym", "mean", "--method", "threshold",
                           "--threshold", "0.2", "-", "-f", "jsonl"], capsys, monkeypatch, data)
    assert code == 0, err
    (row,) = [json.loads(line) for line in out.splitlines()]
    fwd = torch.tensor(row["attention"])                              # (T, S)
    rev = torch.tensor(row["reverse_attention"])                      # (S, T)
    expected = al.extract_links((fwd + rev.T) / 2, "threshold", 0.2)
    assert {tuple(x) for x in row["links"]} == expected and expected


SMALL_GOLD = [("A dog runs .", "Ein Hund rennt .", "1-1 2-2 3-3 4p4"),
              ("Two men talk", "Zwei Männer reden", "1-3 2-2 3-1"),
              ("a b c d", "d c b a", "1-4 2-3 3-2 4-1")]


def _write_gold(tmp_path: Path, gold: list[tuple[str, str, str]]) -> list[str]:
    """A gold set as g.src, g.tgt, g.talp under ``tmp_path``; their paths."""
    files = []
    for k, suffix in enumerate(("src", "tgt", "talp")):
        path = tmp_path / f"g.{suffix}"
        path.write_text("".join(g[k] + "\n" for g in gold), encoding="utf-8")
        files.append(str(path))
    return files


def test_cli_calibrate_prints_the_sweep_and_stores_the_view(tiny_transformer, tmp_path, capsys):
    model = tmp_path / "model"
    shutil.copytree(tiny_transformer, model)
    gold = [("A dog runs .", "Ein Hund rennt .", "1-1 2-2 3-3 4p4"),
            ("Two men talk", "Zwei Männer reden", "1-1 2-2 3-3")]
    files = _write_gold(tmp_path, gold)
    code, out, err = _cli(["align", "-m", str(model), "--calibrate", ",".join(files)], capsys)
    assert code == 0, err
    assert out == "" and "AER%" in err and "shift" in err
    stored = read_meta(model)["alignment"]
    assert set(stored) - {"blend"} == {"layer", "heads", "shift", "method", "threshold", "aer"}
    assert 0 <= stored["aer"] <= 1
    assert read_meta(model)["src_vocab"] == read_meta(tiny_transformer)["src_vocab"]
    # later runs extract links the stored way: a stored threshold of 0 links every word pair
    meta = read_meta(model)
    meta["alignment"].update(method="threshold", threshold=0.0)
    write_meta(model, {k: v for k, v in meta.items() if k != "format"})
    code, out, err = _cli(["align", "-m", str(model), files[0], files[1]], capsys)
    assert code == 0 and [len(x.split()) for x in out.splitlines()] == [16, 9], (out, err)
    code, out, err = _cli(["align", "-m", str(model), "--method", "argmax", files[0], files[1]],
                          capsys)
    assert code == 0 and all(line for line in out.splitlines()), out


def test_calibration_blends_the_best_view_only_when_that_is_strictly_better(tiny_transformer,
                                                                            tmp_path):
    from seqattn.align.calibrate import BLEND_WEIGHTS, calibrate, candidate_views

    tr = __import__("seqattn").load(tiny_transformer)
    files = _write_gold(tmp_path, SMALL_GOLD)
    rows, best = calibrate(tr, ",".join(files), store=False)
    plain = [r for r in rows if r.view.blend is None]
    blended = [r for r in rows if r.view.blend is not None]
    n_layers, _ = al.model_shape(tr)
    assert len(plain) == 10 * len(candidate_views(tr))                # 10 extractions each
    assert len(blended) == 10 * n_layers * len(BLEND_WEIGHTS)
    assert {r.view.blend.heads for r in blended} == {"mean"}
    best_plain = min(plain, key=lambda r: r.scores.aer)
    # every blend is the best plain view plus a second view
    assert {dataclasses.replace(r.view, blend=None) for r in blended} == {best_plain.view}
    assert best.scores.aer == min(r.scores.aer for r in rows)


def test_calibrate_with_a_reverse_model_stores_the_best_symmetrization(tiny_transformer,
                                                                         tmp_path, capsys):
    from seqattn.align.calibrate import calibrate_sym, store_view
    from seqattn.align.symmetrize import HEURISTICS, SOFT

    model = tmp_path / "model"
    shutil.copytree(tiny_transformer, model)
    files = _write_gold(tmp_path, SMALL_GOLD)
    spec = ",".join(files)
    seqattn = __import__("seqattn")
    tr, rev = seqattn.load(model), seqattn.load(tiny_transformer)
    rows, best = calibrate_sym(tr, rev, spec, store=False)
    assert len(rows) == 10 * (len(HEURISTICS) + len(SOFT))
    assert best.scores.aer == min(r.scores.aer for r in rows)
    # each row's AER is that of align() run with the row's extraction
    gold = SMALL_GOLD
    pairs = [(g[0], g[1]) for g in gold]
    sure = [{(int(x.split("-")[0]) - 1, int(x.split("-")[1]) - 1) for x in g[2].split()
             if "-" in x} for g in gold]
    possible = [ss | {(int(x.split("p")[0]) - 1, int(x.split("p")[1]) - 1)
                      for x in g[2].split() if "p" in x} for ss, g in zip(sure, gold)]
    for row in rows[::5]:
        links = [r.links for r in al.align(tr, pairs, None, row.extraction, rev)]
        assert aer(links, sure, possible).aer == pytest.approx(row.scores.aer)
    # the CLI stores the winner and later --reverse-model runs use it
    code, out, err = _cli(["align", "-m", str(model), "--reverse-model", str(tiny_transformer),
                           "--calibrate", spec], capsys)
    assert code == 0 and "both directions" in err, err
    stored = read_meta(model)["alignment"]["sym"]
    assert set(stored) == {"sym", "method", "threshold", "aer", "reverse"}
    explicit = ["--sym", stored["sym"], "--method", stored["method"]] + (
        ["--threshold", str(stored["threshold"])] if stored["threshold"] is not None else [])
    runs = [_cli(["align", "-m", str(model), "--reverse-model", str(tiny_transformer), *extra,
                  files[0], files[1]], capsys) for extra in ([], explicit)]
    assert runs[0][0] == 0 and runs[0][1] == runs[1][1], runs
    # calibrating the view again drops the symmetrization tuned for the old one
    store_view(seqattn.load(model), best)
    assert "sym" not in read_meta(model)["alignment"]


@pytest.mark.parametrize("sym_given, extraction_given, expected", [
    (False, False, ("threshold", 0.4, "mean")),      # all stored
    (True, False, ("threshold", 0.4, "mean")),       # --sym mean: the stored one, as stored
    (False, True, ("threshold", 0.45, "mean")),      # --threshold 0.45: stored sym, that cut
])
def test_stored_symmetrization_fills_in_what_was_not_given(tiny_transformer, sym_given,
                                                           extraction_given, expected):
    tr = __import__("seqattn").load(tiny_transformer)
    tr.loaded.meta = {**tr.loaded.meta, "alignment": {"sym": {
        "sym": "mean", "method": "threshold", "threshold": 0.4, "aer": 0.1, "reverse": "r"}}}
    given = al.Extraction("threshold", 0.45, "mean") if extraction_given else \
        al.Extraction("argmax", None, "mean" if sym_given else "grow-diag-final")
    got = al.resolve_sym_extraction(tr, given, sym_given, extraction_given, "r")
    assert (got.method, got.threshold, got.sym) == expected
    # another sym than the stored one keeps the view's extraction
    other = al.resolve_sym_extraction(tr, al.Extraction("argmax", None, "union"), True, False)
    assert (other.method, other.threshold, other.sym) == ("argmax", None, "union")
    tr.loaded.meta["alignment"] = {}
    assert al.resolve_sym_extraction(tr, given, sym_given, extraction_given) == given


def test_a_stored_blend_applies_only_to_the_stored_view(tiny_transformer):
    tr = __import__("seqattn").load(tiny_transformer)
    tr.loaded.meta = {**tr.loaded.meta, "alignment": {
        "layer": 1, "heads": "0", "shift": True,
        "blend": {"layer": 0, "heads": "mean", "weight": 0.4}}}
    assert al.resolve_view(tr).blend == al.Blend(0, "mean", 0.4)
    for kwargs in ({"layer": 0}, {"heads": "max"}, {"shift": False}):
        assert al.resolve_view(tr, **kwargs).blend is None, kwargs
    assert al.resolve_view(tr, layer=0, blend=al.Blend(1, "max", 0.2)).blend == \
        al.Blend(1, "max", 0.2)


def test_translate_blend_flag(tiny_transformer, tmp_path, capsys):
    code, out, err = _cli(["translate", "-m", str(tiny_transformer), "--align", "--blend",
                           "1:max:0.3", "A dog runs ."], capsys)
    assert code == 0 and "blended 0.3 with layer 1, heads max" in " ".join(err.split()), err
    code, out, err = _cli(["translate", "-m", str(tiny_transformer), "--blend", "1:max",
                           "A dog runs ."], capsys)
    assert code == 2 and out == "" and "--blend takes LAYER:HEADS:WEIGHT" in err
    # a broken stored blend does not stop plain translation, and says how to switch it off
    model = tmp_path / "model"
    shutil.copytree(tiny_transformer, model)
    meta = read_meta(model)
    meta["alignment"] = {"blend": {"layer": 9, "heads": "mean", "weight": 0.3}}
    write_meta(model, {k: v for k, v in meta.items() if k != "format"})
    code, out, err = _cli(["translate", "-m", str(model), "A dog runs ."], capsys)
    assert code == 0 and out.count("\n") == 1, err
    code, out, err = _cli(["translate", "-m", str(model), "--align", "A dog runs ."], capsys)
    assert code == 2 and "--blend layer 9 is out of range" in err and "--blend none" in err
    code, out, err = _cli(["translate", "-m", str(model), "--align", "--blend", "none",
                           "A dog runs ."], capsys)
    assert code == 0, err


def test_blend_flag_reaches_the_view_and_none_turns_it_off(tiny_transformer, capsys,
                                                           monkeypatch):
    code, out, err = _cli(["align", "-m", str(tiny_transformer), "-", "-f", "jsonl",
                           "--blend", "1:max:0.3"], capsys, monkeypatch, b"A dog. ||| Ein Hund.\n")
    assert code == 0, err
    assert json.loads(out)["view"]["blend"] == {"layer": 1, "heads": "max", "weight": 0.3}
    code, out, err = _cli(["align", "-m", str(tiny_transformer), "-", "-f", "jsonl",
                           "--blend", "none"], capsys, monkeypatch, b"A dog. ||| Ein Hund.\n")
    assert code == 0 and "blend" not in json.loads(out)["view"], err


def test_shift_att_flag_and_merge_reach_the_view(tiny_transformer, capsys, monkeypatch):
    code, out, err = _cli(["align", "-m", str(tiny_transformer), "-", "-f", "jsonl",
                           "--shift-att", "--layer", "1", "--heads", "max", "--merge", "max"],
                          capsys, monkeypatch, b"A dog. ||| Ein Hund.\n")
    assert code == 0, err
    assert json.loads(out)["view"] == {"layer": 1, "heads": "max", "shift": True,
                                       "merge": "max"}


def test_mismatch_found_while_streaming_and_missing_file(tiny_transformer, tmp_path, capsys,
                                                         monkeypatch):
    from seqattn import textio
    from seqattn.errors import DataError

    src, tgt = tmp_path / "a.src", tmp_path / "a.tgt"
    src.write_text("a\nb\n", encoding="utf-8")
    tgt.write_text("a\nb\nc\nd\n", encoding="utf-8")
    monkeypatch.setattr(textio, "count_lines", lambda path: 0)  # as if both were pipes
    pairs = textio.file_pairs(src, tgt)
    assert next(pairs) == ("a", "a") and next(pairs) == ("b", "b")
    with pytest.raises(DataError, match="has 2 lines but .* has 4"):
        next(pairs)
    code, out, err = _cli(["align", "-m", str(tiny_transformer), str(tmp_path / "no.src"),
                           str(tgt)], capsys)
    assert code == 2 and out == "" and "no.src' does not exist" in err


@pytest.mark.parametrize("shift, blend", [(False, None), (True, None),
                                           (True, al.Blend(0, "max", 0.4))])
def test_beam_attention_of_a_greedy_output_equals_its_forced_alignment(tiny_model, shift,
                                                                        blend):
    """translate --align reads the beam's own attention; for a greedy output that is what a
    teacher-forced pass over the same pieces computes, read through align's own view (plain or
    shift-att)."""
    import seqattn
    from seqattn.data import pad_sources
    from seqattn.vocab import BOS

    tr = seqattn.load(tiny_model)
    layers, _ = al.model_shape(tr)
    [t] = tr.translate(["A man in a red shirt rides a bike."], beam=1, max_len=8)
    hyp = t.hyps[0]
    beam_words, beam_eos = al.word_attention(
        tr, t, hyp, al.resolve_view(tr, layers - 1, "mean", shift, blend=blend))
    ids = tr.tgt_vocab.sp.piece_to_id(hyp.pieces)
    src, src_pad = pad_sources([t.src.ids])
    with torch.no_grad():
        _, weights = tr.model(src, src_pad, torch.tensor([[BOS, *ids]]), need_weights=True)
    rows = al.view_rows(weights[0], al.View(layers - 1, "mean", shift, "sum", blend=blend))
    words, eos = al.word_weights(rows, hyp.word_of_piece, t.src.word_of_piece, len(hyp.words),
                                 len(t.src.words))
    # step-by-step and teacher-forced kernels round differently (about 1e-4 for the GRU)
    torch.testing.assert_close(words, beam_words, atol=2e-3, rtol=0)
    torch.testing.assert_close(eos, beam_eos, atol=2e-3, rtol=0)


def test_a_lone_marker_over_dropped_characters_goes_to_the_next_word():
    # "a \x01 \x02 b c": a lone ▁ piece whose span [1, 6) holds only spaces and the control
    # characters sentencepiece drops belongs to "b" (word 3), not to the word "\x02"
    text = "a \x01 \x02 b c"
    spans = [m.span() for m in re.finditer(r"\S+", text)]
    starts = [a for a, _ in spans]
    assert vocab._word_at(text, spans, starts, 1, 6) == 3
    assert vocab._word_at(text, spans, starts, 1, 7) == 3  # "▁b" with the dropped characters before
    assert vocab._word_at(text, spans, starts, 0, 1) == 0


def test_characters_sentencepiece_drops_never_shift_a_word(tiny_transformer):
    """Zero-width spaces and control characters vanish in sentencepiece and their offsets go
    to the next piece; the word of a piece is the one its own characters end in."""
    import seqattn

    sp = seqattn.load(tiny_transformer).src_vocab.sp
    for text, words in (("a \x01 \x02 b c", ["a", "b", "c"]), ("\u200b a b", ["a", "b"]),
                        ("a \u200b b", ["a", "b"])):
        seg = vocab.segment(sp, text)
        got = sorted({seg.words[w] for w in seg.word_of_piece})
        assert got == sorted(words), (text, seg.pieces, seg.word_of_piece)


def test_the_names_of_the_choices_are_those_the_library_defines():
    """seqattn.align.names (torch-free, for the CLI) lists exactly what the modules define."""
    from seqattn.align import names
    from seqattn.align.symmetrize import HEURISTICS, SOFT

    assert names.HEURISTIC_NAMES == tuple(HEURISTICS) and names.SOFT_NAMES == tuple(SOFT)
    words = torch.tensor([[0.7, 0.3]])
    for merge in names.MERGES:  # every listed merge and method works
        al.word_weights(torch.tensor([[0.5, 0.5]]), [0], [0], 1, 1, merge)
    for method in names.METHODS:
        al.extract_links(words, method, None if method == "argmax" else 0.5)
    with pytest.raises(UsageError, match="threshold does not apply to extraction.method argmax"):
        al.Extraction("argmax", 0.5)


def test_confident_links_are_the_argmax_links_that_reach_the_threshold():
    words = torch.tensor([[0.6, 0.35, 0.05],     # sure: its best word has 0.6
                          [0.4, 0.3, 0.3],       # unsure: its best word has only 0.4
                          [0.0, 0.0, 0.0]])      # no mass: never linked
    assert al.extract_links(words, "confident", 0.5) == {(0, 0)}
    assert al.extract_links(words, "confident", 0.4) == {(0, 0), (0, 1)}
    assert al.extract_links(words, "confident", 0.4) == \
        al.extract_links(words, "argmax") & al.extract_links(words, "threshold", 0.4)
    with pytest.raises(UsageError, match="needs extraction.threshold"):
        al.extract_links(words, "confident")


def test_bidir_reads_the_matrix_over_rows_and_columns():
    """Worked by hand: a source word every target word glances at (column 1) keeps only the
    link whose share of that column is large; column normalisation computed independently."""
    words = torch.tensor([[0.7, 0.3, 0.0],
                          [0.0, 0.3, 0.7],
                          [0.1, 0.8, 0.1]])
    both = al.both_norms(words)
    # column sums 0.8, 1.4, 0.8 -> row 0: (0.7 + 0.875) / 2, (0.3 + 0.3/1.4) / 2, 0
    assert torch.allclose(both[0], torch.tensor([0.7875, (0.3 + 0.3 / 1.4) / 2, 0.0]))
    assert al.extract_links(words, "bidir", 0.5) == {(0, 0), (2, 1), (1, 2)}
    assert al.extract_links(words, "threshold", 0.3) == {(0, 0), (1, 0), (1, 1), (2, 1), (1, 2)}
    with pytest.raises(UsageError):
        al.Extraction("bidir", None)


def test_png_draws_any_script_or_names_what_it_cannot(capsys, tmp_path):
    """The PNG heatmap draws a Chinese word with an installed CJK font (make test installs
    Debian's fonts-noto-cjk beside chromium), and names the characters no font has instead of
    drawing boxes in silence."""
    pytest.importorskip("matplotlib")
    from matplotlib import font_manager
    from matplotlib.ft2font import FT2Font

    from seqattn.align.viz import font_families
    from seqattn.cli import run

    families, missing = font_families(["A dog 狗", "Ein Hund"])
    assert missing == [] and families[0] == "DejaVu Sans" and len(families) == 2
    cjk = font_manager.findfont(families[1], fallback_to_default=False)
    assert ord("狗") in FT2Font(cjk).get_charmap()          # the font chosen has the glyph
    assert font_families(["\u0378 x"])[1] == ["\u0378"]      # unassigned: no font has it
    (tmp_path / "s").write_text("A dog 狗 runs\n", encoding="utf-8")
    (tmp_path / "t").write_text("Ein Hund \u0378 rennt\n", encoding="utf-8")
    capsys.readouterr()
    assert run(["align", "-m", "en-de", str(tmp_path / "s"), str(tmp_path / "t"), "--png",
                str(tmp_path / "a.png")]) == 0
    err = capsys.readouterr().err
    assert "U+0378" in err and "U+72D7" not in err and (tmp_path / "a.png").stat().st_size > 5000
