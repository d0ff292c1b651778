"""Tests for seqattn.models and seqattn.decode.greedy: shapes, attention properties, teacher
forcing == step-by-step decoding (RNN flows and the Transformer's key/value cache), padding
invariance, beam reordering, and the Bahdanau / Luong query timing."""

from __future__ import annotations

import itertools
from dataclasses import dataclass

import pytest
import torch
from torch import Tensor

from seqattn.attention import masked_softmax
from seqattn.config import ModelConfig
from seqattn.decode import greedy
from seqattn.models import (
    BOS_ID,
    BUILDERS,
    EOS_ID,
    PAD_ID,
    RNNSeq2Seq,
    TransformerSeq2Seq,
    build_model,
)

SRC_V, TGT_V = 11, 13
RNN = {"hidden_size": 8, "embed_size": 6, "enc_layers": 2, "dec_layers": 2, "dropout": 0.3}
TF = {"hidden_size": 8, "heads": 2, "ff_size": 16, "enc_layers": 2, "dec_layers": 3,
      "dropout": 0.3, "max_positions": 32}
VARIANTS = {
    "bahdanau_gru": ModelConfig(arch="rnn", attention="bahdanau", cell="gru", **RNN),
    "luong_dot_lstm": ModelConfig(arch="rnn", attention="luong", score="dot", cell="lstm", **RNN),
    "luong_general": ModelConfig(arch="rnn", attention="luong", score="general", **RNN),
    "luong_concat": ModelConfig(arch="rnn", attention="luong", score="concat", **RNN),
    "luong_general_no_feed": ModelConfig(arch="rnn", attention="luong", score="general",
                                         input_feeding=False, **RNN),
    "transformer_pre": ModelConfig(arch="transformer", norm="pre", **TF),
    "transformer_post": ModelConfig(arch="transformer", norm="post", **TF),
}
ATOL = 1e-5


def make(name: str) -> torch.nn.Module:
    torch.manual_seed(0)
    return build_model(VARIANTS[name], SRC_V, TGT_V).eval()


def layers_heads(name: str) -> tuple[int, int]:
    cfg = VARIANTS[name]
    return (cfg.dec_layers, cfg.heads) if cfg.arch == "transformer" else (1, 1)


SRC_LENS, TGT_LENS = [6, 4, 2], [5, 3, 4]


def batch() -> tuple[Tensor, Tensor, Tensor]:
    """Three right-padded sentence pairs of different lengths.

    Shapes: src (3, 6) long, src_pad (3, 6) bool, tgt (3, 5) long
    """
    gen = torch.Generator().manual_seed(1)
    src = torch.randint(4, SRC_V, (3, max(SRC_LENS)), generator=gen)
    tgt = torch.randint(4, TGT_V, (3, max(TGT_LENS)), generator=gen)
    tgt[:, 0] = BOS_ID
    src_pad = torch.arange(src.size(1)) >= torch.tensor(SRC_LENS).unsqueeze(1)
    tgt_pad = torch.arange(tgt.size(1)) >= torch.tensor(TGT_LENS).unsqueeze(1)
    return src.masked_fill(src_pad, PAD_ID), src_pad, tgt.masked_fill(tgt_pad, PAD_ID)


def run_steps(model: torch.nn.Module, src: Tensor, src_pad: Tensor,
              tgt: Tensor) -> tuple[Tensor, Tensor]:
    """Feed ``tgt`` one token at a time: logits (B, T, V), weights (B, L, H, T, S)."""
    memory = model.encode(src, src_pad)
    state = model.init_state(memory)
    logits, weights = [], []
    for t in range(tgt.size(1)):
        lg, state, w = model.step(tgt[:, t], state, memory)
        logits.append(lg)
        weights.append(w)
    return torch.stack(logits, dim=1), torch.stack(weights, dim=3)


@pytest.mark.parametrize("name", VARIANTS)
def test_shapes(name: str) -> None:
    model, (src, src_pad, tgt) = make(name), batch()
    B, S = src.shape
    T, (L, H) = tgt.size(1), layers_heads(name)
    logits, weights = model(src, src_pad, tgt)
    assert logits.shape == (B, T, TGT_V) and weights is None
    logits, weights = model(src, src_pad, tgt, need_weights=True)
    assert logits.shape == (B, T, TGT_V) and weights.shape == (B, L, H, T, S)
    memory = model.encode(src, src_pad)
    assert torch.equal(memory.src_pad, src_pad)
    lg, state, w = model.step(tgt[:, 0], model.init_state(memory), memory)
    assert lg.shape == (B, TGT_V) and w.shape == (B, L, H, S)
    assert type(state) is type(model.init_state(memory))


