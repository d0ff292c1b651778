"""Writing data to stdout: one place, flushed on demand, safe when the reader goes away; and
checking output file paths before any work is done."""

from __future__ import annotations

import sys
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
