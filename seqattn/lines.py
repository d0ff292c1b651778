"""Lines in, translations out, whatever decodes them: the input policies every engine shares.

:class:`LineTranslator` reads lines, splits and segments them, batches the sentences and joins
the results back into one :class:`Translation` per line; an engine gives ``_decode``
(:class:`seqattn.translate.Translator`: our models in torch; :class:`seqattn.engines.ct2.
CT2Translator`: a CTranslate2 export, without torch). The policies (the CLI states them too):

* an empty or whitespace-only line translates to an empty line (nothing is decoded), and so
  does a line the tokenizer reduces to nothing (only control or zero-width characters);
* a line of several sentences is translated sentence by sentence (``split_sentences``, on by
  default) and the translations joined with a space: still one output line, whose source and
  target words, links and attention run over the whole line (block by block), whose score is
  the sum of the sentences' log-probabilities, and whose k-th hypothesis joins each sentence's
  k-th (its last, where a sentence has fewer);
* an ALL-CAPS sentence is translated in sentence case and its translation written in capitals
  (``fold_caps``, on by default; :mod:`seqattn.sentences`);
* a sentence longer than the model can take is cut to ``max_source_pieces`` pieces, and one
  longer than any the model was trained on gets a warning naming the line; either way the line
  still gets exactly one output line;
* invalid UTF-8 (CLI input) is replaced by U+FFFD, with a warning naming the line.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from seqattn.batching import bucket_batches
from seqattn.sentences import fold_caps, split_sentences
from seqattn.vocab import Segmented, segment, truncate, words_of

if TYPE_CHECKING:
    from torch import Tensor

    from seqattn.config import DecodeConfig

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Batching:
    """How sentences are grouped for decoding (the search itself: :class:`DecodeConfig`)."""

    batch_tokens: int = 4096
    batch_size: int | None = None
    attention: bool = True   # keep each hypothesis's attention (for alignments)
    split_sentences: bool = True   # translate a line sentence by sentence
    fold_caps: bool = True   # ALL-CAPS sentences in sentence case, the output in capitals


@dataclass
class Hyp:
    """One translation of one sentence."""

    text: str
    pieces: list[str]
    words: list[str]
    word_of_piece: list[int]
    score: float                  # length-normalised log-probability (GNMT penalty); for a
    log_prob: float               # line of several sentences, the sum of their log_probs
    weights: Tensor | None        # (L, H, T, S): target pieces (+eos) × source pieces (+eos)
    #: a line of several sentences: each sentence and its hypothesis (their attention is read
    #: sentence by sentence and joined block by block); None for one sentence
    parts: list[tuple[Translation, Hyp]] | None = None
    #: (source word, target word) pairs where a source number was copied into the text
    #: (:func:`seqattn.align.numbers.copy_numbers`); the pieces and scores stay the model's
    copied: list[tuple[int, int]] = field(default_factory=list)


@dataclass
class Translation:
    """A source line and its n-best translations (empty for an empty line)."""

    id: int
    source: str
    src: Segmented | None
    hyps: list[Hyp] = field(default_factory=list)
    truncated: bool = False
    caps: bool = False            # translated case-folded, the output given capitals
    sentences: int = 1            # how many sentences the line was translated as

    @property
    def text(self) -> str:
        return self.hyps[0].text if self.hyps else ""

    @property
    def segmented(self) -> Segmented:
        """The source's words and pieces (a line with something to translate)."""
        if self.src is None:
            raise ValueError(f"line {self.id + 1} is empty: it has no pieces")
        return self.src

    @property
    def score(self) -> float | None:
        return self.hyps[0].score if self.hyps else None