@pytest.mark.parametrize("name", VARIANTS)
def test_features_through_the_output_layer_are_the_logits(name: str) -> None:
    """``project=False`` (what the training loss reads) and ``output_layer()`` give back
    exactly what ``forward`` gives, in training mode too (same dropout draws)."""
    model, (src, src_pad, tgt) = make(name), batch()
    for training in (False, True):
        model.train(training)
        torch.manual_seed(5)
        logits, _ = model(src, src_pad, tgt)
        torch.manual_seed(5)
        features, _ = model(src, src_pad, tgt, project=False)
        assert features.shape[:2] == tgt.shape and features.size(-1) != TGT_V
        torch.testing.assert_close(model.output_layer()(features), logits, atol=0, rtol=0)


@pytest.mark.parametrize("name", VARIANTS)
def test_weights_are_distributions_with_zero_on_padding(name: str) -> None:
    model, (src, src_pad, tgt) = make(name), batch()
    _, forced = model(src, src_pad, tgt, need_weights=True)          # (B, L, H, T, S)
    _, stepped = run_steps(model, src, src_pad, tgt)
    for w in (forced, stepped):
        torch.testing.assert_close(w.sum(dim=-1), torch.ones(w.shape[:-1]))
        assert (w.movedim(-1, 1)[src_pad] == 0).all()                # exactly 0, not tiny
        assert (w.movedim(-1, 1)[~src_pad] > 0).all()


@pytest.mark.parametrize("name", VARIANTS)
def test_teacher_forcing_equals_step_by_step(name: str) -> None:
    model, (src, src_pad, tgt) = make(name), batch()
    logits, weights = model(src, src_pad, tgt, need_weights=True)
    fast_logits, _ = model(src, src_pad, tgt)                       # fused attention path
    step_logits, step_weights = run_steps(model, src, src_pad, tgt)
    torch.testing.assert_close(step_logits, logits, atol=ATOL, rtol=0)
    torch.testing.assert_close(step_weights, weights, atol=ATOL, rtol=0)
    torch.testing.assert_close(fast_logits, logits, atol=ATOL, rtol=0)


@pytest.mark.parametrize("name", ["transformer_pre", "transformer_post"])
def test_transformer_future_tokens_do_not_change_earlier_logits(name: str) -> None:
    model, (src, src_pad, tgt) = make(name), batch()
    changed = tgt.clone()
    changed[:, 3:] = (changed[:, 3:] + 1) % TGT_V
    a, wa = model(src, src_pad, tgt, need_weights=True)
    b, wb = model(src, src_pad, changed, need_weights=True)
    torch.testing.assert_close(b[:, :3], a[:, :3], atol=ATOL, rtol=0)
    torch.testing.assert_close(wb[..., :3, :], wa[..., :3, :], atol=ATOL, rtol=0)
    assert not torch.allclose(b[:, 3:], a[:, 3:])                    # the test can fail


@pytest.mark.parametrize("name", VARIANTS)
def test_sentence_alone_equals_sentence_in_padded_batch(name: str) -> None:
    model, (src, src_pad, tgt) = make(name), batch()
    logits, weights = model(src, src_pad, tgt, need_weights=True)
    for i, (s, t) in enumerate(zip(SRC_LENS, TGT_LENS, strict=True)):
        alone_src = src[i:i + 1, :s]
        alone, w = model(alone_src, torch.zeros_like(alone_src, dtype=torch.bool),
                         tgt[i:i + 1, :t], need_weights=True)
        torch.testing.assert_close(alone[0], logits[i, :t], atol=ATOL, rtol=0)
        torch.testing.assert_close(w[0], weights[i, ..., :t, :s], atol=ATOL, rtol=0)


