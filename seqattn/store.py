"""Training pairs encoded once and stored as token ids on disk, read through a memory map.

A corpus of millions of pairs kept as Python lists of ints costs gigabytes in every process;
as flat arrays of token ids with one length per pair it is about two bytes per piece, and
``numpy.memmap`` lets the page cache hold one copy for every process (every torchrun rank) on
a machine. numpy is the well-kept library for exactly this (fairseq's ``MMapIndexedDataset``
is the same idea); Arrow through ``datasets`` would add a large dependency for no gain here.

The store lives in the run directory (``corpus/``) and is keyed by the contents of the
training files, the sentencepiece model(s), the guided-alignment links and ``data.max_len``:
``--resume`` and a re-run reuse it, a changed file or vocabulary rebuilds it. It is written
into a temporary directory renamed into place when complete, so a half-written store is never
read.

Layout (``n`` kept pairs): ``src.ids`` / ``tgt.ids`` (the ids of every kept pair, one after the
other, uint16 when the vocabulary allows, else uint32), ``src.len`` / ``tgt.len`` (int32, n),
``src.idx`` / ``tgt.idx`` (int64, n + 1: where each pair's ids start, and the end), with guided
alignment ``links.ids`` (int16 piece pairs, target then source), ``links.len``, ``links.idx``
and ``links.ok`` (uint8, n: 0 where the pair's links did not fit its words), and ``meta.json``
(the key and the counts of skipped pairs). Everything but ``meta.json`` is read through a
memory map, so a process's own (anonymous) memory does not grow with the corpus.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import logging
import os
import shutil
from collections.abc import Callable, Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from seqattn.data import Corpus, _piece_links
from seqattn.errors import DataError
from seqattn.vocab import Vocab

log = logging.getLogger(__name__)
FORMAT = 2  # 2: offsets on disk (*.idx)
CHUNK = 20_000  # pairs encoded at a time


class _Indexed(Sequence[Any]):
    """A read-only sequence: ``[i]`` (negative from the end) and slices through ``_item``."""

    def __getitem__(self, i: Any) -> Any:
        if isinstance(i, slice):
            return [self[k] for k in range(*i.indices(len(self)))]
        return self._item(_index(i, len(self)))

    def _item(self, k: int) -> Any:
        raise NotImplementedError


class Ragged(_Indexed):
    """``n`` sequences of ints stored end to end; item ``i`` is a list (as a Corpus has).

    The offsets come from the store's disk, memory-mapped like the rest, so they sit in the
    page cache instead of each process's own memory.

    Shapes: flat (sum of lengths,), lengths (n,), offsets (n + 1,) int64
    """

    def __init__(self, flat: np.ndarray, lengths: np.ndarray, offsets: np.ndarray):
        self.flat, self.lens, self.offsets = flat, lengths, offsets

    def __len__(self) -> int:
        return len(self.lens)

    def _item(self, k: int) -> list[int]:
        return self.flat[self.offsets[k]: self.offsets[k + 1]].tolist()

    def __iter__(self) -> Iterator[list[int]]:
        return (self[k] for k in range(len(self)))

    def lengths(self) -> np.ndarray:
        """Every sequence's length without reading the ids. Shapes: (n,) int32."""
        return self.lens


class Joined(_Indexed):
    """Several stored corpora's sequences as one: item ``i`` of the whole, the parts end to end."""

    def __init__(self, parts: Sequence[Ragged]):
        self.parts = list(parts)
        self.starts = np.cumsum([0] + [len(p) for p in self.parts])

    def __len__(self) -> int:
        return int(self.starts[-1])

    def _item(self, k: int) -> list[int]:
        part = int(np.searchsorted(self.starts, k, side="right")) - 1
        return self.parts[part][k - int(self.starts[part])]

    def __iter__(self) -> Iterator[list[int]]:
        return (x for p in self.parts for x in p)

    def lengths(self) -> np.ndarray:
        """Shapes: (n,) int32, the parts' lengths end to end."""
        return np.concatenate([p.lengths() for p in self.parts])


