"""Reading text files strictly: every problem is a one-line :class:`DataError`.

Torch-free, so file-only commands (``evaluate``) stay fast.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import IO

from seqattn.errors import DataError

log = logging.getLogger("seqattn.input")


def read_lines(path: str | Path, allow_empty: bool = False) -> list[str]:
    """Read a UTF-8 text file (``'-'``: stdin) into lines without their ``\\n`` or ``\\r\\n``.

    :raises DataError: the file is missing, a directory, unreadable, empty (unless
        ``allow_empty``), binary (has NUL bytes) or not valid UTF-8 (naming the line).
    """
    data = _read_bytes(path)
    if not data:
        if allow_empty:
            return []
        raise DataError(f"'{path}' is empty")
    if b"\0" in data:
        raise DataError(f"'{path}' is a binary file (it contains NUL bytes), not text")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as e:
        line = data.count(b"\n", 0, e.start) + 1
        raise DataError(f"'{path}' is not valid UTF-8 (line {line}, byte {e.start})") from None
    lines = text.split("\n")  # not splitlines(): only \n ends a line, as in sacrebleu
    if lines[-1] == "":
        lines.pop()
    return [line[:-1] if line.endswith("\r") else line for line in lines]


def _read_bytes(path: str | Path) -> bytes:
    if str(path) == "-":
        return sys.stdin.buffer.read()
    file = Path(path)
    if file.is_dir():
        raise DataError(f"'{path}' is a directory, not a file")
    if not file.exists():
        raise DataError(f"no such file: '{path}'")
    try:
        return file.read_bytes()
    except OSError as e:
        raise DataError(f"cannot read '{path}': {e.strerror or e}") from None


def open_input(path: str | Path) -> IO[bytes]:
    """A text file opened for streaming in binary (``'-'``: stdin), or a one-line DataError."""
    if str(path) == "-":
        return sys.stdin.buffer
    file = Path(path)
    if file.is_dir():
        raise DataError(f"'{path}' is a directory, not a text file")
    try:
        return file.open("rb")
    except FileNotFoundError:
        raise DataError(f"input file '{path}' does not exist") from None
    except PermissionError:
        raise DataError(f"input file '{path}' cannot be read (permission denied)") from None
    except OSError as e:  # a path through a regular file ('file/x'), a name too long, ...
        raise DataError(f"cannot open input file '{path}': {e.strerror or e}") from None


def stream_lines(stream: IO[bytes], name: str) -> Iterator[str]:
    """Lines without their ending, decoded lazily. Policy: invalid UTF-8 is replaced by
    U+FFFD with a warning naming the line, so no line is ever dropped. A read error
    (``EIO``, ...) is a one-line DataError naming the file and the line."""
    where = "stdin" if name == "-" else name
    lines, number = iter(stream), 0
    while True:
        try:
            raw = next(lines)
        except StopIteration:
            return
        except OSError as e:
            shown = where if name == "-" else f"'{where}'"
            raise DataError(f"cannot read {shown} at line {number + 1}: {e.strerror or e}") \
                from None
        number += 1
        raw = raw.rstrip(b"\n").rstrip(b"\r")
        try:
            yield raw.decode("utf-8")
        except UnicodeDecodeError:
            log.warning("%s line %d is not valid UTF-8; invalid bytes replaced by U+FFFD",
                        where, number)
            yield raw.decode("utf-8", errors="replace")