@pytest.mark.parametrize("name", VARIANTS)
def test_select_reorders_memory_and_state(name: str) -> None:
    model, (src, src_pad, tgt) = make(name), batch()
    memory = model.encode(src, src_pad)
    state = model.init_state(memory)
    for t in range(2):
        _, state, _ = model.step(tgt[:, t], state, memory)
    expected, _, expected_w = model.step(tgt[:, 2], state, memory)

    perm = torch.tensor([2, 0, 1])
    inverse = torch.argsort(perm)
    got, _, got_w = model.step(tgt[perm, 2], state.select(perm), memory.select(perm))
    torch.testing.assert_close(got[inverse], expected, atol=ATOL, rtol=0)
    torch.testing.assert_close(got_w[inverse], expected_w, atol=ATOL, rtol=0)
    back, _, _ = model.step(tgt[:, 2], state.select(perm).select(inverse),
                            memory.select(perm).select(inverse))
    torch.testing.assert_close(back, expected, atol=ATOL, rtol=0)

    beams = torch.arange(3).repeat_interleave(2)                     # expand to 2 beams each
    wide, _, _ = model.step(tgt[beams, 2], state.select(beams), memory.select(beams))
    torch.testing.assert_close(wide, expected[beams], atol=ATOL, rtol=0)


@pytest.mark.parametrize("name", VARIANTS)
def test_a_state_can_be_stepped_twice(name: str) -> None:
    """Two different continuations of one state (the Transformer writes its cache in place)
    each equal the teacher-forced logits of their own prefix, past the cache's growth chunk."""
    model, (src, src_pad, tgt) = make(name), batch()
    memory = model.encode(src, src_pad)
    long = torch.cat([tgt, tgt, tgt], dim=1)[:, :12]                 # (B, 12): beyond one chunk
    state = model.init_state(memory)
    for t in range(10):
        _, state, _ = model.step(long[:, t], state, memory)
    other = (long[:, 10] + 1) % TGT_V
    _, first, _ = model.step(long[:, 10], state, memory)
    _, second, _ = model.step(other, state, memory)                  # branches off the same state
    got_first, _, _ = model.step(long[:, 11], first, memory)
    got_second, _, _ = model.step(long[:, 11], second, memory)
    full, _ = model(src, src_pad, long)
    branched = long.clone()
    branched[:, 10] = other
    full_other, _ = model(src, src_pad, branched)
    torch.testing.assert_close(got_first, full[:, 11], atol=ATOL, rtol=0)
    torch.testing.assert_close(got_second, full_other[:, 11], atol=ATOL, rtol=0)
    assert not torch.allclose(got_first, got_second)                 # the branches differ


def sharpened(name: str) -> torch.nn.Module:
    """A model whose attention is far from uniform, so that queries that differ give weights
    that differ (at initialisation all weights are close to 1/S)."""
    model = make(name)
    with torch.no_grad():
        for p in model.decoder.score.parameters():
            p.mul_(10.0)
        if hasattr(model.decoder, "kv_bridge"):
            model.decoder.kv_bridge.weight.mul_(30.0)
    return model


def test_bahdanau_attends_with_the_previous_state() -> None:
    """e_tj = a(s_{t-1}, h_j): the step's weights follow from the state before the RNN update."""
    model, (src, src_pad, tgt) = sharpened("bahdanau_gru"), batch()
    decoder = model.decoder
    memory = model.encode(src, src_pad)
    state = model.init_state(memory)
    _, state, _ = model.step(tgt[:, 0], state, memory)
    _, new_state, w = model.step(tgt[:, 1], state, memory)

    def weights_from(hidden: Tensor) -> Tensor:
        scores = decoder.score(hidden[:, -1].unsqueeze(1), memory.keys)   # (B, 1, S)
        return masked_softmax(scores, src_pad).squeeze(1)                 # (B, S)

    torch.testing.assert_close(w[:, 0, 0], weights_from(state.hidden), atol=ATOL, rtol=0)
    assert not torch.allclose(w[:, 0, 0], weights_from(new_state.hidden), atol=1e-2)


@pytest.mark.parametrize("name", ["luong_dot_lstm", "luong_general", "luong_concat"])
def test_luong_attends_with_the_new_state(name: str) -> None:
    """a_t = align(h_t, h̄_s): the step's weights follow from the state after the RNN update."""
    model, (src, src_pad, tgt) = sharpened(name), batch()
    memory = model.encode(src, src_pad)
    state = model.init_state(memory)
    _, state, _ = model.step(tgt[:, 0], state, memory)
    _, new_state, w = model.step(tgt[:, 1], state, memory)

    def weights_from(hidden: Tensor) -> Tensor:
        scores = model.decoder.score(hidden[:, -1].unsqueeze(1), memory.keys)
        return masked_softmax(scores, src_pad).squeeze(1)

    torch.testing.assert_close(w[:, 0, 0], weights_from(new_state.hidden), atol=ATOL, rtol=0)
    assert not torch.allclose(w[:, 0, 0], weights_from(state.hidden), atol=1e-2)


