"""Writing data to stdout: one place, flushed on demand, safe when the reader goes away; and
checking output file paths before any work is done."""

from __future__ import annotations

import os
import sys
from collections.abc import Iterable
from pathlib import Path


class PipeClosed(Exception):  # noqa: N818  (a signal, not an error to report)
    """stdout's reader has gone away (``| head -1``); the CLI stops quietly."""


def emit(text: str, flush: bool = False) -> None:
    """Write ``text`` plus a newline to stdout."""
    try:
        sys.stdout.write(text + "\n")
        if flush:
            sys.stdout.flush()
    except BrokenPipeError:
        raise PipeClosed from None


def check_output_path(path: Path | str | None, flag: str) -> None:
    """Refuse, before any work is done, an output file that cannot be created: a directory,
    or a path through a regular file (``notes.txt/out.html``). Missing directories are fine
    (they are created)."""
    from seqattn.errors import UsageError

    if path is None:
        return
    path = Path(path)
    if path.is_dir():
        raise UsageError(f"{flag} '{path}' is a directory; give a file name")
    parent = path.parent
    while not parent.exists() and parent != parent.parent:
        parent = parent.parent
    if parent.exists() and not parent.is_dir():
        raise UsageError(f"{flag} '{path}': '{parent}' is a file, not a directory")


def same_file(a: Path | str, b: Path | str) -> bool:
    """Whether two paths name one file: ``os.path.samefile`` when both exist (so a symlink, a
    hard link or ``./x`` is caught), else the same fully resolved path."""
    try:
        if os.path.exists(a) and os.path.exists(b):
            return os.path.samefile(a, b)
        return Path(a).resolve() == Path(b).resolve()
    except OSError:
        return False


def refuse_overwriting_inputs(outputs: Iterable[tuple[str, Path | str | None]],
                              inputs: Iterable[tuple[str, Path | str | None]]) -> None:
    """Refuse, before any work, an output file that is one of the inputs, or two outputs that are
    one file: ``--save-hyp REF`` would otherwise overwrite the reference and score 100 BLEU.

    ``outputs`` and ``inputs`` are (what the user gave it as, path) pairs; None and ``'-'``
    (stdin) are skipped."""
    from seqattn.errors import UsageError

    given_inputs = [(name, p) for name, p in inputs if p is not None and str(p) != "-"]
    seen: list[tuple[str, Path | str]] = []
    for flag, out in outputs:
        if out is None or str(out) == "-":
            continue
        for name, path in given_inputs:
            if same_file(out, path):
                raise UsageError(f"{flag} '{out}' is the input {name} '{path}'; writing it would "
                                 "destroy the input: give another file name")
        for other, path in seen:
            if same_file(out, path):
                raise UsageError(f"{flag} '{out}' and {other} '{path}' are the same file; give "
                                 "each output its own name")
        seen.append((flag, out))


def refuse_stdout_onto_inputs(inputs: Iterable[tuple[str, Path | str | None]]) -> None:
    """Refuse when stdout is redirected into (or appended onto) one of the input files
    (``seqattn translate -i a.txt >> a.txt`` would read its own output for ever)."""
    from seqattn.errors import UsageError

    try:
        out = os.fstat(sys.stdout.fileno())
    except (OSError, ValueError, AttributeError):  # no real stdout (a test's capture buffer)
        return
    import stat

    if not stat.S_ISREG(out.st_mode):
        return
    for name, path in inputs:
        if path is None:
            continue
        try:
            st = os.fstat(sys.stdin.fileno()) if str(path) == "-" else os.stat(path)
        except (OSError, ValueError, AttributeError):
            continue
        if (st.st_dev, st.st_ino) == (out.st_dev, out.st_ino):
            shown = "stdin" if str(path) == "-" else f"the input {name} '{path}'"
            raise UsageError(f"stdout is redirected into {shown}; write the output to "
                             "another file")
