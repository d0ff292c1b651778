"""`seqattn train`: a real (tiny) run, exact resume, DDP equivalence, and bad configs."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from seqattn.cli import run
from seqattn.config import config_from_dict
from tests.conftest import SAMPLE, default_sigint


def _corpus(tmp: Path, n_train: int = 160, n_valid: int = 12) -> list[str]:
    for split, src, n in (("train", "train", n_train), ("valid", "valid", n_valid)):
        for lang in ("en", "de"):
            lines = (SAMPLE / f"{src}.{lang}").read_text(encoding="utf-8").splitlines()[:n]
            (tmp / f"{split}.{lang}").write_text("\n".join(lines) + "\n", encoding="utf-8")
    return [f"data.train_src={tmp / 'train.en'}", f"data.train_tgt={tmp / 'train.de'}",
            f"data.valid_src={tmp / 'valid.en'}", f"data.valid_tgt={tmp / 'valid.de'}",
            "data.vocab_size=200", "model.hidden_size=32", "model.embed_size=16",
            "model.heads=2", "model.ff_size=64", "model.enc_layers=1", "model.dec_layers=1",
            "training.batch_tokens=400", "training.warmup_steps=4", "training.log_every=2",
            "decoding.max_len_a=1.0", "decoding.max_len_b=3"]


def _weights(path: Path) -> dict[str, torch.Tensor]:
    from safetensors.torch import load_file

    return load_file(str(path))


def test_train_writes_a_model_directory(tmp_path, capsys):
    base = _corpus(tmp_path)
    out = tmp_path / "run"
    args = ["train", "--preset", "bahdanau-gru", "--out", str(out), "--set",
            "training.max_steps=4", "--set", "training.valid_every=2"]
    for item in base + ["model.attention=bahdanau"]:
        args += ["--set", item]
    assert run(args) == 0, capsys.readouterr().err
    names = {p.name for p in out.iterdir()}
    assert {"config.yaml", "model.safetensors", "spm.model", "seqattn.json", "train.jsonl",
            "train_state.pt", "last.safetensors"} <= names
    records = [json.loads(line) for line in (out / "train.jsonl").read_text().splitlines()]
    kinds = [r["kind"] for r in records]
    assert kinds.count("valid") == 2 and kinds.count("train") == 2 and kinds[-1] == "done"
    valid = [r for r in records if r["kind"] == "valid"]
    assert all(set(r) >= {"loss", "ppl", "bleu", "chrf"} for r in valid)
    assert valid[0]["ppl"] == pytest.approx(torch.tensor(valid[0]["loss"]).exp().item(),
                                            rel=0.5)  # smoothing makes loss differ from NLL
    # the directory is usable for translation straight away
    assert run(["translate", "-m", str(out), "--beam", "2", "A dog runs."]) == 0
    # and refuses to be overwritten by a new run
    assert run(args) == 2
    assert "already holds a model" in capsys.readouterr().err


def test_resume_continues_exactly(tmp_path):
    from seqattn.train import train

    base = _corpus(tmp_path) + ["model.dropout=0.2", "training.valid_every=3",
                                "training.seed=7"]
    straight = config_from_dict({}, base + ["training.max_steps=12"])
    train(straight, tmp_path / "straight")
    first = config_from_dict({}, base + ["training.max_steps=6"])
    train(first, tmp_path / "split")
    train(config_from_dict({}, base + ["training.max_steps=12"]), tmp_path / "split",
          resume=True)
    a = _weights(tmp_path / "straight" / "last.safetensors")
    b = _weights(tmp_path / "split" / "last.safetensors")
    assert a.keys() == b.keys()
    for name in a:
        assert torch.equal(a[name], b[name]), name


def test_resume_refuses_model_changes(tmp_path):
    from seqattn.errors import ConfigError
    from seqattn.train import train

    base = _corpus(tmp_path) + ["training.valid_every=2", "training.max_steps=2"]
    train(config_from_dict({}, base), tmp_path / "r")
    with pytest.raises(ConfigError, match="cannot change the model section"):
        train(config_from_dict({}, base + ["model.hidden_size=64"]), tmp_path / "r",
              resume=True)


@pytest.mark.slow
def test_ddp_two_processes_match_one_process(tmp_path):
    base = _corpus(tmp_path) + ["model.dropout=0.0", "training.valid_every=3",
                                "training.max_steps=3", "training.label_smoothing=0.0"]
    sets = [x for item in base for x in ("--set", item)]
    single = subprocess.run([sys.executable, "-m", "seqattn", "-q", "train", "--out",
                             str(tmp_path / "one"), *sets, "--set", "training.accumulate=2"],
                            capture_output=True, text=True, timeout=600)
    assert single.returncode == 0, single.stderr
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    ddp = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=2",
                          "--master_port=29533", "-m", "seqattn", "-q", "train", "--out",
                          str(tmp_path / "two"), *sets], capture_output=True, text=True,
                         timeout=600, env=env)
    assert ddp.returncode == 0, ddp.stderr[-3000:]
    a = _weights(tmp_path / "one" / "last.safetensors")
    b = _weights(tmp_path / "two" / "last.safetensors")
    for name in a:  # Adam turns float noise in near-zero gradients into ~1e-5 differences
        torch.testing.assert_close(a[name], b[name], rtol=1e-3, atol=1e-4)

    def losses(run_dir: Path) -> list[float]:
        lines = (run_dir / "train.jsonl").read_text().splitlines()
        return [r["loss"] for r in map(json.loads, lines) if r["kind"] == "train"]

    # the logged loss covers the whole step (both ranks' batches) in both runs
    assert losses(tmp_path / "two") == pytest.approx(losses(tmp_path / "one"), rel=1e-5)


@pytest.mark.parametrize("extra, message", [
    (["--set", "model.hiden_size=3"], "did you mean 'model.hidden_size'"),
    (["--set", "data.train_src=/nonexistent.en"],
     "data.train_src '/nonexistent.en' does not exist"),
    (["--set", "training.batch_tokens=-5"], "training.batch_tokens must be >= 1"),
    (["--preset", "transfomer-small"], "did you mean 'transformer-small'"),
    (["--set", "training.precision=fp16"], "training.precision fp16 needs a CUDA device"),
])
def test_bad_configs_exit_2(tmp_path, extra, message, capsys):
    base = _corpus(tmp_path)
    args = ["train", "--out", str(tmp_path / "o")]
    if "--preset" not in extra:
        args += ["--preset", "transformer-small"]
    for item in base:
        args += ["--set", item]
    assert run(args + extra) == 2
    captured = capsys.readouterr()
    lines = captured.err.strip().splitlines()
    assert lines[-1].startswith("error: ") and message in lines[-1] and captured.out == ""


def test_bf16_trains_on_cpu_close_to_fp32(tmp_path):
    """training.precision bf16 runs autocast on the CPU: the same run in fp32 and bf16 logs
    losses within bf16 rounding of each other, but not equal ones."""
    from seqattn.train import train

    base = _corpus(tmp_path) + ["training.max_steps=6", "training.valid_every=6",
                                "training.log_every=2", "model.dropout=0.0"]
    losses = {}
    for precision in ("fp32", "bf16"):
        train(config_from_dict({}, base + [f"training.precision={precision}"]),
              tmp_path / precision)
        records = [json.loads(x) for x in (tmp_path / precision / "train.jsonl").read_text()
                   .splitlines()]
        losses[precision] = [r["loss"] for r in records if r["kind"] == "train"]
    assert len(losses["fp32"]) == 3
    assert losses["bf16"] != losses["fp32"]                        # bf16 was used
    assert losses["bf16"] == pytest.approx(losses["fp32"], rel=0.02)


def test_mismatched_files_name_both(tmp_path, capsys):
    base = _corpus(tmp_path)
    (tmp_path / "short.de").write_text("eins\nzwei\n", encoding="utf-8")
    args = ["train", "--preset", "transformer-small", "--out", str(tmp_path / "o")]
    for item in base + [f"data.train_tgt={tmp_path / 'short.de'}"]:
        args += ["--set", item]
    assert run(args) == 2
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert "has 160 lines but" in err and "short.de' has 2" in err


def test_invalid_utf8_names_file_and_line(tmp_path, capsys):
    base = _corpus(tmp_path)
    bad = tmp_path / "bad.en"
    bad.write_bytes(b"fine\nalso fine\n\xff broken\n")
    args = ["train", "--preset", "transformer-small", "--out", str(tmp_path / "o")]
    for item in base + [f"data.train_src={bad}"]:
        args += ["--set", item]
    assert run(args) == 2
    assert "bad.en' is not valid UTF-8 (line 3" in capsys.readouterr().err
    assert not (tmp_path / "o").exists()    # no empty run directory left by the refusal


@pytest.mark.parametrize("smoothing", [0.0, 0.1])
def test_fused_loss_matches_torch_cross_entropy(smoothing):
    import torch.nn.functional as F

    from seqattn.train.loss import loss_sums

    torch.manual_seed(0)
    logits = torch.randn(3, 5, 11, dtype=torch.float64, requires_grad=True)
    target = torch.randint(4, 11, (3, 5))
    target[0, 3:] = 0                                           # padding
    loss, nll = loss_sums(logits, target, smoothing)
    ref = F.cross_entropy(logits.view(-1, 11), target.view(-1), ignore_index=0,
                          label_smoothing=smoothing, reduction="sum")
    ref_nll = F.cross_entropy(logits.view(-1, 11), target.view(-1), ignore_index=0,
                              reduction="sum")
    assert loss.item() == pytest.approx(ref.item(), rel=1e-12)
    assert nll.item() == pytest.approx(ref_nll.item(), rel=1e-12)
    (ours,) = torch.autograd.grad(loss, logits)
    (theirs,) = torch.autograd.grad(ref, logits)
    torch.testing.assert_close(ours, theirs)
    assert torch.autograd.gradcheck(lambda x: loss_sums(x, target, smoothing)[0], (logits,))


@pytest.mark.parametrize("bias", [True, False])
@pytest.mark.parametrize("smoothing", [0.0, 0.1])
def test_projected_loss_equals_the_loss_of_the_logits(bias, smoothing):
    """The loss made a slice of rows at a time (gradients made in the forward pass) equals
    torch's cross-entropy of the full logits: value, and the gradients of the features, weight
    and bias, scaled by whatever gradient reaches the loss (the fp16 loss scale)."""
    import torch.nn.functional as F

    from seqattn.train.loss import projected_loss_sums

    torch.manual_seed(0)
    layer = torch.nn.Linear(6, 11, bias=bias).double()
    features = torch.randn(3, 5, 6, dtype=torch.float64, requires_grad=True)
    target = torch.randint(4, 11, (3, 5))
    target[0, 3:] = 0                                           # padding
    target[2, 1:] = 0
    loss, nll = projected_loss_sums(features, layer, target, smoothing, rows=4)  # 4 slices
    (loss * 2.5).backward()
    ours = [features.grad, layer.weight.grad] + ([layer.bias.grad] if bias else [])
    features.grad = None
    layer.zero_grad(set_to_none=True)
    logits = layer(features).view(-1, 11)
    ref = F.cross_entropy(logits, target.view(-1), ignore_index=0,
                          label_smoothing=smoothing, reduction="sum")
    ref_nll = F.cross_entropy(logits, target.view(-1), ignore_index=0, reduction="sum")
    (ref * 2.5).backward()
    theirs = [features.grad, layer.weight.grad] + ([layer.bias.grad] if bias else [])
    assert loss.item() == pytest.approx(ref.item(), rel=1e-12)
    assert nll.item() == pytest.approx(ref_nll.item(), rel=1e-12)
    for a, b in zip(ours, theirs):
        torch.testing.assert_close(a, b, rtol=1e-10, atol=1e-12)
    assert (ours[0][0, 3:] == 0).all()                          # nothing reaches padding
    with torch.no_grad():                                       # validation: values only
        again, _ = projected_loss_sums(features, layer, target, smoothing)
    assert again.item() == pytest.approx(ref.item(), rel=1e-12)


def test_relu_dropout_is_dropout_of_relu_and_keeps_one_tensor():
    """Same values and gradient as ReLU then dropout with the same mask, in float64; only the
    output is kept for backward, and ``Dropout`` keeps a one-byte mask."""
    from seqattn.models.layers import Dropout, relu_dropout

    torch.manual_seed(0)
    x = torch.randn(400, 30, dtype=torch.float64, requires_grad=True)
    saved: list[torch.Tensor] = []
    with torch.autograd.graph.saved_tensors_hooks(lambda t: saved.append(t) or t, lambda t: t):
        y = relu_dropout(x, 0.25, True)
    assert len(saved) == 1 and saved[0] is y
    kept = (y != 0) | (x <= 0)                     # where x > 0 a zero output means dropped
    dropped = (x > 0) & (y == 0)
    assert 0.2 < dropped.sum().item() / (x > 0).sum().item() < 0.3
    torch.testing.assert_close(y, torch.relu(x) * kept / 0.75, rtol=0, atol=1e-15)
    grad = torch.randn_like(y)
    y.backward(grad)
    torch.testing.assert_close(x.grad, grad * ((x > 0) & kept) / 0.75, rtol=0, atol=1e-15)
    assert torch.equal(relu_dropout(x, 0.25, False), torch.relu(x))
    drop = Dropout(0.25).train()
    saved.clear()
    with torch.autograd.graph.saved_tensors_hooks(lambda t: saved.append(t) or t, lambda t: t):
        out = drop(x)
    assert [t.dtype for t in saved] == [torch.bool]
    torch.testing.assert_close(out, x * saved[0] / 0.75, rtol=0, atol=1e-15)
    assert drop.eval()(x) is x


@pytest.mark.slow
@pytest.mark.parametrize("sig,code,word", [("SIGINT", 130, "interrupted"),
                                           ("SIGTERM", 143, "terminated")])
def test_ctrl_c_or_sigterm_saves_a_checkpoint(tmp_path, sig, code, word):
    import signal
    import time

    base = _corpus(tmp_path) + ["training.max_steps=100000", "training.log_every=1",
                                "training.valid_every=100000"]
    out = tmp_path / "run"
    cmd = [sys.executable, "-m", "seqattn", "train", "--out", str(out)]
    for item in base:
        cmd += ["--set", item]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            preexec_fn=default_sigint)
    log = out / "train.jsonl"
    deadline = time.time() + 300
    while time.time() < deadline and not (log.exists() and log.read_text().count("\n") >= 2):
        time.sleep(0.2)
    proc.send_signal(getattr(signal, sig))
    stdout, stderr = proc.communicate(timeout=300)
    assert proc.returncode == code, stderr
    assert stdout == "" and stderr.strip().splitlines()[-1] == f"error: {word}"
    assert f"{word}: checkpoint saved at step" in stderr
    state = torch.load(out / "train_state.pt", weights_only=True)
    step = int(state["progress"]["step"])
    assert step >= 2
    again = config_from_dict({}, base[:-3] + [f"training.max_steps={step + 2}",
                                              "training.valid_every=100000"])
    from seqattn.train import train

    summary = train(again, out, resume=True)
    assert summary["step"] == step + 2
