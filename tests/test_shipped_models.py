"""The models shipped in ``models/``: each loads by its short name with the library and the CLI
and translates a sentence (a smoke check, not a quality check), and together they stay small."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

MODELS = Path(__file__).resolve().parents[1] / "models"
SHIPPED = {"en-de": "Two dogs are playing in the snow.",
           "de-en": "Zwei Hunde spielen im Schnee.",
           "en-de-rnn": "Two dogs are playing in the snow.",
           "en-de-rnn-noattn": "Two dogs are playing in the snow."}


def _shipped(name: str) -> Path:
    path = MODELS / name
    if not (path / "seqattn.json").is_file():
        pytest.skip(f"models/{name} is not shipped in this checkout")
    return path


@pytest.mark.parametrize("name", sorted(SHIPPED))
def test_shipped_model_loads_by_short_name_and_translates(name, monkeypatch):
    import seqattn

    _shipped(name)
    monkeypatch.delenv("SEQATTN_MODELS", raising=False)
    [result] = seqattn.load(name).translate([SHIPPED[name]], beam=2)
    assert result.text.strip() and result.text != SHIPPED[name]
    weights = result.hyps[0].weights                                  # (L, H, T, S)
    assert weights is not None and weights.shape[-1] == len(result.src.ids) + 1


@pytest.mark.parametrize("name", sorted(SHIPPED))
def test_shipped_model_through_the_cli(name):
    _shipped(name)
    proc = subprocess.run([sys.executable, "-m", "seqattn", "translate", "-m", name,
                           "--format", "tsv", SHIPPED[name]], capture_output=True, text=True,
                          timeout=300)
    assert proc.returncode == 0, proc.stderr
    source, translation, score = proc.stdout.rstrip("\n").split("\t")
    assert source == SHIPPED[name] and translation and float(score) < 0


def test_shipped_models_fit_the_size_budget():
    """Four models of about 16-17 MB (the fourth, en-de-rnn-noattn, the no-attention baseline
    of the README's "See the bottleneck"), three aligners of 1.6-1.7 MB and en-de's vocabulary
    shortlist of 0.3 MB: 67.9 MiB. The wheel
    carries them all (tests/test_wheel.py), so the budget stays well below PyPI's 100 MB per
    file."""
    total = sum(p.stat().st_size for p in MODELS.glob("*/*") if p.is_file())
    assert total <= 69 * 2**20, f"models/ holds {total / 2**20:.1f} MiB, over the 69 MiB budget"
