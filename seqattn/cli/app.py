"""The Typer application object, global options and the helpers every command shares.

Nothing here imports torch: ``seqattn --help`` must stay fast. Commands import the library
(and through it torch) inside their bodies.
"""

from __future__ import annotations

import logging
import os
from typing import Annotated

import typer

from seqattn import __version__
from seqattn.errors import OPTION_NAMES

app = typer.Typer(
    name="seqattn",
    help=(
        "Neural machine translation that shows its attention.\n\n"
        "Train Bahdanau, Luong or Transformer models, translate with an alignment table, "
        "extract word alignments, score with sacreBLEU, and explore one attention step."
    ),
    epilog="Run 'seqattn COMMAND --help' for examples. Docs: README.md",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_show_locals=False,
    rich_markup_mode="rich",
    context_settings={"help_option_names": ["-h", "--help"]},
)

#: The flag of each library parameter a command passes on: an error that names a parameter
#: (``SeqattnError.params``) is shown with the flag the user typed.
FLAGS = {**{param: "--" + name.replace("_", "-") for param, name in OPTION_NAMES.items()},
         "serve.api_key": "--api-key", "serve.no_auth": "--no-auth",
         "serve.allow_origins": "--allow-origin", "serve.max_lines": "--max-lines",
         "serve.max_chars": "--max-chars", "serve.batch_wait_ms": "--batch-wait-ms",
         "serve.max_batch_lines": "--max-batch-lines", "serve.batch_tokens": "--batch-tokens",
         "serve.port": "--port", "serve.max_beam": "--max-beam",
         "serve.max_queued_lines": "--max-queued-lines"}


def in_flags(error: Exception) -> str:
    """The message of ``error`` with each library parameter it names replaced by its flag."""
    message = str(error)
    for param in getattr(error, "params", ()):
        if param in FLAGS:
            message = message.replace(param, FLAGS[param])
    return message


# Global state set by the callback (the CLI is one process, one invocation).
STATE = {"debug": False, "quiet": False}


def _version(value: bool) -> None:
    if value:
        typer.echo(f"seqattn {__version__}")
        raise typer.Exit()


@app.callback()
def _global(
    debug: Annotated[
        bool, typer.Option("--debug", help="Show full tracebacks (also SEQATTN_DEBUG=1).")
    ] = False,
    quiet: Annotated[
        bool, typer.Option("--quiet", "-q", help="Only warnings and errors on stderr.")
    ] = False,
    version: Annotated[
        bool,
        typer.Option("--version", callback=_version, is_eager=True, help="Print the version."),
    ] = False,
) -> None:
    STATE["debug"] = STATE["debug"] or debug
    STATE["quiet"] = quiet
    setup_logging()


def err_console():  # noqa: ANN201 (rich imported lazily)
    """The Rich console for everything that is not data: progress, logs, warnings, errors.

    Rich turns colour off by itself when stderr is not a terminal or ``NO_COLOR`` is set; there,
    a message is also never wrapped at 80 columns (one message, one line, for logs and grep).
    """
    import sys

    from rich.console import Console

    return Console(stderr=True, highlight=False, soft_wrap=not sys.stderr.isatty())


def out_console():  # noqa: ANN201
    """A Rich console on stdout, for commands whose data is a table meant for people."""
    from rich.console import Console

    return Console(highlight=False)


def setup_logging() -> None:
    """Library log records go to stderr: through Rich on a terminal; otherwise as plain lines,
    one record a line (``warning: ...``), never wrapped or padded, so logs and scripts can
    grep them."""
    import sys

    level = logging.DEBUG if STATE["debug"] else logging.WARNING if STATE["quiet"] else logging.INFO
    logger = logging.getLogger("seqattn")
    logger.handlers.clear()
    handler: logging.Handler
    if sys.stderr.isatty():
        from rich.logging import RichHandler

        handler = RichHandler(console=err_console(), show_path=False, show_time=False,
                              rich_tracebacks=False, markup=False)
    else:
        handler = _PlainHandler()
    logger.addHandler(handler)
    logger.setLevel(level)
    logger.propagate = False


class _PlainHandler(logging.Handler):
    """One line per record on the current ``sys.stderr``: the message, prefixed by its level
    (``warning:``, ``error:``) unless it is plain information."""

    def emit(self, record: logging.LogRecord) -> None:
        import sys

        try:
            message = " ".join(record.getMessage().splitlines())
            if record.levelno >= logging.WARNING or record.levelno < logging.INFO:
                message = f"{record.levelname.lower()}: {message}"
            sys.stderr.write(message + "\n")
            sys.stderr.flush()
        except BrokenPipeError:
            pass
        except Exception:  # noqa: BLE001  (logging must never take the command down)
            self.handleError(record)


def debug_from_env() -> bool:
    return os.environ.get("SEQATTN_DEBUG", "").strip() not in ("", "0", "false", "no")


def tune_cpu() -> None:
    """Process-wide CPU settings for the torch commands (train, translate, align).

    Denormal floats are flushed to zero: near-converged models produce them, and CPU
    arithmetic on denormals can be ten times slower (seen in our reverse-task tests).

    Big tensors' memory stays in the process instead of going back to the OS:
    glibc serves every allocation above 32 MiB with a fresh mmap, so each (B, T, V) logits
    tensor of a training step page-faults in anew (measured: cloning a 3840×8000 float tensor
    took 48 ms, 7.6 ms with this setting). Turning mmap off and raising the trim threshold
    lets freed blocks be reused. Only for glibc on Linux; a no-op elsewhere.
    """
    import ctypes
    import sys

    import torch

    torch.set_flush_denormal(True)
    if not sys.platform.startswith("linux"):
        return
    try:
        libc = ctypes.CDLL("libc.so.6")
        m_trim_threshold, m_mmap_max = -1, -4
        libc.mallopt(m_mmap_max, 0)
        libc.mallopt(m_trim_threshold, 1 << 30)
    except (OSError, AttributeError):
        pass
