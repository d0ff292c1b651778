"""The full-context aligner (issue 16): a layer trained on top of a frozen Transformer or RNN."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import torch

import seqattn
from seqattn.checkpoint import ALIGNER, read_meta
from seqattn.cli import run
from tests.conftest import SAMPLE


def _diagonal_links(src: list[str], tgt: list[str]) -> list[str]:
    """Pharaoh links i-i for every word both sides have (a stand-in for an aligner's output)."""
    return [" ".join(f"{i}-{i}" for i in range(min(len(s.split()), len(t.split()))))
            for s, t in zip(src, tgt)]


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("aligner-data")
    src = (SAMPLE / "train.en").read_text(encoding="utf-8").splitlines()[:120]
    tgt = (SAMPLE / "train.de").read_text(encoding="utf-8").splitlines()[:120]
    paths = {"src": folder / "train.en", "tgt": folder / "train.de", "links": folder / "l.txt"}
    paths["src"].write_text("\n".join(src) + "\n", encoding="utf-8")
    paths["tgt"].write_text("\n".join(tgt) + "\n", encoding="utf-8")
    paths["links"].write_text("\n".join(_diagonal_links(src, tgt)) + "\n", encoding="utf-8")
    return paths


@pytest.fixture(scope="module")
def aligned(tiny_transformer, corpus, tmp_path_factory) -> Path:
    """A copy of the tiny model with an aligner trained for 12 epochs (CLI, --save-to)."""
    out = tmp_path_factory.mktemp("aligned") / "model"
    code = run(["train-aligner", "-m", str(tiny_transformer), "--src", str(corpus["src"]),
                "--tgt", str(corpus["tgt"]), "--links", str(corpus["links"]), "--save-to",
                str(out), "--epochs", "12", "--batch-tokens", "600"])
    assert code == 0
    return out


def test_hidden_states_are_the_states_translation_uses(tiny_transformer):
    model = seqattn.load(tiny_transformer).model
    src = torch.tensor([[10, 11, 12, 3], [13, 14, 3, 0]])
    src_pad, tgt = src == 0, torch.tensor([[2, 20, 21], [2, 22, 0]])
    weights: list[torch.Tensor] = []
    enc, dec = model.hidden_states(src, src_pad, tgt, weights)
    logits, cross = model(src, src_pad, tgt, need_weights=True)
    assert enc.shape == (2, 4, 32) and dec.shape == (2, 2, 3, 32)
    assert torch.allclose(model.generator(model.dec_norm(dec[:, -1])), logits, atol=1e-5)
    assert torch.allclose(torch.stack(weights, dim=1), cross, atol=1e-6)


def test_train_aligner_stores_a_default_view_and_leaves_the_translations(aligned,
                                                                        tiny_transformer):
    meta = read_meta(aligned)
    assert (aligned / ALIGNER).is_file() and meta["aligner"]["layers"] == 2
    assert meta["alignment"]["layer"] == 2 and meta["alignment"]["shift"] is False
    base, new = seqattn.load(tiny_transformer), seqattn.load(aligned)
    lines = ["A dog runs in the park.", "Two men talk."]
    assert [t.text for t in base.translate(lines)] == [t.text for t in new.translate(lines)]
    assert not (tiny_transformer / ALIGNER).exists()           # the source model untouched


def test_the_aligner_learns_the_links_it_is_given(aligned, corpus):
    """Trained on diagonal links, its argmax links of training pairs are diagonal far more
    often than an untrained aligner's (8 % on these pairs, measured with seed 1)."""
    tr = seqattn.load(aligned)
    src = corpus["src"].read_text(encoding="utf-8").splitlines()[:40]
    tgt = corpus["tgt"].read_text(encoding="utf-8").splitlines()[:40]
    records = seqattn.force_align(tr, list(zip(src, tgt)))
    links = [link for r in records for link in r.links]
    diagonal = sum(s == t for s, t in links)
    assert records[0].words.sum(dim=1).add(records[0].eos).allclose(torch.ones(1), atol=1e-4)
    assert diagonal / len(links) > 0.14, diagonal / len(links)


def test_translate_reads_the_aligner_with_a_forced_pass_over_its_output(aligned):
    """The forced pass over a translation repeats the beam's own attention (same pieces, same
    positions) and adds the aligner's rows; the table reads those."""
    from seqattn import align as al
    from seqattn.align.force import forced_weights
    from seqattn.data import pad_sources
    from seqattn.vocab import BOS

    tr = seqattn.load(aligned)
    (t,) = tr.translate(["A man rides a bike ."], beam=2)
    hyp = t.hyps[0]
    ids = [tr.tgt_vocab.sp.piece_to_id(p) for p in hyp.pieces]
    src, src_pad = pad_sources([t.src.ids])
    forced = forced_weights(tr, src, src_pad, torch.tensor([[BOS, *ids]]))[0]  # (L+1, H, T, S)
    layers = hyp.weights.size(0)
    assert forced.size(0) == layers + 1
    assert torch.allclose(forced[:layers], hyp.weights, atol=1e-5)      # the beam's rows
    words, _ = al.word_attention(tr, t, hyp)                              # the stored view
    expected, _ = al.word_weights(forced[layers, 0, :-1], hyp.word_of_piece,
                                  t.src.word_of_piece, len(hyp.words), len(t.src.words))
    assert torch.allclose(words, expected, atol=1e-6)
    plain, _ = al.word_attention(tr, t, hyp, al.View(1, "mean"))          # no aligner
    assert not torch.allclose(plain, words)


def test_export_and_calibration_copies_keep_the_aligner(aligned, tmp_path, capsys):
    from safetensors.torch import load_file

    out = tmp_path / "exported"
    assert run(["export", str(aligned), str(out)]) == 0              # fp16 storage
    stored, trained = load_file(str(out / ALIGNER)), load_file(str(aligned / ALIGNER))
    assert stored.keys() == trained.keys()
    assert all(stored[k].dtype == torch.float16 for k in stored)
    assert all(torch.allclose(stored[k].float(), trained[k], atol=1e-3) for k in stored)
    exported = seqattn.load(out)
    assert exported.loaded.aligner is not None
    assert next(exported.loaded.aligner.parameters()).dtype == torch.float32


def test_train_aligner_refuses_a_shipped_model(corpus, tiny_transformer, tmp_path, monkeypatch,
                                               capsys):
    folder = tmp_path / "shipped"
    shutil.copytree(tiny_transformer, folder / "tiny")
    monkeypatch.setenv("SEQATTN_MODELS", str(folder))
    args = ["--src", str(corpus["src"]), "--tgt", str(corpus["tgt"]), "--links",
            str(corpus["links"])]
    assert run(["train-aligner", "-m", "tiny", *args]) == 2
    assert "shipped model" in capsys.readouterr().err
    assert not (folder / "tiny" / ALIGNER).exists()


@pytest.mark.parametrize("kind,layers", [("bahdanau", 1), ("luong", 1), ("luong", 2)])
def test_rnn_hidden_states_are_the_states_of_step_by_step_decoding(kind, layers):
    """Each decoder layer's state after input t equals the state ``step`` reaches (Luong's top
    layer: the attentional h~_t it feeds back), and the weights equal ``forward``'s."""
    from seqattn.config import config_from_dict
    from seqattn.models import build_model
    from tests.conftest import TINY_MODELS

    cfg = config_from_dict({}, [*TINY_MODELS[kind], f"model.dec_layers={layers}"])
    torch.manual_seed(0)
    model = build_model(cfg.model, 40, 40).eval()
    src = torch.tensor([[10, 11, 12, 3], [13, 14, 3, 0]])
    src_pad, tgt = src == 0, torch.tensor([[2, 20, 21], [2, 22, 0]])
    weights: list[torch.Tensor] = []
    enc, dec = model.hidden_states(src, src_pad, tgt, weights)
    _, cross = model(src, src_pad, tgt, need_weights=True)
    assert enc.shape == (2, 4, 48) and dec.shape == (2, layers, 3, 24)
    assert torch.allclose(torch.stack(weights, dim=1), cross, atol=1e-6)
    memory = model.encode(src, src_pad)
    state = model.init_state(memory)
    for t in range(3):
        _, state, _ = model.step(tgt[:, t], state, memory)
        top = state.hidden[:, -1] if kind == "bahdanau" else state.feed
        assert torch.allclose(dec[:, -1, t], top, atol=1e-5)
        for layer in range(layers - 1):
            assert torch.allclose(dec[:, layer, t], state.hidden[:, layer], atol=1e-5)


@pytest.fixture(scope="module")
def rnn_aligned(tiny_model_bahdanau, corpus, tmp_path_factory) -> Path:
    """The tiny Bahdanau model with an aligner, 24 epochs at lr 3e-3 (its random GRU states
    say less about position than the Transformer's, so it learns the diagonal more slowly)."""
    import seqattn.train.aligner as ta
    from seqattn.checkpoint import load_model_dir

    out = tmp_path_factory.mktemp("rnn-aligned") / "model"
    ta.train_aligner(load_model_dir(tiny_model_bahdanau), corpus["src"], corpus["tgt"],
                     corpus["links"], ta.AlignerTraining(epochs=24, lr=3e-3, batch_tokens=600),
                     save_to=out)
    return out


def test_an_rnn_gets_an_aligner_read_as_its_second_layer(rnn_aligned, tiny_model_bahdanau,
                                                          corpus):
    """Bahdanau's encoder (2H = 48) is wider than its decoder (H = 24): the aligner's keys
    project from 48; it reads as layer 1 after the model's one attention layer, learns the
    diagonal links as the Transformer's does, and leaves the translations unchanged."""
    meta = read_meta(rnn_aligned)
    assert meta["aligner"]["d_model"] == 24 and meta["aligner"]["enc_dim"] == 48
    assert meta["alignment"]["layer"] == 1
    base, new = seqattn.load(tiny_model_bahdanau), seqattn.load(rnn_aligned)
    lines = ["A dog runs in the park.", "Two men talk."]
    assert [t.text for t in base.translate(lines)] == [t.text for t in new.translate(lines)]
    src = corpus["src"].read_text(encoding="utf-8").splitlines()[:40]
    tgt = corpus["tgt"].read_text(encoding="utf-8").splitlines()[:40]
    share = []
    for tr in (base, new):
        links = [link for r in seqattn.force_align(tr, list(zip(src, tgt))) for link in r.links]
        share.append(sum(s == t for s, t in links) / len(links))
    assert share[1] > 0.12 and share[1] > 1.5 * share[0], share


def test_warm_start_fine_tunes_the_current_aligner(aligned, corpus, tiny_transformer, tmp_path,
                                                   capsys):
    """--warm-start begins from the stored aligner (one epoch at a tiny learning rate stays
    close to it) and counts the epochs on; a model without an aligner is refused in one line."""
    import seqattn.train.aligner as ta
    from seqattn.checkpoint import load_model_dir

    copy = tmp_path / "copy"
    shutil.copytree(aligned, copy)
    before = {k: v.clone() for k, v in seqattn.load(copy).loaded.aligner.state_dict().items()}
    ta.train_aligner(load_model_dir(copy), corpus["src"], corpus["tgt"], corpus["links"],
                     ta.AlignerTraining(epochs=1, lr=1e-7, batch_tokens=600, warm_start=True))
    after = seqattn.load(copy).loaded.aligner.state_dict()
    assert all(torch.allclose(before[k], after[k], atol=1e-3) for k in before)
    assert read_meta(copy)["aligner"]["epochs"] == 13
    capsys.readouterr()
    code = run(["train-aligner", "-m", str(tiny_transformer), "--src", str(corpus["src"]),
                "--tgt", str(corpus["tgt"]), "--links", str(corpus["links"]), "--save-to",
                str(tmp_path / "fresh"), "--warm-start"])
    err = capsys.readouterr().err
    assert code == 2 and "no aligner" in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "fresh").exists()                   # refused before any copy


