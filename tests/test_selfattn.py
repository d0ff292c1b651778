"""Encoder and decoder self-attention views (seqattn.selfattn, ``align --attention``)."""

from __future__ import annotations

import json
import math

import pytest
import torch

from seqattn.cli import run
from seqattn.data import pad_sources
from seqattn.vocab import BOS, PAD


@pytest.fixture(scope="module")
def model(tiny_transformer):
    import seqattn

    return seqattn.load(tiny_transformer).model


def _batch():
    src, src_pad = pad_sources([[10, 11, 12, 13], [20, 21]])                # (2, 5)
    tgt_in = torch.tensor([[BOS, 30, 31, 32], [BOS, 40, PAD, PAD]])          # (2, 4)
    return src, src_pad, tgt_in


def test_encoder_layer0_weights_match_a_hand_computation(model):
    src, src_pad, tgt_in = _batch()
    enc, dec = model.self_attention(src, src_pad, tgt_in)
    assert enc.shape == (2, 2, 4, 5, 5) and dec.shape == (2, 2, 4, 4, 4)
    layer = model.encoder[0]
    with torch.no_grad():
        h = layer.res_attn.normed(model._embed(src, model.src_embed))        # (B, S, D)
        H, hd = 4, 8
        q = layer.self_attn.w_q(h).view(2, 5, H, hd).transpose(1, 2)
        k = layer.self_attn.w_k(h).view(2, 5, H, hd).transpose(1, 2)
        scores = q @ k.transpose(-1, -2) / math.sqrt(hd)                     # (B, H, S, S)
        scores = scores.masked_fill(src_pad[:, None, None, :], float("-inf"))
        expected = scores.softmax(-1)
    torch.testing.assert_close(enc[:, 0], expected)


def test_self_attention_rows_are_distributions_padding_free_and_causal(model):
    src, src_pad, tgt_in = _batch()
    enc, dec = model.self_attention(src, src_pad, tgt_in)
    torch.testing.assert_close(enc.sum(-1)[0], torch.ones(2, 4, 5))
    assert torch.all(enc[1, ..., 3:] == 0)                                  # padding keys
    future = torch.ones(4, 4, dtype=torch.bool).triu(1)
    assert torch.all(dec[..., future] == 0)                                 # causal
    torch.testing.assert_close(dec.sum(-1), torch.ones(2, 2, 4, 4))
    alone, _ = model.self_attention(src[1:, :3], src_pad[1:, :3], tgt_in[1:, :2])
    torch.testing.assert_close(alone[0], enc[1, ..., :3, :3])                # batch-invariant


def _jsonl(tiny_transformer, capsys, stdin, monkeypatch, *args):
    import io
    import sys

    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(stdin.encode())))
    code = run(["align", "-m", str(tiny_transformer), "-f", "jsonl", *args, "-"])
    out = capsys.readouterr()
    assert code == 0, out.err
    return [json.loads(x) for x in out.out.splitlines()]


def test_encoder_view_one_record_per_line_with_argmax_links(tiny_transformer, capsys,
                                                            monkeypatch):
    text = "The animal did not cross the road because it was tired.\n\nA dog ||| ein Hund\n"
    recs = _jsonl(tiny_transformer, capsys, text, monkeypatch, "-a", "encoder", "--layer", "1",
                  "--heads", "2")
    assert len(recs) == 3 and recs[1]["links"] == [] and recs[1]["attention"] == []
    first = recs[0]
    assert first["source_words"] == first["target_words"] == first["source"].split()
    assert first["view"] == {"layer": 1, "heads": "2", "shift": False, "merge": "sum",
                             "attention": "encoder"}
    att = torch.tensor(first["attention"])                                   # (n, n)
    assert att.shape == (11, 11)
    torch.testing.assert_close(att.sum(-1) + torch.tensor(first["eos"]), torch.ones(11))
    assert first["links"] == sorted([int(row.argmax()), q] for q, row in enumerate(att))
    assert recs[2]["source"] == "A dog"                                      # target ignored


def test_decoder_view_reads_the_target_under_its_source(tiny_transformer, capsys, monkeypatch):
    recs = _jsonl(tiny_transformer, capsys, "A man sleeps . ||| Ein Mann schläft .\n",
                  monkeypatch, "-a", "decoder")
    att = torch.tensor(recs[0]["attention"])                                 # (4, 4)
    assert recs[0]["source_words"] == ["Ein", "Mann", "schläft", "."]
    assert torch.all(att.triu(1) == 0)                                       # no look-ahead
    assert recs[0]["view"]["attention"] == "decoder" and recs[0]["view"]["layer"] == 1


@pytest.mark.parametrize("args,message", [
    (["-a", "encoder", "--reverse-model", "x"], "--reverse-model applies to cross-attention"),
    (["-a", "encoder", "--shift-att"], "--shift-att applies to cross-attention"),
    (["-a", "encoder", "--layer", "2"], "--layer 2 is out of range; this model has 2 encoder"),
    (["-a", "decoder", "--heads", "4"], "--heads must be mean, max or a head number 0..3"),
])
def test_self_attention_bad_requests(tiny_transformer, capsys, args, message):
    code = run(["align", "-m", str(tiny_transformer), *args, "-"])
    err = capsys.readouterr().err.strip()
    assert code == 2 and len(err.splitlines()) == 1 and message in err, err


def test_self_attention_needs_a_transformer(tiny_model, capsys):
    import seqattn

    if seqattn.load(tiny_model).cfg.model.arch == "transformer":
        pytest.skip("an RNN case")
    code = run(["align", "-m", str(tiny_model), "-a", "encoder", "-"])
    err = capsys.readouterr().err
    assert code == 2 and "self-attention views need a Transformer" in err