def joined(corpora: Sequence[Corpus]) -> Corpus:
    """Stored corpora as one (guided-alignment links are not joined: the parts have none)."""
    if len(corpora) == 1:
        return corpora[0]
    srcs: list[Any] = [c.src for c in corpora]  # stored: each a Ragged
    tgts: list[Any] = [c.tgt for c in corpora]
    return Corpus(Joined(srcs), Joined(tgts),  # type: ignore[arg-type]
                  skipped_empty=sum(c.skipped_empty for c in corpora),
                  skipped_long=sum(c.skipped_long for c in corpora),
                  skipped_ratio=sum(c.skipped_ratio for c in corpora))


def epoch_sample(sizes: Sequence[int], weights: Sequence[float], seed: int) -> np.ndarray:
    """The pairs of one epoch of corpora laid end to end, each drawn ``weight`` times its size:
    every pair ``floor(weight)`` times, and a seeded random ``weight - floor(weight)`` share of
    them once more.

    Shapes: -> (sum of round(weight * size),) int64 indices into the joined corpus
    """
    rng = np.random.default_rng(seed)
    picked, start = [], 0
    for n, w in zip(sizes, weights):
        whole, share = int(w), w - int(w)
        picked += [np.arange(start, start + n, dtype=np.int64)] * whole
        extra = int(round(share * n))
        if extra:
            picked.append(start + np.sort(rng.choice(n, size=extra, replace=False)))
        start += n
    return np.concatenate(picked) if picked else np.zeros(0, dtype=np.int64)


class StoredLinks(_Indexed):
    """Piece links per pair, as :attr:`Corpus.links` holds them (None: links that did not fit)."""

    def __init__(self, pairs: Ragged, ok: np.ndarray):
        self.pairs, self.ok = pairs, ok

    def __len__(self) -> int:
        return len(self.ok)

    def _item(self, k: int) -> Any:
        if not self.ok[k]:
            return None
        flat = self.pairs[k]
        return list(zip(flat[0::2], flat[1::2]))


def _index(i: int, n: int) -> int:
    """``i`` as a list takes it (negative from the end), or IndexError."""
    k = int(i) + n if i < 0 else int(i)
    if not 0 <= k < n:
        raise IndexError(f"index {i} out of range for {n} pairs")
    return k


def store_key(files: Sequence[Path], settings: str) -> str:
    """A digest of the files' contents and ``settings``: the store is valid while it holds."""
    digest = hashlib.sha256(f"seqattn-store {FORMAT} {settings}".encode())
    for path in files:
        digest.update(str(path.stat().st_size).encode())
        with open(path, "rb") as f:
            for block in iter(lambda: f.read(1 << 20), b""):
                digest.update(block)
    return digest.hexdigest()


def stored_corpus(folder: Path, src: Path, tgt: Path, src_vocab: Vocab, tgt_vocab: Vocab,
                  max_len: int, vocab_files: Sequence[Path],
                  word_links: Iterable[Sequence[tuple[int, int]]] | None = None,
                  links_file: Path | None = None, max_ratio: float | None = None,
                  progress: Callable[[int], None] | None = None) -> Corpus:
    """The training corpus from ``folder`` when its key matches, else encoded into it first
    (streaming through the files, ``CHUNK`` pairs at a time, sentencepiece on every core;
    ``progress`` hears the number of pairs read after each chunk)."""
    files = [src, tgt, *vocab_files, *([links_file] if links_file is not None else [])]
    key = store_key(files, f"max_len={max_len} max_ratio={max_ratio} "
                           f"links={word_links is not None}")
    meta_path = folder / "meta.json"
    if meta_path.is_file():
        try:
            if json.loads(meta_path.read_text(encoding="utf-8")).get("key") == key:
                log.info("training pairs: the encoded corpus in %s", folder)
                return open_corpus(folder)
        except (OSError, ValueError):
            pass  # unreadable: built again
    _build(folder, key, src, tgt, src_vocab, tgt_vocab, max_len, word_links, max_ratio,
           progress)
    return open_corpus(folder)