def test_train_aligner_checks_line_counts_before_copying_anything(tiny_transformer, corpus,
                                                                   tmp_path, capsys):
    short = tmp_path / "short.links"
    short.write_text("0-0\n", encoding="utf-8")
    code = run(["train-aligner", "-m", str(tiny_transformer), "--src", str(corpus["src"]),
                "--tgt", str(corpus["tgt"]), "--links", str(short), "--save-to",
                str(tmp_path / "copy")])
    err = capsys.readouterr().err
    assert code == 2 and "one line per pair" in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "copy").exists()


def test_the_forced_pass_of_translate_computes_no_gradients(aligned, recwarn):
    from seqattn.align import align_translation

    tr = seqattn.load(aligned)
    (t,) = tr.translate(["A dog runs ."], beam=1)
    found = align_translation(tr, t, t.hyps[0])
    assert not found.words.requires_grad and found.links
    assert not [w for w in recwarn if "requires_grad" in str(w.message)]


def test_aligner_data_with_eflomal_learns_from_the_pairs_as_given_and_tokenized(tiny_transformer,
                                                                                corpus):
    """Twice the pairs (as given, then Moses-tokenized, shuffled together); every link inside
    its pair's words (given) or tokens (tokenized)."""
    pytest.importorskip("eflomal")
    pytest.importorskip("sacremoses")
    from seqattn.checkpoint import load_model_dir
    from seqattn.train.aligner import aligner_data

    pairs, links = aligner_data(load_model_dir(tiny_transformer), corpus["src"], corpus["tgt"],
                                "eflomal")
    given = corpus["src"].read_text(encoding="utf-8").splitlines()
    assert len(pairs) == len(links) == 2 * len(given)
    sources = [s for s, _ in pairs]
    assert set(given) <= set(sources)
    tokenized = [s for s in sources if s not in given]
    assert any(s.endswith(" .") for s in tokenized)          # "the park ." in the copies
    for (s, t), found in zip(pairs, links):
        assert all(i < len(s.split()) and j < len(t.split()) for i, j in found)
    assert sum(map(len, links)) > len(pairs)                 # eflomal links nearly every word


