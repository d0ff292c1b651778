"""Text files: reading strictly (every problem is a one-line :class:`DataError`) and writing
atomically (a temporary file beside the target, flushed, fsynced and renamed over it).

Torch-free, so file-only commands (``evaluate``) stay fast.
"""

from __future__ import annotations

import logging
import os
import re
import sys
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any

from seqattn.errors import DataError

log = logging.getLogger("seqattn.input")


def read_lines(path: str | Path, allow_empty: bool = False) -> list[str]:
    """Read a UTF-8 text file (``'-'``: stdin; ``*.gz``: gzip-compressed) into lines without
    their ``\\n`` or ``\\r\\n``.

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
        data = file.read_bytes()
    except OSError as e:
        raise DataError(f"cannot read '{path}': {e.strerror or e}") from None
    if file.suffix == ".gz":  # gzip-compressed text (the shipped recipes' link files)
        import gzip
        import zlib

        try:
            return gzip.decompress(data)
        except (OSError, EOFError, zlib.error):
            raise DataError(f"'{path}' is not a valid gzip file") from None
    return data


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


# --------------------------------------------------------------------------- line-aligned pairs


def file_lines(path: Path) -> Iterator[str]:
    """The lines of a file, lazily (see :func:`stream_lines`)."""
    with open_input(path) as f:
        yield from stream_lines(f, str(path))


def count_lines(path: Path) -> int:
    """Lines in a file (a last line without ``\\n`` counts), read in blocks."""
    n, last = 0, b"\n"
    with open_input(path) as f:
        try:
            for block in iter(lambda: f.read(1 << 20), b""):
                n += block.count(b"\n")
                last = block[-1:]
        except OSError as e:  # EIO and the like: bad input, named
            raise DataError(f"cannot read '{path}': {e.strerror or e}") from None
    return n + (last != b"\n")


def _mismatch(src: Path, n_src: int, tgt: Path, n_tgt: int) -> Exception:
    return DataError(f"'{src}' has {n_src} lines but '{tgt}' has {n_tgt}; the files must be "
                     "line-aligned (one sentence pair per line)")


def file_pairs(src: Path, tgt: Path) -> Iterator[tuple[str, str]]:
    """Pairs of two line-aligned files, lazily. Regular files are counted first, so a
    mismatch is reported before anything is written; pipes are checked as they run out."""
    if src.is_file() and tgt.is_file():
        n_src, n_tgt = count_lines(src), count_lines(tgt)
        if n_src != n_tgt:
            raise _mismatch(src, n_src, tgt, n_tgt)
    with open_input(src) as src_file, open_input(tgt) as tgt_file:
        a, b = stream_lines(src_file, str(src)), stream_lines(tgt_file, str(tgt))
        count = 0
        while True:
            s, t = next(a, None), next(b, None)
            if s is None and t is None:
                return
            if s is None or t is None:
                n_src = count + (0 if s is None else 1 + sum(1 for _ in a))
                n_tgt = count + (0 if t is None else 1 + sum(1 for _ in b))
                raise _mismatch(src, n_src, tgt, n_tgt)
            count += 1
            yield s, t


def stdin_pairs(stream: IO[bytes]) -> Iterator[tuple[str, str]]:
    """``source ||| target`` lines as pairs; an empty line is an empty pair, a line without
    exactly one ``|||`` a DataError naming it."""
    for number, line in enumerate(stream_lines(stream, "stdin"), start=1):
        if not line.strip():
            yield "", ""
            continue
        parts = line.split("|||")
        if len(parts) != 2:
            found = "no '|||'" if len(parts) == 1 else f"{len(parts) - 1} '|||'"
            raise DataError(f"stdin line {number}: expected 'source ||| target', found {found} "
                            f"in {line[:60]!r}")
        yield parts[0].strip(), parts[1].strip()


# --------------------------------------------------------------------------- writing


def umask_mode() -> int:
    """The mode a plain ``open()`` would give a new file (mkstemp uses 0600)."""
    mask = os.umask(0)
    os.umask(mask)
    return 0o666 & ~mask


@contextmanager
def atomic_open(path: Path, mode: str = "w") -> Any:
    """Open a temporary file beside ``path``; on success flush, fsync and rename it over ``path``.

    On any error the temporary file is removed and ``path`` keeps its previous content.
    A target that exists but is not a regular file (``/dev/stdout``, a FIFO, a link to a
    device) is written in place: renaming over it would replace the device or link.
    """
    encoding = None if "b" in mode else "utf-8"
    if path.exists() and not path.is_file():
        with open(path, mode, encoding=encoding) as f:
            yield f
        return
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    except OSError as e:  # name the file the user asked for, not our temporary one
        raise OSError(e.errno, e.strerror, str(path)) from None
    try:
        with os.fdopen(fd, mode, encoding=encoding) as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, umask_mode())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise


def atomic_write(path: Path, write: Callable[[IO[Any]], object], binary: bool = False) -> None:
    with atomic_open(path, "wb" if binary else "w") as f:
        write(f)


def language_of(path: str | Path | None) -> str:
    """A text file's language from its suffix when that is an ISO 639 code (``train.de`` ->
    ``de``), else ``en``: for the Moses tokenizer and the sentence splitter."""
    suffix = Path(path or "").suffix.lstrip(".").lower()
    return suffix if re.fullmatch(r"[a-z]{2,3}", suffix) else "en"
