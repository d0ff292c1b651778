"""``seqattn export``: fp16 model directories that load back into float32 and translate alike."""

from __future__ import annotations

import pytest
import torch

from seqattn.checkpoint import load_model_dir
from seqattn.cli import run
from seqattn.config import config_from_dict
from seqattn.errors import CheckpointError, ConfigError
from seqattn.export import export_model


def test_fp16_export_halves_the_weights_and_loads_back_as_float32(tiny_model, tmp_path):
    out = export_model(tiny_model, tmp_path / "shipped", "fp16")
    assert {p.name for p in out.iterdir()} == {"config.yaml", "model.safetensors", "spm.model",
                                               "seqattn.json"}
    before = (tiny_model / "model.safetensors").stat().st_size
    after = (out / "model.safetensors").stat().st_size
    assert 0.45 < after / before < 0.55
    full, half = load_model_dir(tiny_model), load_model_dir(out)
    assert half.meta["stored_dtype"] == "float16"
    for (name, a), (_, b) in zip(full.model.state_dict().items(),
                                 half.model.state_dict().items()):
        assert b.dtype == a.dtype == torch.float32, name
        torch.testing.assert_close(b, a.half().float(), rtol=0, atol=0)  # exactly the rounding


def test_exported_model_translates_like_the_original(tiny_transformer, tmp_path):
    import seqattn

    out = export_model(tiny_transformer, tmp_path / "shipped", "fp16")
    lines = ["A man rides a bike.", "Two dogs play in the snow."]
    a = seqattn.load(tiny_transformer).translate(lines, beam=1)
    b = seqattn.load(out).translate(lines, beam=1)
    assert [x.text for x in a] == [x.text for x in b]
    assert [x.score for x in a] == pytest.approx([x.score for x in b], abs=1e-2)


def test_export_refuses_bad_requests(tiny_transformer, tmp_path, capsys):
    (tmp_path / "taken").mkdir()
    with pytest.raises(CheckpointError, match="already exists"):
        export_model(tiny_transformer, tmp_path / "taken")
    with pytest.raises(ConfigError, match="--dtype must be one of"):
        export_model(tiny_transformer, tmp_path / "x", "int8")
    with pytest.raises(CheckpointError, match="does not exist"):
        export_model(tmp_path / "nothing", tmp_path / "y")
    assert not (tmp_path / "x").exists() and not (tmp_path / "y").exists()
    assert run(["export", str(tiny_transformer), str(tmp_path / "taken")]) == 2
    assert capsys.readouterr().err.strip().startswith("error: ")
    assert run(["export", str(tiny_transformer), str(tmp_path / "ok"), "--dtype", "bf16"]) == 0
    assert load_model_dir(tmp_path / "ok").meta["stored_dtype"] == "bfloat16"
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no temporaries left


def test_kept_checkpoints_average_into_an_export(tmp_path, capsys):
    """keep_checkpoints keeps the newest N validations' weights; --average ships their mean."""
    from safetensors.torch import load_file

    from seqattn.train import train
    from tests.test_train import _corpus

    cfg = config_from_dict({}, _corpus(tmp_path) + [
        "training.max_steps=8", "training.valid_every=2", "training.keep_checkpoints=3"])
    train(cfg, tmp_path / "run")
    kept = sorted(p.name for p in (tmp_path / "run" / "checkpoints").iterdir())
    assert kept == ["step-0000004.safetensors", "step-0000006.safetensors",
                    "step-0000008.safetensors"]
    # the newest kept checkpoint is the run's last weights
    last = load_file(str(tmp_path / "run" / "last.safetensors"))
    newest = load_file(str(tmp_path / "run" / "checkpoints" / kept[-1]))
    assert all(torch.equal(last[k], newest[k]) for k in last)

    assert run(["export", str(tmp_path / "run"), str(tmp_path / "avg"), "--average", "2",
                "--dtype", "fp32"]) == 0, capsys.readouterr().err
    a, b = (load_file(str(tmp_path / "run" / "checkpoints" / n)) for n in kept[-2:])
    mean = load_file(str(tmp_path / "avg" / "model.safetensors"))
    assert mean.keys() == a.keys()
    moved = 0
    for name in a:
        torch.testing.assert_close(mean[name], (a[name] + b[name]) / 2, rtol=0, atol=1e-7)
        moved += int(not torch.equal(a[name], b[name]))
    assert moved > 0  # the two checkpoints differ, so the mean is neither of them
    meta = load_model_dir(tmp_path / "avg").meta
    assert meta["averaged_steps"] == [6, 8] and meta["step"] == 8 and "scores" not in meta
    assert seqattn_translates(tmp_path / "avg")

    capsys.readouterr()
    assert run(["export", str(tmp_path / "run"), str(tmp_path / "x"), "--average", "4"]) == 2
    err = capsys.readouterr().err
    assert "kept 3 checkpoint(s)" in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "x").exists()


def seqattn_translates(model_dir) -> bool:
    import seqattn

    return len(seqattn.load(model_dir).translate(["A dog runs."], beam=1)) == 1


def test_export_says_what_it_wrote_unless_quiet(tiny_transformer, tmp_path, capsys):
    assert run(["-q", "export", str(tiny_transformer), str(tmp_path / "a")]) == 0
    assert capsys.readouterr().err == ""
    assert run(["export", str(tiny_transformer), str(tmp_path / "b")]) == 0
    err = capsys.readouterr().err
    assert f"exported {tiny_transformer} → {tmp_path / 'b'}" in err and "MiB" in err
