"""The GPU path: training (fp32, bf16, fp16 with a gradient scaler), resume, translation and
forced alignment on CUDA, each compared with the same work on the CPU.

Every test that needs a GPU is marked ``cuda`` and skipped where ``torch.cuda.is_available()`` is
False; ``bench/gpu_check.sh`` runs them (``pytest -m cuda tests/test_cuda.py``). The comparisons
are parametrised over the device they check, and their ``cpu`` variants (the CPU against itself,
or CPU bf16 against CPU fp32) are not marked: they run everywhere and show that the comparison
code itself works where no GPU is at hand.

Bounds, and why:

* fp32, CPU against CUDA: the same translations and links; scores and attention within 1e-4.
  The kernels sum in other orders (differences near 1e-6 relative); 1e-4 leaves room for that
  over a whole sentence and no room for a real difference. These comparisons run with TF32 off
  (:func:`ieee_fp32`): cuDNN's RNNs (the RNN encoders) use TF32 by default on Ampere and later,
  which is a 10-bit mantissa, not fp32.
* bf16 and fp16 against fp32: at least 75% of the lines translate identically, and where they
  do, scores differ by at most 0.1 (0.02 on average); links overlap by at least 95%
  (Jaccard). Measured with CPU bf16 on the shipped models (40 lines): 34 to 38 identical,
  score differences up to 0.037 (0.009 on average), overlap 0.996.
* resume: on the CPU, bitwise the same run. On CUDA, with deterministic algorithms asked for,
  no further from the uninterrupted run than a second uninterrupted run is (times 4, for the
  spread of that noise), so exact wherever CUDA is deterministic.
"""

from __future__ import annotations

import json
import math
import os
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

# cuBLAS reads this when it starts: deterministic matrix products for the resume comparison
os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")

import pytest  # noqa: E402
import torch  # noqa: E402

from seqattn.config import config_from_dict  # noqa: E402
from tests.conftest import ROOT, SAMPLE, TINY_MODELS  # noqa: E402

CUDA = torch.cuda.is_available()
ON_CUDA = [pytest.mark.cuda, pytest.mark.skipif(not CUDA, reason="needs a CUDA device")]
SHIPPED = ("en-de", "en-de-rnn")   # a Transformer and a GRU, each with a full-context aligner
KINDS = sorted(TINY_MODELS)        # bahdanau (GRU), luong (LSTM), transformer
STEPS = 16                         # fp16 skips its first few updates while the scale settles
REDUCED_SAME_LINES = 0.75          # see the module docstring for these bounds
REDUCED_SCORE_MAX, REDUCED_SCORE_MEAN = 0.1, 0.02
REDUCED_LINK_OVERLAP = 0.95


def variant(device: str, *values: Any) -> Any:
    """A parameter set; those on CUDA are marked ``cuda`` and skipped without a GPU."""
    return pytest.param(device, *values, marks=ON_CUDA if device == "cuda" else (),
                        id="-".join(map(str, (device, *values))))


# (device, precision) pairs compared with CPU fp32
COMPARED = [variant("cpu", "fp32"), variant("cpu", "bf16"), variant("cuda", "fp32"),
            variant("cuda", "bf16"), variant("cuda", "fp16")]


@pytest.fixture(autouse=True)
def ieee_fp32() -> Iterator[None]:
    """fp32 means IEEE fp32 here: no TF32 in cuDNN (RNNs) or in matrix products."""
    cudnn, matmul = torch.backends.cudnn.allow_tf32, torch.get_float32_matmul_precision()
    torch.backends.cudnn.allow_tf32 = False
    torch.set_float32_matmul_precision("highest")
    yield
    torch.backends.cudnn.allow_tf32 = cudnn
    torch.set_float32_matmul_precision(matmul)


@pytest.fixture
def deterministic() -> Iterator[None]:
    """Deterministic kernels where torch has them (a warning, not an error, where not)."""
    was, warn_only = (torch.are_deterministic_algorithms_enabled(),
                      torch.is_deterministic_algorithms_warn_only_enabled())
    torch.use_deterministic_algorithms(True, warn_only=True)
    yield
    torch.use_deterministic_algorithms(was, warn_only=warn_only)


