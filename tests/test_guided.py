"""Guided alignment: Pharaoh reading, word → piece links, the loss, and a head that learns an
alignment it would never find by itself."""

from __future__ import annotations

import json
import random
from pathlib import Path

import pytest
import torch

from seqattn.config import config_from_dict
from seqattn.data import encode_corpus, gold_rows, piece_links, read_pharaoh
from seqattn.errors import ConfigError, DataError
from seqattn.train.loss import alignment_loss
from seqattn.vocab import Vocab, train_spm


def test_read_pharaoh_takes_sure_and_possible_links(tmp_path):
    path = tmp_path / "a.txt"
    path.write_text("0-0 1-2 2p1\n\n3-0\n", encoding="utf-8")
    assert read_pharaoh(path, 3) == [[(0, 0), (1, 2), (2, 1)], [], [(3, 0)]]


@pytest.mark.parametrize("text,n,message", [
    ("0-0\n", 2, "has 1 lines but the training files have 2 pairs"),
    ("0-0\n1-x\n", 2, "a.txt:2: '1-x' is not a Pharaoh link"),
    ("0-0\n-1\n", 2, "a.txt:2: '-1' is not a Pharaoh link"),
    ("0-0\n\u00b2-1\n", 2, "a.txt:2: '\u00b2-1' is not a Pharaoh link"),
])
def test_read_pharaoh_errors_name_the_line(tmp_path, text, n, message):
    path = tmp_path / "a.txt"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(DataError, match=message):
        read_pharaoh(path, n)
    with pytest.raises(DataError, match="does not exist"):
        read_pharaoh(tmp_path / "missing.txt", n)


def test_piece_links_expand_every_piece_of_both_words():
    # source words: 0 = pieces 0,1; 1 = piece 2; 2 = pieces 3,4,5. target: 0 = 0; 1 = pieces 1,2
    src_words, tgt_words = [0, 0, 1, 2, 2, 2], [0, 1, 1]
    assert piece_links([(2, 0), (0, 1)], src_words, tgt_words) == [
        (0, 3), (0, 4), (0, 5), (1, 0), (1, 1), (2, 0), (2, 1)]
    assert piece_links([(3, 0)], src_words, tgt_words) is None      # no source word 3
    assert piece_links([(1, 0)], [0, 2], [0]) == []                 # word 1 has no pieces
    assert piece_links([(0, 2)], src_words, tgt_words) is None      # no target word 2


def test_gold_rows_are_distributions_and_the_loss_is_their_cross_entropy():
    gold = gold_rows([[(0, 1), (0, 2), (2, 0)], None], T=4, S=3)   # (B, T, S)
    expected = torch.zeros(2, 4, 3)
    expected[0, 0, 1] = expected[0, 0, 2] = 0.5
    expected[0, 2, 0] = 1.0
    assert torch.equal(gold, expected)
    weights = torch.softmax(torch.randn(2, 4, 3, dtype=torch.float64), dim=-1)
    by_hand = -(0.5 * weights[0, 0, 1].log() + 0.5 * weights[0, 0, 2].log()
                + weights[0, 2, 0].log())
    assert alignment_loss(weights, gold).item() == pytest.approx(by_hand.item(), rel=1e-6)


def _toy_spm(tmp_path: Path) -> Vocab:
    text = tmp_path / "spm.txt"
    rng = random.Random(0)  # many random words: a 40-piece vocabulary must split them
    words = ["".join(rng.choices("abcdefghijklmnop", k=rng.randint(2, 9))) for _ in range(500)]
    text.write_text("\n".join(" ".join(rng.choices(words, k=6)) for _ in range(300)) + "\n",
                    encoding="utf-8")
    train_spm([text], tmp_path / "spm", vocab_size=40, model_type="unigram")
    return Vocab(tmp_path / "spm.model")


def test_encode_corpus_maps_word_links_to_the_pieces_it_trains_on(tmp_path):
    vocab = _toy_spm(tmp_path)
    pairs = [("unbelievable cats sleep", "dogs  run unbelievable"), ("", ""),
             ("a hop", "the hop")]
    links = [[(0, 2), (1, 0)], [(0, 0)], [(5, 0)]]
    corpus = encode_corpus(pairs, vocab, vocab, None, links)
    assert len(corpus) == 2 and corpus.links is not None
    assert corpus.unusable_links == 1 and corpus.links[1] is None    # source word 5 is not there
    # independent reference: with no leading space, a new word starts at every ▁ piece
    src_words = _marker_words(vocab.pieces([pairs[0][0]])[0])
    tgt_words = _marker_words(vocab.pieces([pairs[0][1]])[0])
    assert src_words.count(0) >= 2 and tgt_words.count(2) >= 2      # "unbelievable" is split
    expected = sorted({(t, s) for i, j in links[0] for t, wt in enumerate(tgt_words) if wt == j
                       for s, ws in enumerate(src_words) if ws == i})
    assert corpus.links[0] == expected


def _marker_words(pieces: list[str]) -> list[int]:
    word, out = -1, []
    for p in pieces:
        word += p.startswith("\u2581")
        out.append(word)
    return out


