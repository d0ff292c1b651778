"""Nothing in a model directory is ever executed: no unpickling of untrusted files."""

from __future__ import annotations

import pickle
import re
import shutil
from pathlib import Path

import pytest

from seqattn.errors import CheckpointError

PACKAGE = Path(__file__).resolve().parents[1] / "seqattn"


class _Payload:
    """Unpickling this would create the file named in ``target``."""

    def __init__(self, target: Path):
        self.target = target

    def __reduce__(self):
        return (Path.touch, (self.target,))


def test_every_torch_load_is_weights_only():
    offenders = []
    for path in PACKAGE.rglob("*.py"):
        text = path.read_text(encoding="utf-8")
        for match in re.finditer(r"torch\.load\(", text):
            call = text[match.start(): text.find(")", match.start()) + 1]
            if "weights_only=True" not in call:
                offenders.append(f"{path.name}: {call}")
    assert not offenders, offenders
    sources = "\n".join(p.read_text(encoding="utf-8") for p in PACKAGE.rglob("*.py"))
    assert not re.search(r"pickle\.loads?\(|yaml\.load\(|yaml\.unsafe_load", sources)


def test_pickle_payload_as_training_state_is_refused(tmp_path):
    from seqattn.config import config_from_dict
    from seqattn.train.schedule import make_schedule
    from seqattn.train.state import load_state as _load_state

    marker = tmp_path / "pwned"
    state = tmp_path / "train_state.pt"
    state.write_bytes(pickle.dumps({"model": _Payload(marker)}))
    cfg = config_from_dict({})
    with pytest.raises(CheckpointError, match="train_state.pt' is corrupt or not seqattn's"):
        _load_state(tmp_path, None, None, make_schedule(cfg), None, "cpu")
    assert not marker.exists()


def test_pickle_payload_as_weights_is_refused(tiny_transformer, tmp_path, capsys):
    from seqattn.cli import run

    model = tmp_path / "m"
    shutil.copytree(tiny_transformer, model)
    marker = tmp_path / "pwned"
    (model / "model.safetensors").write_bytes(pickle.dumps(_Payload(marker)))
    assert run(["translate", "-m", str(model), "a dog"]) == 2
    err = capsys.readouterr().err
    assert "model.safetensors" in err and "corrupt or truncated" in err
    assert not marker.exists()