# --------------------------------------------------------------------------- training helpers


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> list[str]:
    """Overrides for a 160-pair slice of sample_data/ and a 200-piece joint sentencepiece
    model made once (every run copies it instead of training its own)."""
    from seqattn.vocab import train_spm

    tmp = tmp_path_factory.mktemp("corpus")
    for split, n in (("train", 160), ("valid", 12)):
        for lang in ("en", "de"):
            lines = (SAMPLE / f"{split}.{lang}").read_text(encoding="utf-8").splitlines()[:n]
            (tmp / f"{split}.{lang}").write_text("\n".join(lines) + "\n", encoding="utf-8")
    spm = train_spm([tmp / "train.en", tmp / "train.de"], tmp / "spm", 200, "unigram")
    return [f"data.train_src={tmp / 'train.en'}", f"data.train_tgt={tmp / 'train.de'}",
            f"data.valid_src={tmp / 'valid.en'}", f"data.valid_tgt={tmp / 'valid.de'}",
            f"data.spm_model={spm}", "training.batch_tokens=400", "training.warmup_steps=4",
            "training.log_every=1", "training.valid_every=8", "training.seed=7",
            "decoding.max_len_a=1.0", "decoding.max_len_b=3"]


def train_run(out: Path, overrides: list[str], device: str, resume: bool = False
              ) -> dict[str, Any]:
    from seqattn.train import train

    return train(config_from_dict({}, overrides), out, resume=resume, device=device)


def step_losses(run_dir: Path) -> list[float]:
    """The loss of every step, in order (``training.log_every=1``)."""
    records = [json.loads(line) for line in (run_dir / "train.jsonl").read_text().splitlines()]
    return [r["loss"] for r in records if r["kind"] == "train"]


def weights(path: Path) -> dict[str, torch.Tensor]:
    from safetensors.torch import load_file

    return load_file(str(path))


def training_state(run_dir: Path) -> dict[str, Any]:
    return torch.load(run_dir / "train_state.pt", map_location="cpu", weights_only=True)


def adam_steps(state: dict[str, Any]) -> int:
    """How many updates Adam applied (fp16's scaler skips those with inf or NaN gradients)."""
    return max(int(s["step"]) for s in state["optimizer"]["state"].values())


@pytest.fixture(scope="module")
def runs(corpus: list[str], tmp_path_factory: pytest.TempPathFactory
         ) -> Callable[[str, str, str], Path]:
    """``runs(device, precision, kind)``: the directory of a STEPS-step tiny run, trained once."""
    done: dict[tuple[str, str, str], Path] = {}

    def get(device: str, precision: str, kind: str) -> Path:
        key = (device, precision, kind)
        if key not in done:
            out = tmp_path_factory.mktemp("-".join(key)) / "run"
            train_run(out, corpus + TINY_MODELS[kind] + [f"training.precision={precision}",
                                                          f"training.max_steps={STEPS}"], device)
            done[key] = out
        return done[key]

    return get


# --------------------------------------------------------------------------- (a) training


@pytest.mark.parametrize("device, precision, kind", [
    variant("cpu", "fp32", "transformer"),
    *(variant("cuda", p, k) for p in ("fp32", "bf16", "fp16") for k in KINDS),
])
def test_training_steps(runs, device, precision, kind):
    """A few updates in each precision: finite losses and weights, a complete model directory,
    every update applied (fp16: each skipped one halved the scale, as GradScaler does), and a
    first-step loss that matches the CPU's fp32 one (same initial weights, same batch)."""
    out = runs(device, precision, kind)
    assert {"model.safetensors", "last.safetensors", "train_state.pt", "seqattn.json",
            "config.yaml", "spm.model"} <= {p.name for p in out.iterdir()}
    losses = step_losses(out)
    assert len(losses) == STEPS and all(math.isfinite(x) for x in losses), losses
    for name, t in weights(out / "last.safetensors").items():
        assert torch.isfinite(t).all(), name
    state = training_state(out)
    assert state["progress"]["step"] == STEPS
    assert ("cuda_rng" in state) == (device == "cuda")
    applied = adam_steps(state)
    if precision == "fp16":
        assert 0 < applied <= STEPS, "fp16: every update was skipped"
        assert state["scaler"]["scale"] == 2.0 ** 16 * 0.5 ** (STEPS - applied)
    else:
        assert applied == STEPS and "scaler" not in state
    reference = step_losses(runs("cpu", "fp32", kind))[0]
    if precision == "fp32":
        assert losses[0] == pytest.approx(reference, rel=1e-5)
    else:  # the first forward pass in bf16/fp16: a rounding of fp32's, no more
        assert losses[0] != reference and losses[0] == pytest.approx(reference, rel=0.02)


