"""Sentencepiece vocabularies and the text ↔ pieces ↔ words mappings.

Special ids are the same in every vocabulary: pad 0, unk 1, bos 2, eos 3. Source sequences end
with eos; targets are fed as ``bos y1 .. yn`` and predicted as ``y1 .. yn eos``.

Models work on sentencepiece *pieces*; people and scripts want *words* (the whitespace tokens of
the text they gave). Two mappings connect them:

* given text (a source, the target of forced alignment, a training pair): :func:`segment`
  encodes the text and maps each piece to the word it came from by the piece's character span in
  the original text, so sentencepiece's dummy prefix, its ``▁`` word-boundary marker, a lone
  ``▁`` piece and runs of spaces never shift an index;
* generated text (a translation): :func:`group_pieces` starts a new word at every piece that
  carries the ``▁`` marker.

Torch-free: sentencepiece loads when a vocabulary is first built.
"""

from __future__ import annotations

import json
import re
import tempfile
import unicodedata
from bisect import bisect_left, bisect_right
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from seqattn.errors import DataError
from seqattn.textio import atomic_write

PAD, UNK, BOS, EOS = 0, 1, 2, 3
MARK = "\u2581"  # sentencepiece's word-boundary marker ▁


class Vocab:
    """A sentencepiece model with our special ids (pad 0, unk 1, bos 2, eos 3)."""

    def __init__(self, path: str | Path):
        import sentencepiece as spm

        self.path = Path(path)
        try:
            self.sp = spm.SentencePieceProcessor(model_file=str(self.path))
        except (OSError, RuntimeError) as e:
            raise DataError(f"'{self.path}' is not a readable sentencepiece model ({e})") from None
        ids = (self.sp.pad_id(), self.sp.unk_id(), self.sp.bos_id(), self.sp.eos_id())
        if ids != (PAD, UNK, BOS, EOS):
            raise DataError(f"sentencepiece model '{self.path}' has special ids pad/unk/bos/eos = "
                            f"{ids}; seqattn needs (0, 1, 2, 3): train it with pad_id=0 unk_id=1 "
                            "bos_id=2 eos_id=3, or let seqattn train one")

    def __len__(self) -> int:
        return self.sp.get_piece_size()

    def encode(self, lines: Sequence[str]) -> list[list[int]]:
        return self.sp.encode(list(lines), out_type=int)

    def pieces(self, lines: Sequence[str]) -> list[list[str]]:
        return self.sp.encode(list(lines), out_type=str)

    def decode(self, ids: Sequence[int]) -> str:
        return self.sp.decode([i for i in ids if i > EOS])

    def id_to_piece(self, ids: Sequence[int]) -> list[str]:
        return [self.sp.id_to_piece(int(i)) for i in ids]


#: sentencepiece learns from at most this many sentences, drawn at random (its own sampling):
#: its memory is then bounded however large the corpus (all of Multi30k's 58,000 are used)
SPM_SENTENCES = 300_000


def _stream(path: Path) -> Iterator[str]:
    """A text file's lines, lazily (``*.gz`` decompressed); undecodable bytes replaced."""
    import gzip

    opener: Any = gzip.open if path.suffix == ".gz" else open
    try:
        with opener(path, "rb") as f:
            for raw in f:
                yield raw.decode("utf-8", errors="replace")
    except OSError as e:
        raise DataError(f"cannot read '{path}': {e.strerror or e}") from None


def train_spm(texts: Sequence[str | Path], prefix: Path, vocab_size: int, model_type: str,
              max_sentences: int = SPM_SENTENCES) -> Path:
    """Train a sentencepiece model on the given text files; returns ``prefix.model``.

    ``.model`` is appended to the prefix, as sentencepiece itself does: ``src.spm`` gives
    ``src.spm.model`` (replacing the suffix would give ``src.model``).

    The trainer runs in a child Python process: it holds its sample of up to ``max_sentences``
    sentences and their pieces in memory (about 0.6 GB on 300,000), and in a child all of that
    goes back to the system when it ends, instead of staying in the heap of the process that
    goes on to train a model.
    """
    prefix.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        joined = Path(tmp) / "text.txt"
        with joined.open("w", encoding="utf-8") as out:
            for path in texts:  # line by line: memory stays flat however large the corpus
                for line in _stream(Path(path)):  # (seqattn.store checked the training files)
                    if line.strip():
                        out.write(line.strip() + "\n")
        options = dict(
            input=str(joined), model_prefix=str(Path(tmp) / "spm"), vocab_size=vocab_size,
            model_type=model_type, character_coverage=1.0, pad_id=PAD, unk_id=UNK,
            bos_id=BOS, eos_id=EOS, hard_vocab_limit=False, input_sentence_size=max_sentences,
            shuffle_input_sentence=True, minloglevel=2, num_threads=2,
        )
        problem, own = _train_in_child(options)
        if problem is not None:
            names = ", ".join(map(str, texts))
            hint = "; try a smaller data.vocab_size" if own else ""
            raise DataError(f"could not train a sentencepiece model on {names}: {problem}{hint}")
        trained = (Path(tmp) / "spm.model").read_bytes()  # atomically: a killed run never
        target = prefix.parent / f"{prefix.name}.model"   # leaves half a model
        atomic_write(target, lambda f: f.write(trained), binary=True)
    return target


