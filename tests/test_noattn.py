"""The encoder-decoder without attention (issue 21): ``model.attention: none``, the fixed-vector
baseline of Cho et al. (2014). Its context is the encoder's final state at every step, it
trains and translates through the same interface, and every alignment command says clearly
that it has no attention to show."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from seqattn.cli import run
from seqattn.config import ModelConfig, config_from_dict
from seqattn.errors import ConfigError
from seqattn.models import attention_shape_of, build_model
from seqattn.models.rnn import RNNSeq2Seq

SIZES = {"arch": "rnn", "hidden_size": 16, "embed_size": 8, "enc_layers": 1, "dec_layers": 1,
         "dropout": 0.0}
V = 30


def _batch(seed: int = 0) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    src = torch.randint(4, V, (3, 7), generator=g)
    src[1, 5:] = 0                                                  # right padding
    src[2, 3:] = 0
    tgt_in = torch.randint(4, V, (3, 6), generator=g)
    return src, src == 0, tgt_in


def _noisy_annotations(model: RNNSeq2Seq, keep_final: bool) -> None:
    """Make the encoder return random annotations at every position (its final state kept,
    or replaced by random too)."""
    real = model.encoder.forward

    def forward(src: torch.Tensor, src_pad: torch.Tensor):
        outputs, final = real(src, src_pad)
        g = torch.Generator().manual_seed(99)
        noise = torch.randn(outputs.shape, generator=g)
        return noise, final if keep_final else torch.randn(final.shape, generator=g)

    model.encoder.forward = forward                                 # type: ignore[method-assign]


@pytest.mark.parametrize("cell", ["gru", "lstm"])
def test_the_context_is_the_final_encoder_state_only(cell):
    """Replacing every encoder state but the final one changes nothing; replacing the final
    one changes the logits. The same surgery changes a Bahdanau model's logits: it reads them."""
    src, src_pad, tgt_in = _batch()
    outputs = {}
    for attention in ("none", "bahdanau"):
        torch.manual_seed(0)
        model = build_model(ModelConfig(attention=attention, cell=cell, **SIZES), V, V).eval()
        with torch.no_grad():
            before, _ = model(src, src_pad, tgt_in)
            _noisy_annotations(model, keep_final=True)
            after, _ = model(src, src_pad, tgt_in)
            outputs[attention] = (before, after)
            if attention == "none":
                _noisy_annotations(model, keep_final=False)
                moved, _ = model(src, src_pad, tgt_in)
                assert not torch.allclose(before, moved, atol=1e-3)
    assert torch.equal(*outputs["none"])
    assert not torch.allclose(*outputs["bahdanau"], atol=1e-3)


def test_step_by_step_decoding_equals_teacher_forcing_and_shows_zero_layers():
    torch.manual_seed(1)
    model = build_model(ModelConfig(attention="none", **SIZES), V, V).eval()
    src, src_pad, tgt_in = _batch(1)
    with torch.no_grad():
        logits, weights = model(src, src_pad, tgt_in, need_weights=True)
        memory = model.encode(src, src_pad)
        state = model.init_state(memory)
        for t in range(tgt_in.size(1)):
            step_logits, state, w = model.step(tgt_in[:, t], state, memory)
            assert torch.allclose(step_logits, logits[:, t], atol=1e-5)
            assert tuple(w.shape) == (3, 0, 1, 7)                     # (B, L=0, H, S)
    assert tuple(weights.shape) == (3, 0, 1, 6, 7)                  # (B, L=0, H, T, S)
    assert model.attention_shape() is None and model.attention_shape("encoder") is None
    assert attention_shape_of(ModelConfig(attention="none", **SIZES)) is None
    # the score's parameters are gone: only what reads the fixed context is left
    assert not any(name.startswith("decoder.score") for name, _ in model.named_parameters())


def test_beam_and_greedy_decode_a_model_without_attention():
    from seqattn.decode import beam_search, greedy

    torch.manual_seed(2)
    model = build_model(ModelConfig(attention="none", **SIZES), V, V).eval()
    src, src_pad, _ = _batch(2)
    with torch.no_grad():
        tokens, weights = greedy(model, src, src_pad, max_len=5)
        hyps = beam_search(model, src, src_pad, beam_size=3, max_len=5, n_best=2)
    assert tokens.shape[0] == 3 and weights.shape[1] == 0
    assert all(len(h) == 2 for h in hyps)


def test_config_checks():
    with pytest.raises(ConfigError, match="is for arch rnn"):
        ModelConfig(arch="transformer", attention="none")
    with pytest.raises(ConfigError, match="drop score"):
        ModelConfig(arch="rnn", attention="none", score="dot")
    assert ModelConfig(arch="rnn", attention="none").score is None
    cfg = config_from_dict({}, ["model.arch=rnn", "model.attention=none",
                                "training.guided_alignment=links.txt"])
    from seqattn.train.guided import guided_view

    with pytest.raises(ConfigError, match="needs attention to guide"):
        guided_view(cfg)


