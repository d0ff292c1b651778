"""Fine-tuning (issue 18): `seqattn train --init-from MODEL` starts from a model's weights,
vocabulary and model section."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from seqattn.cli import run
from seqattn.config import config_from_dict, load_config
from tests.test_train import _corpus, _weights

MODELS = Path(__file__).resolve().parents[1] / "models"


@pytest.fixture(scope="module")
def base(tmp_path_factory) -> tuple[Path, list[str]]:
    tmp = tmp_path_factory.mktemp("finetune")
    data = _corpus(tmp)
    out = tmp / "base"
    args = ["train", "--out", str(out), "--set", "training.max_steps=4",
            "--set", "training.valid_every=4"]
    for item in data:
        args += ["--set", item]
    assert run(args) == 0
    return out, [x for x in data if x.startswith("data.train") or x.startswith("data.valid")]


def _args(out: Path, data: list[str], *extra: str) -> list[str]:
    args = ["train", "--out", str(out), "--set", "training.valid_every=2",
            "--set", "training.batch_tokens=400", "--set", "decoding.max_len_b=3"]
    for item in [*data, *extra]:
        args += ["--set", item]
    return args


def test_init_from_starts_at_the_models_weights_and_vocabulary(base, tmp_path):
    """At a learning rate of 1e-12 one update leaves the weights where they started: the base
    model's, not a fresh initialisation; the vocabulary file is the base's, byte for byte, and
    the model section is the base's even where the user's says otherwise."""
    model, data = base
    out = tmp_path / "ft"
    assert run(["--quiet", *_args(out, data, "training.max_steps=1", "training.lr=1e-12",
                                  "training.schedule=constant", "model.hidden_size=64"),
                "--init-from", str(model)]) == 0
    start, after = _weights(model / "model.safetensors"), _weights(out / "last.safetensors")
    assert start.keys() == after.keys()
    assert all(torch.allclose(start[k].float(), after[k].float(), atol=1e-6) for k in start)
    assert (out / "spm.model").read_bytes() == (model / "spm.model").read_bytes()
    cfg = load_config(out / "config.yaml")
    assert cfg.model == load_config(model / "config.yaml").model and cfg.model.hidden_size == 32
    assert cfg.training.init_from == str(model)


def test_a_fine_tuning_run_resumes_with_the_same_command(base, tmp_path):
    model, data = base
    out = tmp_path / "ft"
    assert run(_args(out, data, "training.max_steps=2") + ["--init-from", str(model)]) == 0
    before = _weights(out / "last.safetensors")
    assert run(_args(out, data, "training.max_steps=4") +
               ["--init-from", str(model), "--resume"]) == 0
    after = _weights(out / "last.safetensors")
    assert any(not torch.equal(before[k], after[k]) for k in before)  # it went on training


def test_init_from_a_shipped_model_by_name_and_a_missing_one(tmp_path, capsys):
    from seqattn.train.finetune import with_init

    if not (MODELS / "en-de" / "seqattn.json").is_file():
        pytest.skip("models/en-de is not shipped in this checkout")
    cfg = with_init(config_from_dict({}, ["training.init_from=en-de"]))
    assert cfg.model == load_config(MODELS / "en-de" / "config.yaml").model
    assert Path(cfg.data.spm_model).samefile(MODELS / "en-de" / "spm.model")
    assert run(["train", "--out", str(tmp_path / "x"), "--init-from", "no-such-model"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "no-such-model" in err[0] and not (tmp_path / "x").exists()


@pytest.mark.parametrize("text,value", [("1e-4", 1e-4), ("5E-4", 5e-4), ("2e3", 2000.0),
                                        ("+1.5e-2", 0.015)])
def test_exponents_without_a_dot_are_numbers(text, value):
    """YAML 1.1 reads 1e-4 as a string; a float setting takes it as the number it means, from
    --set and from a config file alike; other strings are still refused."""
    from seqattn.errors import ConfigError

    assert config_from_dict({}, [f"training.lr={text}"]).training.lr == value
    assert config_from_dict({"training": {"lr": text}}).training.lr == value
    with pytest.raises(ConfigError, match="must be a number"):
        config_from_dict({}, ["training.lr=1e-4x"])
