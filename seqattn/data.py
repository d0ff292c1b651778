"""Parallel text, sentencepiece vocabularies, and token-bucketed batches.

Special ids are the same in every vocabulary: pad 0, unk 1, bos 2, eos 3. Source sequences end
with eos; targets are fed as ``bos y1 .. yn`` and predicted as ``y1 .. yn eos``.
"""

from __future__ import annotations

import logging
import random
import tempfile
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import Tensor

from seqattn.checkpoint import atomic_write
from seqattn.errors import DataError
from seqattn.guided import gold_rows, piece_links
from seqattn.models import BOS_ID as BOS
from seqattn.models import EOS_ID as EOS
from seqattn.models import PAD_ID as PAD
from seqattn.models import UNK_ID as UNK
from seqattn.textio import read_lines

log = logging.getLogger(__name__)


# --------------------------------------------------------------------------- text files


def read_parallel(src_path: str | Path, tgt_path: str | Path) -> list[tuple[str, str]]:
    """Line-aligned (source, target) pairs; mismatched line counts are an error."""
    src, tgt = read_lines(src_path, allow_empty=True), read_lines(tgt_path, allow_empty=True)
    if len(src) != len(tgt):
        raise DataError(f"'{src_path}' has {len(src)} lines but '{tgt_path}' has {len(tgt)}; "
                        "parallel files must have one line per sentence pair")
    if not src:
        raise DataError(f"'{src_path}' and '{tgt_path}' are empty")
    return list(zip(src, tgt))


# --------------------------------------------------------------------------- vocabularies


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


def train_spm(texts: Sequence[str | Path], prefix: Path, vocab_size: int, model_type: str,
              max_sentences: int = 2_000_000) -> Path:
    """Train a sentencepiece model on the given text files; returns ``prefix.model``.

    ``.model`` is appended to the prefix, as sentencepiece itself does: ``src.spm`` gives
    ``src.spm.model`` (replacing the suffix would give ``src.model``).
    """
    import sentencepiece as spm

    prefix.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        joined = Path(tmp) / "text.txt"
        with joined.open("w", encoding="utf-8") as out:
            for path in texts:
                for line in read_lines(path):
                    if line.strip():
                        out.write(line.strip() + "\n")
        try:
            spm.SentencePieceTrainer.train(
                input=str(joined), model_prefix=str(Path(tmp) / "spm"), vocab_size=vocab_size,
                model_type=model_type, character_coverage=1.0, pad_id=PAD, unk_id=UNK,
                bos_id=BOS, eos_id=EOS, hard_vocab_limit=False, input_sentence_size=max_sentences,
                shuffle_input_sentence=True, minloglevel=2, num_threads=2,
            )
        except RuntimeError as e:
            names = ", ".join(map(str, texts))
            raise DataError(f"could not train a sentencepiece model on {names}: {e}; "
                            "try a smaller data.vocab_size") from None
        target = prefix.parent / f"{prefix.name}.model"
        trained = (Path(tmp) / "spm.model").read_bytes()  # atomically: a killed run never
        atomic_write(target, lambda f: f.write(trained), binary=True)  # leaves half a model
    return target


# --------------------------------------------------------------------------- encoded corpora


@dataclass
class Corpus:
    """Encoded sentence pairs (ids without bos/eos) and what was skipped while encoding."""

    src: list[list[int]]
    tgt: list[list[int]]
    skipped_empty: int = 0
    skipped_long: int = 0
    links: list[list[tuple[int, int]] | None] | None = None  # guided alignment, piece level
    unusable_links: int = 0  # pairs whose alignment line did not fit the text

    def __len__(self) -> int:
        return len(self.src)


def encode_corpus(pairs: Sequence[tuple[str, str]], src_vocab: Vocab, tgt_vocab: Vocab,
                  max_len: int | None,
                  word_links: Sequence[Sequence[tuple[int, int]]] | None = None) -> Corpus:
    """Encode pairs; skip (and count) empty pairs and pairs longer than ``max_len`` pieces.

    ``word_links`` (one list of (source word, target word) links per pair, for guided
    alignment) are mapped to piece links and kept for the kept pairs; a pair whose links do not
    fit its words gets None (no supervision) and is counted in ``unusable_links``.
    """
    keep = [k for k, (s, t) in enumerate(pairs) if s.strip() and t.strip()]
    src_ids = src_vocab.encode([pairs[k][0] for k in keep])
    tgt_ids = tgt_vocab.encode([pairs[k][1] for k in keep])
    corpus = Corpus([], [], skipped_empty=len(pairs) - len(keep))
    if word_links is not None:
        corpus.links = []
    for k, s, t in zip(keep, src_ids, tgt_ids):
        if max_len is not None and (len(s) + 1 > max_len or len(t) + 1 > max_len):
            corpus.skipped_long += 1
            continue
        corpus.src.append(s)
        corpus.tgt.append(t)
        if word_links is not None and corpus.links is not None:
            links = _piece_links(src_vocab, tgt_vocab, pairs[k], s, t, word_links[k])
            corpus.unusable_links += links is None
            corpus.links.append(links)
    return corpus


