"""``seqattn train``: train a model from a YAML config (see seqattn.train)."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any

import typer

from seqattn.cli.app import app, err_console, tune_cpu

EXAMPLES = """
[bold]Examples[/bold]

  seqattn train --preset sample-tiny --out runs/sample        [dim]# minutes on a CPU, from the repository root[/dim]

  seqattn train --preset transformer-small --set data.train_src=train.en --set data.train_tgt=train.de --set data.valid_src=val.en --set data.valid_tgt=val.de --out runs/ende

  seqattn train my.yaml --set model.hidden_size=512 --set training.max_steps=20000

  seqattn train --out runs/ende --resume                      [dim]# continue an interrupted run[/dim]

  seqattn train my.yaml --init-from en-de --out runs/mine     [dim]# fine-tune a shipped model[/dim]

  torchrun --nproc_per_node=2 -m seqattn train my.yaml --out runs/ende   [dim]# data-parallel[/dim]

Presets: bahdanau-gru, luong-lstm, transformer-small, sample-tiny (copy one from
seqattn/presets/ to start your own). Ctrl-C saves a checkpoint; --resume continues from it.
"""


@app.command(epilog=EXAMPLES)
def train(
    config: Annotated[
        Path | None, typer.Argument(help="YAML config (sections: data, model, training, decoding).",
                                    show_default=False)
    ] = None,
    preset: Annotated[
        str | None, typer.Option("--preset", help="Start from a shipped preset config by name.",
                                 show_default=False)
    ] = None,
    overrides: Annotated[
        list[str] | None,
        typer.Option("--set", metavar="KEY=VALUE", show_default=False,
                     help="Override a config key, e.g. model.hidden_size=512 (repeatable)."),
    ] = None,
    out: Annotated[
        Path | None, typer.Option("--out", "-o", show_default=False,
                                  help="Model directory to write \\[default: runs/CONFIG_NAME].")
    ] = None,
    resume: Annotated[
        bool, typer.Option("--resume", help="Continue the run saved in --out where it stopped.")
    ] = False,
    init_from: Annotated[
        str | None, typer.Option("--init-from", metavar="MODEL", show_default=False,
                                 help="Fine-tune: start from this model's weights, vocabulary "
                                      "and model section (a directory or a shipped model's "
                                      "name); sets training.init_from.")
    ] = None,
    device: Annotated[
        str | None, typer.Option("--device", help="auto, cpu, cuda, cuda:N (overrides "
                                 "training.device).", show_default=False)
    ] = None,
) -> None:
    """Train a Bahdanau / Luong RNN or a Transformer on plain parallel text.

    Writes a self-contained model directory: weights (safetensors), the resolved config (YAML),
    the sentencepiece model(s), seqattn.json, a JSON-lines log (train.jsonl) and the training
    state for --resume.
    """
    # Long for its option declarations only (Typer reads the signature); the body is short.
    from seqattn.config import load_config, preset_path
    from seqattn.errors import UsageError
    from seqattn.train import train as run_training

    tune_cpu()

    if config is not None and preset is not None:
        raise UsageError("give either CONFIG or --preset, not both")
    source = config if config is not None else preset_path(preset) if preset else None
    if init_from is not None:
        overrides = [*(overrides or []), f"training.init_from={init_from}"]
    if source is None and resume and out is not None:
        from seqattn.train.state import resume_config

        source = resume_config(out)  # resuming with the stored config
    if source is None:  # only --set overrides on top of the defaults
        from seqattn.config import config_from_dict

        cfg = config_from_dict({}, overrides or [])
    else:
        cfg = load_config(source, overrides or [])
    if out is None:
        name = preset or (Path(config).stem if config is not None else "model")
        out = Path("runs") / name
    summary = run_training(cfg, out, resume=resume, device=device, reporter=RichReporter())
    best = summary["best"]
    err_console().print(
        f"done: {summary['step']} steps in {summary['seconds']:.0f} s; best {summary['metric']} "
        f"{best:.2f}; model in {out}" if best is not None else f"done; model in {out}")


def format_eta(seconds: float | None) -> str:
    """``H:MM:SS`` as Rich writes times; ``-:--:--`` while there is no estimate yet."""
    if seconds is None:
        return "-:--:--"
    minutes, secs = divmod(max(round(seconds), 0), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}"


class Eta:
    """Time left, from the wall time since this start (or resume) over the steps done since.

    Rich's own estimate (``TimeRemainingColumn``) averages over the last 30 s of updates; a run
    reports every ``log_every`` steps, often minutes apart, so it never had two updates in its
    window and showed ``-:--:--`` to the end. Validation time counts too: it is part of the wait.
    """

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self.clock = clock
        self.first = self.step = self.total = 0
        self.started = self.updated = 0.0

    def start(self, step: int, max_steps: int) -> None:
        self.first = self.step = step
        self.total, self.started = max_steps, self.clock()

    def update(self, step: int) -> None:
        self.step, self.updated = step, self.clock()

    def seconds(self) -> float | None:
        """Seconds left; counts down between updates (never below 0). None before a step."""
        done = self.step - self.first
        if done <= 0:
            return None
        per_step = (self.updated - self.started) / done
        return max(per_step * (self.total - self.step) - (self.clock() - self.updated), 0.0)

    def text(self) -> str:
        return format_eta(self.seconds())


def _eta_column(eta: Eta) -> Any:
    from rich.progress import ProgressColumn
    from rich.text import Text

    class EtaColumn(ProgressColumn):
        def render(self, task: Any) -> Text:
            return Text(f"eta {eta.text()}", style="progress.remaining")

    return EtaColumn()


class RichReporter:
    """Progress on stderr: a live bar on a terminal, log lines otherwise (both with an ETA)."""

    def __init__(self, console: Any = None, clock: Callable[[], float] = time.monotonic) -> None:
        self.console = console if console is not None else err_console()
        self.eta = Eta(clock)
        self.progress: Any = None
        self.task: Any = None

    def encoding(self, name: str, done: int, total: int) -> None:
        """A bar while the training pairs are encoded into the store (a terminal only: the
        log says when it starts and ends)."""
        if not self.console.is_terminal:
            return
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            Progress,
            TextColumn,
            TimeRemainingColumn,
        )

        if self.progress is None:
            self.progress = Progress(TextColumn("encoding {task.fields[name]}"), BarColumn(),
                                     MofNCompleteColumn(), TimeRemainingColumn(),
                                     console=self.console, transient=True)
            self.task = self.progress.add_task("encode", total=total, name=name)
            self.progress.start()
        self.progress.update(self.task, completed=done, total=total, name=name)
        if done >= total:
            self.close()

    def start(self, step: int, max_steps: int) -> None:
        self.eta.start(step, max_steps)
        self.close()  # an encoding bar left by a run that stopped short of the end
        if not self.console.is_terminal:
            return
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

        self.progress = Progress(TextColumn("train"), BarColumn(), MofNCompleteColumn(),
                                 TextColumn("{task.fields[stats]}"), _eta_column(self.eta),
                                 console=self.console, transient=False)
        self.task = self.progress.add_task("train", total=max_steps, completed=step, stats="")
        self.progress.start()

    def update(self, r: dict[str, Any]) -> None:
        self.eta.update(r["step"])
        stats = (f"loss {r['loss']:.3f} ppl {r['ppl']:.1f} {r['tokens_per_s']:,.0f} tok/s "
                 f"lr {r['lr']:.2e}")
        if "align_loss" in r:
            stats += f" align {r['align_loss']:.3f}"
        if self.progress is not None:
            self.progress.update(self.task, completed=r["step"], stats=stats)
        else:
            self.console.print(f"step {r['step']}: {stats} eta {self.eta.text()}")

    def validated(self, r: dict[str, Any]) -> None:
        mark = " (best)" if r["improved"] else ""
        self.console.print(f"valid @ {r['step']}: loss {r['loss']:.3f} ppl {r['ppl']:.2f} "
                           f"bleu {r['bleu']:.2f} chrf {r['chrf']:.2f}{mark}")

    def close(self) -> None:
        if self.progress is not None:
            self.progress.stop()
            self.progress = None
