"""`seqattn train` with separate vocabularies end to end, and the progress ETA."""

from __future__ import annotations

import io
import json
import re

import pytest

from seqattn.cli import run
from tests.test_train import _corpus

PHARAOH = re.compile(r"^(\d+-\d+( \d+-\d+)*)?$")


def _sets(items: list[str]) -> list[str]:
    args = []
    for item in items:
        args += ["--set", item]
    return args


def test_train_spm_appends_model_to_a_dotted_prefix(tmp_path):
    from seqattn.vocab import train_spm

    _corpus(tmp_path)
    path = train_spm([tmp_path / "train.en"], tmp_path / "src.spm", 100, "unigram")
    assert path == tmp_path / "src.spm.model" and path.is_file()
    assert not (tmp_path / "src.model").exists()


@pytest.mark.slow
def test_separate_vocabularies_train_translate_align_export_resume(tmp_path, capsys):
    from seqattn import checkpoint as ckpt

    base = _corpus(tmp_path)
    run_dir, exported = tmp_path / "run", tmp_path / "exported"
    args = ["train", "--out", str(run_dir)] + _sets(
        base + ["data.vocab=separate", "training.max_steps=4", "training.valid_every=2"])
    assert run(args) == 0, capsys.readouterr().err
    src, tgt = run_dir / ckpt.SRC_SPM, run_dir / ckpt.TGT_SPM
    assert src.is_file() and tgt.is_file() and not (run_dir / ckpt.JOINT_SPM).exists()
    assert src.read_bytes() != tgt.read_bytes()
    assert not (run_dir / "src.model").exists() and not (run_dir / "tgt.model").exists()
    capsys.readouterr()

    assert run(["translate", "-m", str(run_dir), "A dog runs.", "Two men talk."]) == 0
    assert len(capsys.readouterr().out.splitlines()) == 2

    pairs_src, pairs_tgt = tmp_path / "pairs.en", tmp_path / "pairs.de"
    pairs_src.write_text("A dog runs.\nTwo men talk.\nA girl.\n", encoding="utf-8")
    pairs_tgt.write_text("Ein Hund rennt.\nZwei Männer reden.\nEin Mädchen.\n", encoding="utf-8")
    assert run(["align", "-m", str(run_dir), str(pairs_src), str(pairs_tgt)]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 3 and all(PHARAOH.match(line) for line in lines), lines

    assert run(["export", str(run_dir), str(exported)]) == 0
    capsys.readouterr()
    assert (exported / ckpt.SRC_SPM).read_bytes() == src.read_bytes()
    assert (exported / ckpt.TGT_SPM).read_bytes() == tgt.read_bytes()
    assert run(["translate", "-m", str(exported), "A dog runs."]) == 0
    assert len(capsys.readouterr().out.splitlines()) == 1

    before = src.read_bytes(), tgt.read_bytes()
    assert run(["train", "--out", str(run_dir), "--resume", "--set",
                "training.max_steps=6"]) == 0, capsys.readouterr().err
    assert (src.read_bytes(), tgt.read_bytes()) == before  # reused, not trained again
    records = [json.loads(line) for line in (run_dir / "train.jsonl").read_text().splitlines()]
    assert records[-1]["kind"] == "done" and records[-1]["step"] == 6
    assert [r["step"] for r in records if r["kind"] == "train"] == [2, 4, 6]
    capsys.readouterr()
    assert run(["translate", "-m", str(run_dir), "A dog runs."]) == 0
    assert len(capsys.readouterr().out.splitlines()) == 1


# --------------------------------------------------------------------------- ETA


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def _record(step: int) -> dict:
    return {"step": step, "loss": 5.0, "ppl": 150.0, "tokens_per_s": 900.0, "lr": 1e-3}


@pytest.mark.parametrize("seconds, text", [(None, "-:--:--"), (0, "0:00:00"), (500, "0:08:20"),
                                           (59.6, "0:01:00"), (3600 * 27 + 61, "27:01:01")])
def test_format_eta(seconds, text):
    from seqattn.cli.train import format_eta

    assert format_eta(seconds) == text


@pytest.mark.parametrize("first", [0, 50])  # a fresh run, and one resumed at step 50
def test_eta_in_the_log_lines_at_5_s_per_step(first):
    from rich.console import Console

    from seqattn.cli.train import RichReporter

    clock, console = FakeClock(), Console(file=io.StringIO(), width=200)
    reporter = RichReporter(console=console, clock=clock)
    reporter.start(first, first + 103)
    for step in range(first + 1, first + 4):
        clock.now += 5.0
        reporter.update(_record(step))
    reporter.close()
    lines = console.file.getvalue().splitlines()
    assert len(lines) == 3 and all("-:--:--" not in line for line in lines)
    assert lines[0].endswith("eta 0:08:30")   # 102 steps left × 5 s
    assert lines[-1].endswith("eta 0:08:20")  # 100 steps left × 5 s


def test_eta_in_the_live_bar_at_5_s_per_step():
    from rich.console import Console

    from seqattn.cli.train import RichReporter

    clock = FakeClock()
    console = Console(file=io.StringIO(), force_terminal=True, width=200)
    reporter = RichReporter(console=console, clock=clock)
    reporter.start(0, 103)
    try:
        def bar() -> str:
            shot = Console(file=io.StringIO(), width=200, record=True)
            shot.print(reporter.progress.get_renderable())
            return shot.export_text()

        assert "eta -:--:--" in bar()  # nothing to go on before the first update
        for step in (1, 2, 3):
            clock.now += 5.0
            reporter.update(_record(step))
        assert "3/103" in bar() and "eta 0:08:20" in bar()
        clock.now += 10.0  # between updates it counts down
        assert "eta 0:08:10" in bar()
    finally:
        reporter.close()