def test_tied_embeddings_share_storage() -> None:
    cfg = VARIANTS["transformer_pre"]
    joint = build_model(cfg, TGT_V, TGT_V)
    assert joint.src_embed.weight is joint.tgt_embed.weight is joint.generator.weight
    separate = build_model(cfg, SRC_V, TGT_V)
    assert separate.tgt_embed.weight.data_ptr() == separate.generator.weight.data_ptr()
    assert separate.src_embed.weight.data_ptr() != separate.tgt_embed.weight.data_ptr()
    untied = build_model(ModelConfig(arch="transformer", tie_embeddings=False, **TF), TGT_V, TGT_V)
    ptrs = {untied.src_embed.weight.data_ptr(), untied.tgt_embed.weight.data_ptr(),
            untied.generator.weight.data_ptr()}
    assert len(ptrs) == 3
    assert not joint.tgt_embed.weight[PAD_ID].any()                  # padding row stays zero


def valid_configs() -> list[ModelConfig]:
    rnn = [ModelConfig(arch="rnn", attention="bahdanau", cell=cell, **RNN)
           for cell in ("gru", "lstm")]
    rnn += [ModelConfig(arch="rnn", attention="luong", score=score, cell=cell, input_feeding=feed,
                        **RNN)
            for score, cell, feed in itertools.product(("dot", "general", "concat"),
                                                       ("gru", "lstm"), (True, False))]
    rnn.append(ModelConfig(arch="rnn", hidden_size=5, embed_size=3, enc_layers=1, dec_layers=1))
    tf = [ModelConfig(arch="transformer", norm=norm, tie_embeddings=tie, **TF)
          for norm, tie in itertools.product(("pre", "post"), (True, False))]
    tf.append(ModelConfig(arch="transformer", hidden_size=6, heads=3, ff_size=4, enc_layers=1,
                          dec_layers=1))
    return rnn + tf


@pytest.mark.parametrize("vocabs", [(SRC_V, TGT_V), (TGT_V, TGT_V)])
def test_build_model_accepts_every_valid_config(vocabs: tuple[int, int]) -> None:
    src, src_pad, tgt = batch()
    for cfg in valid_configs():
        model = build_model(cfg, *vocabs)
        assert isinstance(model, {"rnn": RNNSeq2Seq, "transformer": TransformerSeq2Seq}[cfg.arch])
        logits, _ = model(src, src_pad, tgt)
        assert logits.shape == (3, tgt.size(1), TGT_V) and torch.isfinite(logits).all()
        logits.sum().backward()                                      # every config trains


@pytest.mark.parametrize("arch", sorted(BUILDERS))
def test_every_architecture_tells_its_attention_shape_and_limits(arch: str) -> None:
    """What the interface promises code outside models/: the (layers, heads) of the attention
    a model returns, known from the config before it is built, and its source limit."""
    from seqattn.config import config_from_dict
    from seqattn.models import attention_shape_of

    cfg = config_from_dict({}, [f"model.arch={arch}", "model.hidden_size=16", "model.heads=2",
                                "model.ff_size=16", "model.embed_size=8", "model.dec_layers=3",
                                "model.enc_layers=2", "model.max_positions=50"]).model
    model = build_model(cfg, 20, 20)
    src, src_pad = torch.randint(4, 20, (2, 5)), torch.zeros(2, 5, dtype=torch.bool)
    _, weights = model(src, src_pad, torch.randint(4, 20, (2, 4)), need_weights=True)
    assert tuple(weights.shape[1:3]) == model.attention_shape() == attention_shape_of(cfg)
    if arch == "transformer":
        assert model.attention_shape() == (3, 2) and model.max_source_len == 49
        enc, dec = model.self_attention(src, src_pad, torch.randint(4, 20, (2, 4)))
        assert tuple(enc.shape[1:3]) == model.attention_shape("encoder") == (2, 2)
        assert tuple(dec.shape[1:3]) == model.attention_shape("decoder") == (3, 2)
    else:
        assert model.attention_shape() == (1, 1) and model.attention_shape("encoder") is None
        assert model.max_source_len > 0 and model.max_target_len is None