#: what the child runs: sentencepiece's trainer alone (no seqattn, no torch), its error as the
#: last line of stderr and exit status 3
_TRAINER = """
import json, sys
import sentencepiece as spm
try:
    spm.SentencePieceTrainer.train(**json.loads(sys.argv[1]))
except RuntimeError as e:
    print(" ".join(str(e).split()), file=sys.stderr)
    sys.exit(3)
"""


def _train_in_child(options: dict[str, Any]) -> tuple[str | None, bool]:
    """Run sentencepiece's trainer with ``options`` in a child process (``-I``: no file in the
    working directory can shadow a module). Returns (None, _) when it trained, else what went
    wrong in one line and whether it was the trainer's own error (the data or the options)
    rather than the process dying. Ctrl-C stops the child too (``subprocess.run`` kills it
    before the interrupt goes on)."""
    import subprocess
    import sys

    done = subprocess.run([sys.executable, "-I", "-c", _TRAINER, json.dumps(options)],
                          stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                          stderr=subprocess.PIPE, text=True, errors="replace", check=False)
    if done.returncode == 0:
        return None, False
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    if done.returncode == 3 and lines:
        return lines[-1], True
    if done.returncode < 0:
        return f"the trainer was stopped by signal {-done.returncode} (out of memory?)", False
    return (lines[-1] if lines else f"the trainer exited with status {done.returncode}"), False


# --------------------------------------------------------------------------- words and pieces


@dataclass(frozen=True)
class Segmented:
    """A text cut into whitespace words and sentencepiece pieces, and the piece → word map."""

    words: list[str]
    pieces: list[str]
    ids: list[int]
    word_of_piece: list[int]


_LONE_SURROGATE = re.compile("[\ud800-\udfff]")


def words_of(text: str) -> list[str]:
    """The whitespace words of ``text`` as :func:`segment` cuts them (lone surrogates as
    U+FFFD)."""
    return re.findall(r"\S+", _LONE_SURROGATE.sub("\ufffd", text))


def segment(sp: object, text: str) -> Segmented:
    """Encode ``text`` with a SentencePieceProcessor and map every piece to its word.

    A lone surrogate (``"\\ud800"``: a Python string, never decoded UTF-8) is not text
    sentencepiece can take; each becomes U+FFFD, one character for one, so offsets still hold."""
    text = _LONE_SURROGATE.sub("\ufffd", text)
    spans = [m.span() for m in re.finditer(r"\S+", text)]
    words = [text[a:b] for a, b in spans]
    enc = sp.encode_as_offset_mapping(text)  # type: ignore[attr-defined]  # any processor
    starts = [a for a, _ in spans]
    word_of_piece = [_word_at(text, spans, starts, begin, end) for begin, end in enc["offsets"]]
    return Segmented(words, list(enc["pieces"]), list(enc["ids"]), word_of_piece)


def _kept(ch: str) -> bool:
    """Whether sentencepiece keeps ``ch`` as text: not a space, a control or a format character
    (zero-width space, joiners, direction marks), which its normalisation removes."""
    return not ch.isspace() and unicodedata.category(ch) not in ("Cc", "Cf")


def _word_at(text: str, spans: list[tuple[int, int]], starts: list[int], begin: int,
             end: int) -> int:
    """The word holding the last non-space character of [begin, end), else the next word
    (``spans`` the words' (start, end) in order, ``starts`` their starts: found by bisection).

    The last, not the first: sentencepiece drops some characters (zero-width spaces, controls)
    and counts them into the *next* piece's span, which may then start in an earlier word made
    only of dropped characters; its own characters end the span. Dropped characters never
    decide: a lone ▁ whose span holds only spaces and dropped characters goes to the next word."""
    last = max(len(spans) - 1, 0)
    pos = next((i for i in range(end - 1, begin - 1, -1) if _kept(text[i])), None)
    if pos is None:  # a lone ▁ (or empty) piece: it belongs to the word that follows
        w = bisect_left(starts, end)
        return w if w < len(spans) else last
    w = bisect_right(starts, pos) - 1
    return w if w >= 0 and pos < spans[w][1] else last


def group_pieces(pieces: Sequence[str]) -> tuple[list[str], list[int]]:
    """Words of generated pieces: a piece starting with ``▁`` starts a new word."""
    words: list[str] = []
    word_of_piece: list[int] = []
    for k, piece in enumerate(pieces):
        if k == 0 or piece.startswith(MARK):
            words.append("")
        words[-1] += piece.replace(MARK, "")
        word_of_piece.append(len(words) - 1)
    return words, word_of_piece


def truncate(seg: Segmented, n: int) -> Segmented:
    """The first ``n`` pieces of ``seg``; its words are all kept (the last ones may have no
    pieces left)."""
    return seg if len(seg.ids) <= n else \
        Segmented(seg.words, seg.pieces[:n], seg.ids[:n], seg.word_of_piece[:n])
