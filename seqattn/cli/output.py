"""Writing data to stdout: one place, flushed on demand, safe when the reader goes away."""

from __future__ import annotations

import sys


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
