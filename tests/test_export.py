"""``seqattn export``: fp16 model directories that load back into float32 and translate alike."""

from __future__ import annotations

import pytest
import torch

from seqattn.checkpoint import export_model, load_model_dir
from seqattn.cli import run
from seqattn.errors import CheckpointError, ConfigError


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