def open_corpus(folder: Path) -> Corpus:
    """A stored corpus, memory-mapped (nothing of it is read until a batch needs it)."""
    meta = json.loads((folder / "meta.json").read_text(encoding="utf-8"))
    dtype = np.dtype(meta["dtype"])

    def mapped(path: Path, kind: Any) -> np.ndarray:
        return np.memmap(path, dtype=kind, mode="r") if path.stat().st_size else \
            np.zeros(0, dtype=kind)

    def ragged(name: str, kind: Any) -> Ragged:
        return Ragged(mapped(folder / f"{name}.ids", kind),
                      mapped(folder / f"{name}.len", np.int32),
                      mapped(folder / f"{name}.idx", np.int64))

    links = None
    if meta["links"]:
        links = StoredLinks(ragged("links", np.int16),
                            np.fromfile(folder / "links.ok", dtype=np.uint8))
    corpus = Corpus(ragged("src", dtype), ragged("tgt", dtype),  # type: ignore[arg-type]
                    skipped_empty=meta["skipped_empty"], skipped_long=meta["skipped_long"],
                    links=links, unusable_links=meta["unusable_links"],  # type: ignore[arg-type]
                    skipped_ratio=meta.get("skipped_ratio", 0))
    return corpus


def _build(folder: Path, key: str, src: Path, tgt: Path, src_vocab: Vocab, tgt_vocab: Vocab,
           max_len: int, word_links: Iterable[Sequence[tuple[int, int]]] | None,
           max_ratio: float | None = None,
           progress: Callable[[int], None] | None = None) -> None:
    size = max(len(src_vocab), len(tgt_vocab))
    dtype = np.uint16 if size <= np.iinfo(np.uint16).max + 1 else np.uint32
    tmp = folder.with_name(f".{folder.name}.tmp-{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    counts = {"pairs": 0, "skipped_empty": 0, "skipped_long": 0, "skipped_ratio": 0,
              "unusable_links": 0}
    threads = os.cpu_count() or 1
    sides = ["src", "tgt"] + (["links"] if word_links is not None else [])
    names = [f"{side}.{kind}" for side in sides for kind in ("ids", "len", "idx")] + \
        (["links.ok"] if word_links is not None else [])
    try:
        out = {name: open(tmp / name, "wb") for name in names}
        ends = dict.fromkeys(sides, 0)  # ids written so far, per side
        for side in sides:
            np.zeros(1, dtype=np.int64).tofile(out[f"{side}.idx"])
        links = iter(word_links) if word_links is not None else None  # read in step
        try:
            for start, chunk in _chunks(src, tgt):
                chunk_links = [] if links is None else list(itertools.islice(links, len(chunk)))
                keep = [k for k, (s, t) in enumerate(chunk) if s.strip() and t.strip()]
                counts["skipped_empty"] += len(chunk) - len(keep)
                s_ids = src_vocab.sp.encode([chunk[k][0] for k in keep], out_type=int,
                                            num_threads=threads)
                t_ids = tgt_vocab.sp.encode([chunk[k][1] for k in keep], out_type=int,
                                            num_threads=threads)
                short = [(k, s, t) for k, s, t in zip(keep, s_ids, t_ids)
                         if len(s) + 1 <= max_len and len(t) + 1 <= max_len]
                counts["skipped_long"] += len(keep) - len(short)
                kept = [(k, s, t) for k, s, t in short
                        if max_ratio is None or max(len(s), len(t)) <= max_ratio * max(
                            1, min(len(s), len(t)))]
                counts["skipped_ratio"] += len(short) - len(kept)
                counts["pairs"] += len(kept)
                _write(out, ends, "src", [s for _, s, _ in kept], dtype)
                _write(out, ends, "tgt", [t for _, _, t in kept], dtype)
                if word_links is not None:
                    found = [_piece_links(src_vocab, tgt_vocab, chunk[k], s, t,
                                          chunk_links[k]) for k, s, t in kept]
                    counts["unusable_links"] += sum(f is None for f in found)
                    flat = [[x for pair in f or () for x in pair] for f in found]
                    _write(out, ends, "links", flat, np.int16)
                    np.array([f is not None for f in found], dtype=np.uint8).tofile(
                        out["links.ok"])
                if progress is not None:
                    progress(start + len(chunk))
        finally:
            for f in out.values():
                f.close()
        meta = {"format": FORMAT, "key": key, "dtype": np.dtype(dtype).name,
                "links": word_links is not None, **counts}
        (tmp / "meta.json").write_text(json.dumps(meta), encoding="utf-8")
        if folder.exists():
            shutil.rmtree(folder)
        os.rename(tmp, folder)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    log.info("training pairs encoded into %s (%d kept)", folder, counts["pairs"])