# --------------------------------------------------------------------------- (b) resume


def max_difference(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> float:
    assert a.keys() == b.keys()
    return max(float((a[k].double() - b[k].double()).abs().max()) for k in a)


def max_relative(a: list[float], b: list[float]) -> float:
    assert len(a) == len(b)
    return max(abs(x - y) / max(abs(y), 1e-12) for x, y in zip(a, b))


def assert_same_run(split: Path, straight: Path, control: Path) -> None:
    """``split`` (stopped half-way, then resumed) is the uninterrupted ``straight`` run, up to
    the run-to-run noise that a second uninterrupted run (``control``) shows: bitwise where
    that noise is zero."""
    w_straight = weights(straight / "last.safetensors")
    noise = max_difference(weights(control / "last.safetensors"), w_straight)
    gap = max_difference(weights(split / "last.safetensors"), w_straight)
    assert gap <= 4 * noise, f"weights: resumed run {gap:.3g} away, a second run {noise:.3g}"
    loss_noise = max_relative(step_losses(control), step_losses(straight))
    loss_gap = max_relative(step_losses(split), step_losses(straight))
    assert loss_gap <= 4 * loss_noise, \
        f"losses: resumed run {loss_gap:.3g} away, a second run {loss_noise:.3g}"


@pytest.mark.parametrize("device, precision", [
    variant("cpu", "fp32"), variant("cuda", "fp32"), variant("cuda", "bf16"),
    variant("cuda", "fp16"),
])
def test_resume_matches_the_uninterrupted_run(corpus, tmp_path, deterministic, device,
                                              precision):
    """With dropout (the CUDA generator matters), STEPS/2 steps, then --resume to STEPS, is
    the uninterrupted STEPS-step run; fp16's scale goes on from where it stood."""
    base = corpus + TINY_MODELS["transformer"] + ["model.dropout=0.2",
                                                  f"training.precision={precision}"]
    full, half = base + [f"training.max_steps={STEPS}"], base + [f"training.max_steps={STEPS // 2}"]
    for name in ("straight", "control"):
        train_run(tmp_path / name, full, device)
    train_run(tmp_path / "split", half, device)
    summary = train_run(tmp_path / "split", full, device, resume=True)
    assert summary["step"] == STEPS
    assert_same_run(tmp_path / "split", tmp_path / "straight", tmp_path / "control")
    resumed, straight = training_state(tmp_path / "split"), training_state(tmp_path / "straight")
    assert adam_steps(resumed) == adam_steps(straight)
    assert resumed.get("scaler") == straight.get("scaler")
    # Adam's step counters stay where a new run keeps them (the CPU, unless Adam is fused)
    # after a resume too: torch.load without map_location puts each tensor back on the device
    # it was saved from
    def step_devices(run_dir: Path) -> set[str]:
        saved = torch.load(run_dir / "train_state.pt", weights_only=True)
        return {s["step"].device.type for s in saved["optimizer"]["state"].values()}

    assert step_devices(tmp_path / "split") == step_devices(tmp_path / "straight")


def test_training_state_keeps_the_gradient_scaler(tmp_path):
    """load_state restores fp16's scaler (its scale and growth tracker) from a saved state,
    and leaves a scaler alone when the state has none (saved by a bf16 or fp32 run)."""
    from seqattn.train.schedule import make_schedule
    from seqattn.train.state import Progress, load_state

    cfg = config_from_dict({})
    model = torch.nn.Linear(3, 2)
    adam = torch.optim.Adam(model.parameters())
    used = torch.amp.GradScaler("cpu")
    used.scale(torch.tensor(1.0))   # the scale is made lazily, at the first scale()
    used.update(new_scale=512.0)
    state = {"model": model.state_dict(), "optimizer": adam.state_dict(),
             "schedule": make_schedule(cfg).state(), "progress": Progress(step=3).numbers(),
             "rng": torch.get_rng_state()}
    torch.save({**state, "scaler": used.state_dict()}, tmp_path / "train_state.pt")
    fresh, progress = torch.amp.GradScaler("cpu"), Progress()
    load_state(tmp_path, model, adam, make_schedule(cfg), progress, torch.device("cpu"), fresh)
    assert fresh.get_scale() == 512.0 and fresh.state_dict() == used.state_dict()
    assert progress.step == 3
    torch.save(state, tmp_path / "train_state.pt")
    untouched = torch.amp.GradScaler("cpu")
    load_state(tmp_path, model, adam, make_schedule(cfg), Progress(), torch.device("cpu"),
               untouched)
    assert untouched.get_scale() == 2.0 ** 16


# --------------------------------------------------------------------------- translation


def _lines(lang: str) -> list[str]:
    return ((SAMPLE / f"test.{lang}").read_text(encoding="utf-8").splitlines()
            + (SAMPLE / f"valid.{lang}").read_text(encoding="utf-8").splitlines()[:20])


SOURCES, TARGETS = _lines("en"), _lines("de")


@pytest.fixture(scope="module")
def translators() -> Callable[..., Any]:
    """``translators(model, device, precision, aligner=True)``: loaded once each."""
    import seqattn

    loaded: dict[tuple[str, str, str, bool], Any] = {}

    def get(model: str, device: str, precision: str, aligner: bool = True) -> Any:
        key = (model, device, precision, aligner)
        if key not in loaded:
            tr = seqattn.load(ROOT / "models" / model, device=device, precision=precision)
            if not aligner:  # forced alignment through the model's own cross-attention
                tr.loaded.aligner = None
            loaded[key] = tr
        return loaded[key]

    return get


@pytest.fixture(scope="module")
def cpu_reference(translators: Callable[..., Any]) -> Callable[..., list[Any]]:
    """``cpu_reference(model, aligner, key, work)``: ``work(translator)`` on CPU fp32, done once
    per (model, aligner, key)."""
    done: dict[tuple[str, bool, Any], list[Any]] = {}

    def get(model: str, aligner: bool, key: Any, work: Callable[[Any], list[Any]]) -> list[Any]:
        if (model, aligner, key) not in done:
            done[model, aligner, key] = work(translators(model, "cpu", "fp32", aligner))
        return done[model, aligner, key]

    return get


def translate(tr: Any, beam: int, lines: list[str] = SOURCES) -> list[Any]:
    # one sentence per line: sentence splitting is text work, and needs sentencex
    return tr.translate(lines, beam=beam, split_sentences=False)


def compare_translations(got: list[Any], ref: list[Any], exact: bool) -> None:
    """``exact``: the same pieces, scores within 1e-4 and beam attention within 1e-4. Else
    (bf16, fp16) the bounds of the module docstring, on texts."""
    assert len(got) == len(ref)
    same = [(g, r) for g, r in zip(got, ref) if g.text == r.text]
    differ = [f"{r.id}: {r.text!r} / {g.text!r}" for g, r in zip(got, ref) if g.text != r.text]
    gaps = [abs(g.score - r.score) for g, r in same]
    if exact:
        assert not differ, "\n".join(differ)
        assert max(gaps) <= 1e-4, max(gaps)
        for g, r in same:
            assert g.hyps[0].pieces == r.hyps[0].pieces, r.id
            assert abs(g.hyps[0].log_prob - r.hyps[0].log_prob) <= 1e-4
            torch.testing.assert_close(g.hyps[0].weights, r.hyps[0].weights, rtol=0, atol=1e-4)
        return
    assert len(same) >= REDUCED_SAME_LINES * len(ref), "\n".join(differ)
    assert max(gaps) <= REDUCED_SCORE_MAX and sum(gaps) / len(gaps) <= REDUCED_SCORE_MEAN, gaps
    assert all(math.isfinite(g.score) for g in got)


@pytest.mark.parametrize("model", SHIPPED)
@pytest.mark.parametrize("beam", [1, 5])
@pytest.mark.parametrize("device, precision", COMPARED)
def test_translations_match_the_cpu(translators, cpu_reference, model, beam, device, precision):
    """Greedy (beam 1) and beam search on ``device`` against CPU fp32, same weights."""
    ref = cpu_reference(model, True, ("translate", beam), lambda tr: translate(tr, beam))
    got = translate(translators(model, device, precision), beam)
    compare_translations(got, ref, exact=precision == "fp32")


# --------------------------------------------------------------------------- alignment


def compare_alignments(got: list[Any], ref: list[Any], exact: bool) -> None:
    """``exact``: the same links, word and piece attention within 1e-4. Else the links of all
    pairs together overlap by REDUCED_LINK_OVERLAP at least."""
    assert len(got) == len(ref) and all(g.words is not None for g in got)
    if exact:
        for g, r in zip(got, ref):
            assert g.links == r.links, f"pair {r.id}: {sorted(r.links)} / {sorted(g.links)}"
            torch.testing.assert_close(g.words, r.words, rtol=0, atol=1e-4)
            torch.testing.assert_close(g.weights, r.weights, rtol=0, atol=1e-4)
        return
    shared = sum(len(g.links & r.links) for g, r in zip(got, ref))
    either = sum(len(g.links | r.links) for g, r in zip(got, ref))
    assert shared >= REDUCED_LINK_OVERLAP * either, (shared, either)


@pytest.mark.parametrize("model", SHIPPED)
@pytest.mark.parametrize("aligner", [True, False], ids=["aligner", "cross-attention"])
@pytest.mark.parametrize("device, precision", COMPARED)
def test_alignments_match_the_cpu(translators, cpu_reference, model, aligner, device,
                                  precision):
    """Forced alignment on ``device`` against CPU fp32: through the model's full-context
    aligner (its stored view), and through its cross-attention (the supervised head of the
    penultimate Transformer layer; the RNN's one attention)."""
    from seqattn.align.force import force_align
    from seqattn.align.views import View

    def align(tr: Any) -> list[Any]:
        layers, _ = tr.model.attention_shape()
        view = None if aligner else View(layer=max(layers - 2, 0), heads="0")
        return force_align(tr, list(zip(SOURCES, TARGETS)), view=view, keep_weights=True)

    ref = cpu_reference(model, aligner, "align", align)
    got = align(translators(model, device, precision, aligner))
    compare_alignments(got, ref, exact=precision == "fp32")


# --------------------------------------------------------------------------- (e) across devices


@pytest.mark.parametrize("kind", [pytest.param(k, marks=ON_CUDA) for k in KINDS])
def test_a_cuda_checkpoint_translates_and_resumes_on_the_cpu(runs, tmp_path, corpus, kind):
    """A run trained on CUDA loads on the CPU: it translates as it does on CUDA, and its
    training state (CUDA tensors, a CUDA generator state) resumes there."""
    import seqattn

    out = runs("cuda", "fp32", kind)
    lines = SOURCES[:20]
    on_cpu = translate(seqattn.load(out, device="cpu"), 2, lines)
    on_cuda = translate(seqattn.load(out, device="cuda"), 2, lines)
    assert [t.id for t in on_cpu] == list(range(len(lines)))
    # an undertrained tiny model has near ties, so not every text need match; scores must
    same = [(g, r) for g, r in zip(on_cpu, on_cuda) if g.text == r.text]
    assert len(same) >= 0.9 * len(lines)
    assert all(abs(g.score - r.score) <= 1e-4 for g, r in same)
    moved = tmp_path / "run"
    shutil.copytree(out, moved)
    summary = train_run(moved, corpus + TINY_MODELS[kind] + [f"training.max_steps={STEPS + 2}"],
                        "cpu", resume=True)
    assert summary["step"] == STEPS + 2
    assert "cuda_rng" not in training_state(moved)
