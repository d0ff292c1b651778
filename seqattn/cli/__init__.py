"""Command-line interface: a thin Typer layer over the library.

``main()`` is the one place where errors become output and exit codes:

* a :class:`~seqattn.errors.SeqattnError` -> ``error: <message>`` on stderr, its exit code
  (1 runtime failure, 2 bad usage or bad input);
* a usage error found by the argument parser -> ``error: ...``, exit 2;
* Ctrl-C -> exit 130; a closed stdout pipe (``| head -1``) -> quiet exit;
* anything unexpected -> a one-line ``error: internal error ...``; with ``--debug`` (anywhere on
  the command line) or ``SEQATTN_DEBUG=1`` the traceback is shown as well.
"""

from __future__ import annotations

import errno
import os
import signal
import sys
from collections.abc import Sequence

from seqattn.cli import (  # noqa: F401
    align,
    aligner,
    evaluate,
    explain,
    export,
    serve,
    shortlist,
    train,
    translate,
)
from seqattn.cli.app import STATE, app, debug_from_env, err_console, in_flags
from seqattn.cli.output import PipeClosed
from seqattn.errors import SeqattnError

__all__ = ["app", "main"]


def _reflow_help() -> None:
    """Each command's help from its docstring with every paragraph on one line: Rich keeps a
    docstring's own line breaks, which left ragged lines in ``--help`` at any width."""
    import inspect

    for info in app.registered_commands:
        if info.help is None and info.callback is not None and info.callback.__doc__:
            doc = inspect.cleandoc(info.callback.__doc__)
            info.help = "\n\n".join(" ".join(p.split()) for p in doc.split("\n\n"))


_reflow_help()


def main(argv: Sequence[str] | None = None) -> None:
    """Entry point of the ``seqattn`` console script and ``python -m seqattn``."""
    try:
        code = run(argv)
    except KeyboardInterrupt:  # between the command's end and run()'s return
        _error("interrupted")
        code = 130
    # From here on the command is over, but the interpreter still runs exit hooks (torch's,
    # logging's, ...): Ctrl-C there would print a traceback and keep exit code 0, and once the
    # interpreter finalizes (default handler back) it would kill the process without a word.
    if signal.getsignal(signal.SIGINT) is not signal.SIG_IGN:  # nohup, `cmd &`: leave it so
        signal.signal(signal.SIGINT, _interrupted_at_exit)
    _exit(code)


def _exit(code: int) -> None:
    """Run the exit hooks under our Ctrl-C handler, flush, and leave before the interpreter's
    finalization (nothing is left to clean up: files are closed, writes are atomic)."""
    import atexit

    try:
        atexit._run_exitfuncs()
    finally:
        for stream in (sys.stdout, sys.stderr):
            try:
                stream.flush()
            except (OSError, ValueError):
                pass
        os._exit(code)


def _interrupted_at_exit(signum: int, frame: object) -> None:
    """Ctrl-C during the interpreter's clean-up: one line, exit 130, no traceback."""
    try:
        sys.stderr.write("error: interrupted\n")
        sys.stderr.flush()
    finally:
        os._exit(130)


def run(argv: Sequence[str] | None = None) -> int:
    """Run the CLI and return the exit code instead of exiting (used by tests)."""
    import typer

    args = list(sys.argv[1:] if argv is None else argv)
    STATE["debug"] = debug_from_env() or "--debug" in args[: _end_of_options(args)]
    if STATE["debug"]:  # accepted anywhere, not only before the command
        args = [a for i, a in enumerate(args) if not (a == "--debug" and i < _end_of_options(args))]
        args.insert(0, "--debug")
    command = typer.main.get_command(app)
    try:
        code = command.main(args=args, prog_name="seqattn", standalone_mode=False)
        sys.stdout.flush()
        if code == 130:  # Typer turns Ctrl-C into exit code 130 without a word
            _error("interrupted")
        return code if isinstance(code, int) else 0
    except (BrokenPipeError, PipeClosed):
        return _closed_pipe()
    except SystemExit as e:  # Typer's own closed-pipe handling exits 1; report it like ours
        if isinstance(e.__context__, OSError) and e.__context__.errno == errno.EPIPE:
            return _closed_pipe()
        raise
    except KeyboardInterrupt:
        _error("interrupted")
        return 130
    except SeqattnError as e:
        _error(in_flags(e))
        return e.exit_code
    except typer.Abort:
        _error("aborted")
        return 130
    except Exception as e:  # noqa: BLE001  (the one place that reports every failure)
        return _report(e)


def _end_of_options(args: list[str]) -> int:
    return args.index("--") if "--" in args else len(args)


def _report(e: Exception) -> int:
    from typer._click.exceptions import ClickException, NoArgsIsHelpError

    if isinstance(e, NoArgsIsHelpError):
        sys.stdout.write(e.format_message() + "\n")
        return 0
    if isinstance(e, ClickException):
        ctx = getattr(e, "ctx", None)
        where = f"'{ctx.command_path} --help'" if ctx is not None else "'seqattn --help'"
        _error(f"{e.format_message()} (see {where})")
        return e.exit_code
    if isinstance(e, OSError) and e.errno is not None:  # disk full, permission denied, ...
        name = f": '{e.filename}'" if e.filename else ""
        _error(f"{e.strerror or e}{name}")
        return 1
    if isinstance(e, MemoryError) or _torch_out_of_memory(e):
        _error("out of memory; try a smaller batch (--batch-tokens) or a smaller model")
        return 1
    _error(f"internal error: {type(e).__name__}: {e} (this is a bug; please report it)")
    return 1


def _torch_out_of_memory(e: Exception) -> bool:
    """torch reports a failed allocation as ``torch.OutOfMemoryError`` (CUDA) or as a plain
    RuntimeError from its CPU allocator; both are out-of-memory, not bugs."""
    return type(e).__name__ == "OutOfMemoryError" or (
        isinstance(e, RuntimeError) and "DefaultCPUAllocator: can't allocate memory" in str(e))


def _error(message: str) -> None:
    """Print one ``error: ...`` line on stderr (plus the traceback in debug mode)."""
    console = err_console()
    if STATE["debug"]:
        console.print_exception(show_locals=False) if sys.exc_info()[0] else None
    line = " ".join(message.split())  # always one line
    hint = "" if STATE["debug"] else " [dim](--debug shows the traceback)[/dim]"
    unexpected = "internal error" in line
    from rich.markup import escape

    console.print(f"[bold red]error:[/bold red] {escape(line)}{hint if unexpected else ''}",
                  soft_wrap=True)


def _closed_pipe() -> int:
    """The reader went away (``| head -1``): stop quietly, as ``cat`` would."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except OSError:
        pass
    return 141  # 128 + SIGPIPE, what a shell reports for a command killed by a closed pipe
