"""Beam search against greedy decoding, teacher forcing, and batch composition."""

from __future__ import annotations

import math

import pytest
import torch

from seqattn.data import pad_sources
from seqattn.decode import beam_search, greedy, length_penalty
from seqattn.translate import load
from seqattn.vocab import EOS
from tests.conftest import SAMPLE


def _sources(translator, n: int) -> list[list[int]]:
    lines = (SAMPLE / "test.en").read_text(encoding="utf-8").splitlines()[:n]
    return translator.src_vocab.encode(lines)


def _strip(row: list[int]) -> list[int]:
    return row[: row.index(EOS)] if EOS in row else row


def test_beam_one_equals_greedy(tiny_model):
    tr = load(tiny_model)
    src, src_pad = pad_sources(_sources(tr, 12))
    tokens, _ = greedy(tr.model, src, src_pad, max_len=12)
    beams = beam_search(tr.model, src, src_pad, beam_size=1, max_len=12)
    for row, hyps in zip(tokens.tolist(), beams):
        assert _strip(row) == _strip(hyps[0].tokens)


def test_nbest_sorted_and_scores_are_teacher_forced_log_probs(tiny_model):
    tr = load(tiny_model)
    src, src_pad = pad_sources(_sources(tr, 4))
    alpha = 0.6
    results = beam_search(tr.model, src, src_pad, beam_size=4, n_best=4, max_len=10, alpha=alpha)
    for b, hyps in enumerate(results):
        assert len(hyps) == 4
        scores = [h.score for h in hyps]
        assert scores == sorted(scores, reverse=True)
        for h in hyps:
            # an independent recomputation: one teacher-forced pass over the hypothesis
            tgt_in = torch.tensor([[2] + h.tokens[:-1]])
            logits, _ = tr.model(src[b: b + 1], src_pad[b: b + 1], tgt_in)
            lp = logits.log_softmax(-1)[0, torch.arange(len(h.tokens)), torch.tensor(h.tokens)]
            assert h.token_log_probs == pytest.approx(lp.tolist(), abs=1e-4)
            assert h.log_prob == pytest.approx(sum(lp.tolist()), abs=1e-3)
            assert h.score == pytest.approx(h.log_prob / length_penalty(len(h.tokens), alpha))
            assert h.weights.shape[2] == len(h.tokens)


def test_length_penalty_formula():
    assert length_penalty(7, 0.0) == 1.0
    assert length_penalty(7, 1.0) == pytest.approx(2.0)
    assert length_penalty(1, 0.6) == pytest.approx(1.0)
    assert length_penalty(11, 0.6) == pytest.approx((16 / 6) ** 0.6)


@pytest.mark.parametrize("beam", [1, 5])
def test_alone_equals_in_a_batch_of_64(tiny_model, beam):
    tr = load(tiny_model)
    lines = (SAMPLE / "train.en").read_text(encoding="utf-8").splitlines()[:64]
    together = tr.translate(lines, beam=beam, n_best=beam, batch_tokens=100_000)
    for k in (0, 17, 63):
        alone = tr.translate([lines[k]], beam=beam)[0]
        assert alone.score == pytest.approx(together[k].score, abs=1e-4)
        if alone.text != together[k].text:
            # only a tie within float rounding may swap the best two (a barely trained
            # model's beams are full of near-ties, and a batch sums in another order): the
            # batch found the same text as its runner-up, with the same score
            runner_up = together[k].hyps[1]
            assert runner_up.text == alone.text
            assert runner_up.score == pytest.approx(alone.score, abs=1e-4)


def test_min_and_max_length_force_exact_length(tiny_transformer):
    tr = load(tiny_transformer)
    src, src_pad = pad_sources(_sources(tr, 5))
    for hyps in beam_search(tr.model, src, src_pad, beam_size=3, n_best=3, max_len=7,
                            min_len=7):
        for h in hyps:
            assert len(h.tokens) == 8 and h.tokens[-1] == EOS and EOS not in h.tokens[:-1]
            assert math.isfinite(h.score)


def test_per_sentence_max_length(tiny_transformer):
    tr = load(tiny_transformer)
    src, src_pad = pad_sources(_sources(tr, 3))
    limits = torch.tensor([2, 5, 9])
    for hyps, limit in zip(beam_search(tr.model, src, src_pad, beam_size=2, max_len=limits),
                           limits.tolist()):
        assert len(hyps[0].tokens) <= limit + 1
