"""Reading text files strictly: every problem is a one-line :class:`DataError`.

Torch-free, so file-only commands (``evaluate``) stay fast.
"""

from __future__ import annotations

import sys
from pathlib import Path

from seqattn.errors import DataError


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