def test_transformer_rejects_targets_beyond_max_positions() -> None:
    model, (src, src_pad, _) = make("transformer_pre"), batch()
    too_long = torch.full((3, TF["max_positions"] + 1), 5)
    with pytest.raises(ValueError, match="max_positions"):
        model(src, src_pad, too_long)


# ------------------------------------------------------------------------------------ greedy


@dataclass(frozen=True)
class _Memory:
    src_pad: Tensor

    def select(self, index: Tensor) -> _Memory:
        return _Memory(self.src_pad.index_select(0, index))


@dataclass(frozen=True)
class _State:
    t: int

    def select(self, index: Tensor) -> _State:
        return self


class ScriptedModel:
    """A fake Seq2Seq whose step t predicts ``script[:, t]``; weights are uniform over the source.
    Shows that ``greedy`` needs nothing but the interface."""

    def __init__(self, script: Tensor, vocab: int = 8):
        self.script, self.vocab, self.prev_tokens = script, vocab, []

    def encode(self, src: Tensor, src_pad: Tensor) -> _Memory:
        return _Memory(src_pad)

    def init_state(self, memory: _Memory) -> _State:
        return _State(0)

    def step(self, prev_tokens: Tensor, state: _State,
             memory: _Memory) -> tuple[Tensor, _State, Tensor]:
        self.prev_tokens.append(prev_tokens)
        logits = torch.nn.functional.one_hot(self.script[:, state.t], self.vocab).float()
        keep = (~memory.src_pad).float()
        weights = (keep / keep.sum(dim=1, keepdim=True))[:, None, None]    # (B, 1, 1, S)
        return logits, _State(state.t + 1), weights


def test_greedy_pads_after_eos_and_stops_when_all_rows_finish() -> None:
    E = EOS_ID
    script = torch.tensor([[5, E, 6, 6, 6, 6], [5, 6, 7, E, 6, 6], [E, 7, 7, 7, 7, 7]])
    src_pad = torch.tensor([[False, False, True]] * 3)
    model = ScriptedModel(script)
    tokens, weights = greedy(model, torch.ones(3, 3, dtype=torch.long), src_pad, max_len=6)
    P = PAD_ID
    assert tokens.tolist() == [[5, E, P, P], [5, 6, 7, E], [E, P, P, P]]
    assert weights.shape == (3, 1, 1, 4, 3)
    assert weights[0, 0, 0, 2:].eq(0).all() and weights[2, 0, 0, 1:].eq(0).all()
    torch.testing.assert_close(weights[1, 0, 0, :, :2], torch.full((4, 2), 0.5))
    assert model.prev_tokens[0].tolist() == [BOS_ID] * 3
    assert model.prev_tokens[1].tolist() == [5, 5, E]
    assert model.prev_tokens[2].tolist() == [E, 6, P]                # after eos: pad


def test_greedy_stops_at_max_len() -> None:
    script = torch.full((2, 9), 5)
    tokens, weights = greedy(ScriptedModel(script), torch.ones(2, 3, dtype=torch.long),
                             torch.zeros(2, 3, dtype=torch.bool), max_len=4)
    assert tokens.shape == (2, 4) and weights.shape == (2, 1, 1, 4, 3)
    with pytest.raises(ValueError, match="max_len"):
        greedy(ScriptedModel(script), torch.ones(2, 3, dtype=torch.long),
               torch.zeros(2, 3, dtype=torch.bool), max_len=0)


@pytest.mark.parametrize("name", VARIANTS)
def test_greedy_agrees_with_teacher_forcing_on_its_own_output(name: str) -> None:
    model, (src, src_pad, _) = make(name), batch()
    tokens, weights = greedy(model, src, src_pad, max_len=5)
    tgt_in = torch.cat([torch.full((3, 1), BOS_ID), tokens[:, :-1]], dim=1)
    logits, forced = model(src, src_pad, tgt_in, need_weights=True)
    live = torch.cat([torch.ones(3, 1, dtype=torch.bool),
                      (tokens[:, :-1] != EOS_ID).cummin(dim=1).values], dim=1)  # before any eos
    assert torch.equal(logits.argmax(-1)[live], tokens[live])
    torch.testing.assert_close(weights.movedim(3, 1)[live], forced.movedim(3, 1)[live],
                               atol=ATOL, rtol=0)