class LineTranslator:
    """The line policies over an engine's ``_decode`` (see the module docstring). A subclass
    sets ``cfg`` (the model's Config), ``src_sp`` (the source sentencepiece processor),
    ``max_source_pieces``, ``trained_pieces`` and ``language``."""

    cfg: Any
    path: Any             # the model directory
    src_sp: Any
    max_source_pieces: int
    trained_pieces: int
    language: str

    def translate(self, lines: Sequence[str], **options: Any) -> list[Translation]:
        """Translate ``lines``; see :meth:`stream` for the options."""
        return list(self.stream(lines, **options))

    def stream(self, lines: Iterable[str], beam: int | None = None, n_best: int = 1,
               alpha: float | None = None, max_len_a: float | None = None,
               max_len_b: int | None = None, min_len: int | None = None,
               max_len: int | None = None, max_output_len: int | None = None,
               length_norm: str | None = None,
               batch_tokens: int = 4096,
               batch_size: int | None = None, chunk: int = 256,
               attention: bool = True, split_sentences: bool = True,
               fold_caps: bool = True) -> Iterator[Translation]:
        """Translate an iterable of lines lazily, ``chunk`` lines at a time, in input order.

        Within a chunk, sentences are sorted by length and batched by ``batch_tokens`` source
        tokens, or by ``batch_size`` sentences when given. ``max_len`` fixes the output limit
        (otherwise ``max_len_a`` · source length + ``max_len_b``, never above
        ``max_output_len``: :meth:`DecodeConfig.output_limit`); ``min_len`` forbids
        end-of-sentence before that many pieces. ``split_sentences`` and ``fold_caps``: see
        the module docstring.
        """
        search = self.search(beam, n_best, alpha, max_len_a, max_len_b, min_len, max_len,
                             max_output_len, length_norm)
        opts = Batching(batch_tokens, batch_size, attention, split_sentences, fold_caps)
        if batch_size is not None:
            chunk = max(chunk, 4 * batch_size)
        buffer: list[tuple[int, str]] = []
        for i, line in enumerate(lines):
            buffer.append((i, line))
            if len(buffer) >= chunk:
                yield from self._chunk(buffer, search, opts)
                buffer = []
        if buffer:
            yield from self._chunk(buffer, search, opts)

    def _chunk(self, items: list[tuple[int, str]], search: DecodeConfig,
               opts: Batching) -> list[Translation]:
        lines = [self._sentences(i, line, opts) for i, line in items]
        todo = [tr for parts in lines for tr in parts if tr.src is not None]
        lens = [len(tr.segmented.ids) + 1 for tr in todo]
        if opts.batch_size:
            order = sorted(range(len(todo)), key=lambda j: lens[j])
            size = opts.batch_size
            batches = [order[i: i + size] for i in range(0, len(order), size)]
        else:
            batches = bucket_batches(lens, lens, opts.batch_tokens, seed=None)
        for batch in batches:
            self._decode([todo[j] for j in batch], search, opts.attention)
        return [parts[0] if len(parts) == 1 else join_sentences(i, line, parts)
                for (i, line), parts in zip(items, lines)]

    def _sentences(self, i: int, line: str, opts: Batching) -> list[Translation]:
        """The line as the Translation(s) to decode: one per sentence."""
        if not line.strip():
            return [Translation(i, line, None)]
        texts = split_sentences(line, self.language) if opts.split_sentences else []
        if len(texts) < 2:  # one sentence: the line as given
            texts = [line]
        return [self._segment(i, text, opts.fold_caps) for text in texts]

    def _segment(self, i: int, text: str, caps: bool) -> Translation:
        if not text.strip():
            return Translation(i, text, None)
        folded = fold_caps(text) if caps else None
        seg = segment(self.src_sp, folded.text if folded is not None else text)
        if not seg.ids:  # e.g. only zero-width or control characters: nothing to translate
            return Translation(i, text, None)
        if folded is not None and folded.caps:  # the words shown are the ones given
            seg = Segmented(words_of(text), seg.pieces, seg.ids, seg.word_of_piece)
        truncated = len(seg.ids) > self.max_source_pieces
        if truncated:
            log.warning("line %d has a sentence of %d pieces, more than this model takes "
                        "(%d); translating its first %d pieces", i + 1, len(seg.ids),
                        self.max_source_pieces, self.max_source_pieces)
            seg = truncate(seg, self.max_source_pieces)
        elif len(seg.ids) > self.trained_pieces:
            log.warning("line %d has a sentence of %d pieces, longer than any this model was "
                        "trained on (%d): expect a poor translation", i + 1, len(seg.ids),
                        self.trained_pieces)
        return Translation(i, text, seg, truncated=truncated,
                           caps=folded is not None and folded.caps)

    def search(self, beam: int | None = None, n_best: int = 1, alpha: float | None = None,
               max_len_a: float | None = None, max_len_b: int | None = None,
               min_len: int | None = None, max_len: int | None = None,
               max_output_len: int | None = None,
               length_norm: str | None = None) -> DecodeConfig:
        """The search :meth:`stream` runs with these options: the model's, with the given
        ones (None: the model's) checked and put in (:meth:`DecodeConfig.override`)."""
        return self.cfg.decoding.override(
            beam_size=beam, n_best=n_best, length_penalty=alpha, max_len_a=max_len_a,
            max_len_b=max_len_b, min_len=min_len, max_len=max_len,
            max_output_len=max_output_len, length_norm=self.length_norm(length_norm))

    def length_norm(self, given: str | None) -> str | None:
        """The length normalisation to search with (None: the model's ``decoding.length_norm``);
        an engine that has only one says so here."""
        return given

    def _decode(self, batch: list[Translation], search: DecodeConfig, attention: bool) -> None:
        """Fill ``tr.hyps`` of every sentence of ``batch`` (each has pieces to translate)."""
        raise NotImplementedError


def join_sentences(i: int, line: str, parts: list[Translation]) -> Translation:
    """One line's Translation from its sentences' (see the module docstring): words and pieces
    concatenated, texts joined with a space, log-probabilities summed."""
    done = [p for p in parts if p.src is not None and p.hyps]
    if not done:
        return Translation(i, line, None, truncated=any(p.truncated for p in parts))
    src_words: list[str] = []
    src_pieces: list[str] = []
    src_ids: list[int] = []
    src_word_of_piece: list[int] = []
    for p in done:
        s = p.segmented
        src_word_of_piece += [len(src_words) + w for w in s.word_of_piece]
        src_words += s.words
        src_pieces += s.pieces
        src_ids += s.ids
    src = Segmented(src_words, src_pieces, src_ids, src_word_of_piece)
    hyps = []
    for k in range(max(len(p.hyps) for p in done)):
        chosen = [(p, p.hyps[min(k, len(p.hyps) - 1)]) for p in done]
        words: list[str] = []
        pieces: list[str] = []
        word_of_piece: list[int] = []
        for _, h in chosen:
            word_of_piece += [len(words) + w for w in h.word_of_piece]
            words += h.words
            pieces += h.pieces
        log_prob = sum(h.log_prob for _, h in chosen)
        hyps.append(Hyp(" ".join(h.text for _, h in chosen if h.text), pieces, words,
                        word_of_piece, log_prob, log_prob, None, parts=chosen))
    return Translation(i, line, src, hyps, truncated=any(p.truncated for p in parts),
                       caps=any(p.caps for p in done), sentences=len(done))