def _cli(*args: str, stdin: str = "") -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "seqattn", *args], input=stdin,
                          capture_output=True, text=True, timeout=120)


def test_translate_works_and_alignment_commands_say_there_is_no_attention(tiny_noattn,
                                                                        tmp_path):
    m = str(tiny_noattn)
    plain = _cli("translate", "-m", m, stdin="A dog runs.\n\nThree 42 cats.\n7 birds.\n")
    assert plain.returncode == 0, plain.stderr
    assert len(plain.stdout.splitlines()) == 4 and plain.stdout.splitlines()[1] == ""
    assert plain.stderr.splitlines() == [   # said once, not per line with a number
        "warning: numbers are not copied into the output: this model has no attention to "
        "place them (--no-copy-numbers says so quietly)"]
    out = _cli("translate", "-m", m, "-f", "jsonl", "--n-best", "2", "-b", "3",
               stdin="A dog runs.\n")
    assert out.returncode == 0, out.stderr
    rec = json.loads(out.stdout)
    assert rec["translation"] == rec["nbest"][0]["translation"] and len(rec["nbest"]) == 2
    assert not {"alignment", "links", "source_words"} & rec.keys()   # nothing to align with
    assert rec["repro"]["model"] == tiny_noattn.name
    for args in (["translate", "-m", m, "--align"], ["translate", "-m", m, "--check"],
                 ["translate", "-m", m, "-f", "jsonl", "--attention"],
                 ["translate", "-m", m, "--layer", "0"],
                 ["align", "-m", m, "A dog runs.", "Ein Hund rennt."]):
        res = _cli(*args, stdin="A dog runs.\n")
        assert res.returncode == 2, (args, res.stderr)
        assert res.stderr.strip().splitlines() == [
            "error: this model has no attention to show: it was built with model.attention "
            "'none', so its decoder reads only the encoder's final state; it translates "
            "(translate, evaluate), and alignments need a model with attention"], args
    src, ref = tmp_path / "s.en", tmp_path / "s.de"
    src.write_text("A dog runs.\nA cat sleeps.\n", encoding="utf-8")
    ref.write_text("Ein Hund rennt.\nEine Katze schläft.\n", encoding="utf-8")
    ev = _cli("evaluate", "-m", m, "--src", str(src), "-r", str(ref), "--format", "json")
    assert ev.returncode == 0, ev.stderr
    assert "bleu" in json.loads(ev.stdout)["sets"][0]["systems"][0]["scores"]


def test_train_aligner_refuses_a_model_without_attention(tiny_noattn, tmp_path):
    from seqattn.checkpoint import load_model_dir
    from seqattn.train.aligner import train_aligner

    src = tmp_path / "s.en"
    src.write_text("A dog runs.\n", encoding="utf-8")
    tgt = tmp_path / "s.de"
    tgt.write_text("Ein Hund rennt.\n", encoding="utf-8")
    links = tmp_path / "l.txt"
    links.write_text("0-0 1-1 2-2\n", encoding="utf-8")
    with pytest.raises(ConfigError, match="no attention to show"):
        train_aligner(load_model_dir(tiny_noattn), src, tgt, links)


def test_the_encdec_preset_trains_and_the_run_translates(tmp_path):
    from tests.test_train import _corpus

    out = tmp_path / "run"
    args = ["--quiet", "train", "--preset", "encdec-gru", "--out", str(out),
            "--set", "training.max_steps=4", "--set", "training.valid_every=2"]
    for item in _corpus(tmp_path):
        args += ["--set", item]
    assert run(args) == 0
    from seqattn.config import load_config

    assert load_config(out / "config.yaml").model.attention == "none"
    res = _cli("translate", "-m", str(out), "A dog runs.")
    assert res.returncode == 0 and len(res.stdout.splitlines()) == 1, res.stderr


def test_serve_lists_the_model_without_views_and_refuses_alignments(tiny_noattn):
    pytest.importorskip("fastapi")
    from fastapi.testclient import TestClient

    from seqattn.serve.api import create_app
    from seqattn.serve.service import Service

    app = create_app(Service.load([str(tiny_noattn)], device="cpu"))
    with TestClient(app, base_url="http://127.0.0.1:8000") as client:
        listed = client.get("/v1/models").json()["models"][0]
        assert (listed["layers"], listed["heads"], listed["view"]) == (0, 0, None)
        ok = client.post("/v1/translate", json={"texts": ["A dog runs 3 km."]})
        assert ok.status_code == 200 and "alignment" not in ok.json()["translations"][0]
        bad = client.post("/v1/translate", json={"texts": ["A dog."], "align": True})
        assert bad.status_code >= 400 and "no attention to show" in bad.json()["error"]


if __name__ == "__main__":                                          # pragma: no cover
    sys.exit(pytest.main([str(Path(__file__))]))