def _shifted_corpus(tmp: Path, n: int) -> tuple[list[str], list[list[tuple[int, int]]]]:
    """A copy task whose gold alignment is deliberately *not* the natural one: target word j
    is linked to source word (j + 1) mod len. Attention alone would learn the diagonal."""
    rng = random.Random(1)
    words = [f"w{c}{d}" for c in "abcdefgh" for d in "xyz"]
    src, tgt, links = [], [], []
    for _ in range(n):
        k = rng.randint(3, 6)
        sent = rng.choices(words, k=k)
        src.append(" ".join(sent))
        tgt.append(" ".join(w.upper() for w in sent))
        links.append([((j + 1) % k, j) for j in range(k)])
    for split, count in (("train", n), ("valid", 20)):
        (tmp / f"{split}.src").write_text("\n".join(src[:count]) + "\n", encoding="utf-8")
        (tmp / f"{split}.tgt").write_text("\n".join(tgt[:count]) + "\n", encoding="utf-8")
    (tmp / "links.txt").write_text(
        "\n".join(" ".join(f"{i}-{j}" for i, j in x) for x in links) + "\n", encoding="utf-8")
    sets = [f"data.train_src={tmp / 'train.src'}", f"data.train_tgt={tmp / 'train.tgt'}",
            f"data.valid_src={tmp / 'valid.src'}", f"data.valid_tgt={tmp / 'valid.tgt'}",
            "data.vocab_size=80", "model.hidden_size=64", "model.heads=2", "model.ff_size=128",
            "model.enc_layers=1", "model.dec_layers=2", "model.dropout=0.0",
            "training.batch_tokens=1200", "training.warmup_steps=20", "training.lr=0.003",
            "training.max_steps=150", "training.valid_every=150", "training.log_every=50",
            "training.label_smoothing=0.0", "decoding.beam_size=1"]
    return sets, links


def _agreement(model_dir: Path, pairs: list[tuple[str, str]],
               gold: list[list[tuple[int, int]]]) -> float:
    import seqattn
    from seqattn.align.force import align

    tr = seqattn.load(model_dir)
    hits = total = 0
    for rec, want in zip(align(tr, pairs), gold):
        hits += len(rec.links & set(want))
        total += len(want)
    return hits / total


@pytest.mark.slow
@pytest.mark.parametrize("shift", [False, True])
def test_guided_head_learns_the_given_alignment(tmp_path, shift):
    from seqattn.train import train

    sets, links = _shifted_corpus(tmp_path, 400)
    pairs = list(zip((tmp_path / "train.src").read_text().splitlines(),
                     (tmp_path / "train.tgt").read_text().splitlines()))[:100]
    guided = config_from_dict({}, sets + [f"training.guided_alignment={tmp_path / 'links.txt'}",
                                          "training.guided_weight=1.0",
                                          f"training.guided_shift={str(shift).lower()}"])
    train(guided, tmp_path / "guided")
    meta = json.loads((tmp_path / "guided" / "seqattn.json").read_text())
    assert meta["alignment"] == {"layer": 0, "heads": "0", "shift": shift, "guided": True}
    log = [json.loads(x) for x in (tmp_path / "guided" / "train.jsonl").read_text().splitlines()]
    align_losses = [r["align_loss"] for r in log if r["kind"] == "train"]
    assert align_losses[-1] < 0.5 * align_losses[0]
    with_guidance = _agreement(tmp_path / "guided", pairs, links[:100])  # the default view
    assert with_guidance >= 0.9, with_guidance
    if shift:
        return
    plain = config_from_dict({}, sets)
    train(plain, tmp_path / "plain")
    without = _agreement(tmp_path / "plain", pairs, links[:100])
    assert without < 0.5, (with_guidance, without)


def test_guided_settings_are_checked_against_the_model(tmp_path):
    from seqattn.train.guided import guided_view

    cfg = config_from_dict({}, ["model.dec_layers=3", "model.heads=4",
                                "training.guided_alignment=x.txt"])
    assert guided_view(cfg) == (1, 0)                                 # the penultimate layer
    assert guided_view(config_from_dict({}, ["model.dec_layers=3"])) is None
    with pytest.raises(ConfigError, match="guided_layer .3. is out of range"):
        guided_view(config_from_dict({}, ["model.dec_layers=3", "training.guided_layer=3",
                                          "training.guided_alignment=x.txt"]))
    with pytest.raises(ConfigError, match="guided_head .4. is out of range"):
        guided_view(config_from_dict({}, ["model.heads=4", "training.guided_head=4",
                                          "training.guided_alignment=x.txt"]))


def test_pharaoh_links_stream_from_a_gzip_file_too(tmp_path):
    """The shipped recipes' links are gzip-compressed: read (and checked) the same way."""
    import gzip

    from seqattn.data import check_pharaoh, iter_pharaoh

    text = "0-0 1p2\n\n3-0\n"
    (tmp_path / "a.txt").write_text(text)
    (tmp_path / "a.txt.gz").write_bytes(gzip.compress(text.encode()))
    plain = list(iter_pharaoh(tmp_path / "a.txt"))
    packed = list(iter_pharaoh(tmp_path / "a.txt.gz"))
    assert packed == plain == [[(0, 0), (1, 2)], [], [(3, 0)]]
    check_pharaoh(tmp_path / "a.txt.gz", 3)
    (tmp_path / "cut.gz").write_bytes(gzip.compress(text.encode())[:-6])   # truncated
    with pytest.raises(DataError, match="not a valid gzip file"):
        check_pharaoh(tmp_path / "cut.gz", 3)