def test_aligner_data_by_agreement_are_the_links_of_align_with_a_reverse_model(
        tiny_transformer, corpus, capsys):
    """--links agreement: the links `seqattn align -m M --reverse-model R` writes for the same
    pairs (an independent path: the CLI on the raw files)."""
    pytest.importorskip("sacremoses")
    from seqattn.checkpoint import load_model_dir
    from seqattn.train.aligner import aligner_data

    model = load_model_dir(tiny_transformer)
    pairs, links = aligner_data(model, corpus["src"], corpus["tgt"], "agreement",
                                reverse=load_model_dir(tiny_transformer))
    assert run(["align", "-m", str(tiny_transformer), "--reverse-model", str(tiny_transformer),
                str(corpus["src"]), str(corpus["tgt"])]) == 0
    cli = capsys.readouterr().out.splitlines()
    given = list(zip(corpus["src"].read_text(encoding="utf-8").splitlines(),
                     corpus["tgt"].read_text(encoding="utf-8").splitlines()))
    mine = {pair: found for pair, found in zip(pairs, links)}
    for pair, line in zip(given, cli):
        assert " ".join(f"{i}-{j}" for i, j in mine[pair]) == line


def test_train_aligner_link_options_are_checked_before_any_work(tiny_transformer, corpus,
                                                                tmp_path, capsys):
    base = ["train-aligner", "-m", str(tiny_transformer), "--src", str(corpus["src"]), "--tgt",
            str(corpus["tgt"]), "--save-to", str(tmp_path / "out")]
    assert run([*base, "--links", "agreement"]) == 2
    assert run([*base, "--links", str(corpus["links"]), "--reverse-model",
                str(tiny_transformer)]) == 2
    err = [x for x in capsys.readouterr().err.splitlines() if x.strip()]
    assert len(err) == 2 and all("--links agreement and --reverse-model" in x for x in err)
    assert not (tmp_path / "out").exists()


def test_one_pair_is_too_few_for_an_aligner(tiny_transformer, tmp_path, capsys):
    for name, text in (("s", "A dog.\n"), ("t", "Ein Hund.\n"), ("l", "0-0 1-1\n")):
        (tmp_path / name).write_text(text, encoding="utf-8")
    code = run(["train-aligner", "-m", str(tiny_transformer), "--src", str(tmp_path / "s"),
                "--tgt", str(tmp_path / "t"), "--links", str(tmp_path / "l"), "--save-to",
                str(tmp_path / "out")])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and "at least 2 usable pairs" in err[0]
    assert not (tmp_path / "out").exists()