def _piece_links(src_vocab: Vocab, tgt_vocab: Vocab, pair: tuple[str, str], src: list[int],
                 tgt: list[int], word_links: Sequence[tuple[int, int]]
                 ) -> list[tuple[int, int]] | None:
    from seqattn.align import segment  # pieces mapped to words by character offsets

    s_seg, t_seg = segment(src_vocab.sp, pair[0]), segment(tgt_vocab.sp, pair[1])
    if s_seg.ids != src or t_seg.ids != tgt:  # offsets must describe the pieces we train on
        return None
    return piece_links(word_links, s_seg.word_of_piece, t_seg.word_of_piece)


# --------------------------------------------------------------------------- batches


@dataclass
class Batch:
    """A padded batch. Shapes: src (B, S), src_pad (B, S), tgt_in/tgt_out (B, T)."""

    src: Tensor
    src_pad: Tensor          # True = padding
    tgt_in: Tensor           # bos y1 .. yn (padded)
    tgt_out: Tensor          # y1 .. yn eos (padded)
    n_tokens: int            # real target tokens (the loss normaliser)
    gold: Tensor | None = None  # (B, T, S) guided-alignment rows (see seqattn.guided)

    def to(self, device: torch.device) -> Batch:
        return Batch(self.src.to(device, non_blocking=True),
                     self.src_pad.to(device, non_blocking=True),
                     self.tgt_in.to(device, non_blocking=True),
                     self.tgt_out.to(device, non_blocking=True), self.n_tokens,
                     None if self.gold is None else self.gold.to(device, non_blocking=True))


def pad_sources(seqs: Sequence[Sequence[int]]) -> tuple[Tensor, Tensor]:
    """Append eos and pad: returns src (B, S) long and src_pad (B, S) bool (True = padding)."""
    S = max(len(s) for s in seqs) + 1
    src = torch.full((len(seqs), S), PAD, dtype=torch.long)
    for i, s in enumerate(seqs):
        src[i, : len(s) + 1] = torch.tensor([*s, EOS], dtype=torch.long)
    return src, src == PAD


def make_batch(src: Sequence[Sequence[int]], tgt: Sequence[Sequence[int]]) -> Batch:
    src_t, src_pad = pad_sources(src)
    T = max(len(t) for t in tgt) + 1
    tgt_in = torch.full((len(tgt), T), PAD, dtype=torch.long)
    tgt_out = torch.full((len(tgt), T), PAD, dtype=torch.long)
    for i, t in enumerate(tgt):
        tgt_in[i, : len(t) + 1] = torch.tensor([BOS, *t], dtype=torch.long)
        tgt_out[i, : len(t) + 1] = torch.tensor([*t, EOS], dtype=torch.long)
    return Batch(src_t, src_pad, tgt_in, tgt_out, n_tokens=sum(len(t) + 1 for t in tgt))


def bucket_batches(src_lens: Sequence[int], tgt_lens: Sequence[int], batch_tokens: int,
                   seed: int | None) -> list[list[int]]:
    """Group sentence indices into batches of at most ``batch_tokens`` padded tokens.

    Sentences are sorted by length (with a little seeded noise so epochs differ), cut into
    batches whose padded size ``n * max(len)`` (source or target, whichever is larger) stays
    within the budget, and the batch order is shuffled. ``seed=None`` keeps the sorted order
    (for validation). A sentence longer than the budget still gets a batch of its own.
    """
    rng = random.Random(seed)
    sizes = [max(s, t) + 1 for s, t in zip(src_lens, tgt_lens)]
    noise = [rng.random() for _ in sizes] if seed is not None else [0.0] * len(sizes)
    order = sorted(range(len(sizes)), key=lambda i: (sizes[i] + noise[i] * 2, tgt_lens[i]))
    batches: list[list[int]] = []
    current: list[int] = []
    longest = 0
    for i in order:
        longest_if_added = max(longest, sizes[i])
        if current and longest_if_added * (len(current) + 1) > batch_tokens:
            batches.append(current)
            current, longest_if_added = [], sizes[i]
        current.append(i)
        longest = longest_if_added
    if current:
        batches.append(current)
    if seed is not None:
        rng.shuffle(batches)
    return batches


def iterate_batches(corpus: Corpus, indices: list[list[int]]) -> Iterator[Batch]:
    for idx in indices:
        batch = make_batch([corpus.src[i] for i in idx], [corpus.tgt[i] for i in idx])
        if corpus.links is not None:
            batch.gold = gold_rows([corpus.links[i] for i in idx], batch.tgt_out.size(1),
                                   batch.src.size(1))
        yield batch