def _write(out: dict[str, Any], ends: dict[str, int], name: str, seqs: list[list[int]],
           dtype: Any) -> None:
    """Append ``seqs`` to the ``name`` side: ids, lengths, and each sequence's end offset
    (``ends[name]``: ids written so far)."""
    lens = np.array([len(s) for s in seqs], dtype=np.int32)
    lens.tofile(out[f"{name}.len"])
    offsets = ends[name] + np.cumsum(lens, dtype=np.int64)
    offsets.tofile(out[f"{name}.idx"])
    if len(offsets):
        ends[name] = int(offsets[-1])
    np.fromiter(itertools.chain.from_iterable(seqs), dtype=dtype).tofile(out[f"{name}.ids"])


def _chunks(src: Path, tgt: Path) -> Iterator[tuple[int, list[tuple[str, str]]]]:
    """(index of the first pair, pairs) ``CHUNK`` at a time; unequal line counts are an error."""
    start = 0
    s_lines, t_lines = _lines(src), _lines(tgt)
    while True:
        s_chunk = list(itertools.islice(s_lines, CHUNK))
        t_chunk = list(itertools.islice(t_lines, CHUNK))
        if len(s_chunk) != len(t_chunk):
            raise DataError(f"'{src}' and '{tgt}' have different numbers of lines; parallel "
                            "files must have one line per sentence pair")
        if not s_chunk:
            return
        yield start, list(zip(s_chunk, t_chunk))
        start += len(s_chunk)


def _lines(path: Path) -> Iterator[str]:
    """A training file's lines, lazily (``*.gz`` decompressed), without their endings; as
    :func:`seqattn.textio.read_lines`, invalid UTF-8 or a NUL byte is a one-line DataError."""
    import gzip

    opener: Any = gzip.open if path.suffix == ".gz" else open
    number = 0
    try:
        with opener(path, "rb") as f:
            for number, raw in enumerate(f, start=1):
                if b"\0" in raw:
                    raise DataError(f"'{path}' is a binary file (it contains NUL bytes), not "
                                    "text")
                try:
                    yield raw.decode("utf-8").rstrip("\r\n")
                except UnicodeDecodeError:
                    raise DataError(f"'{path}' is not valid UTF-8 (line {number})") from None
    except OSError as e:  # EIO and the like: bad input, named
        raise DataError(f"cannot read '{path}' at line {number + 1}: {e.strerror or e}") \
            from None


def checked_lines(path: Path) -> int:
    """The number of lines of a training file, read through once as :func:`_lines` reads it:
    a binary, unreadable or not-UTF-8 file is a one-line DataError before any work."""
    return sum(1 for _ in _lines(path))
