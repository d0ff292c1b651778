"""Translation as a library: ``tr = seqattn.load("en-de"); tr.translate(["A dog runs."])``.

Input policies (the CLI states them too):

* an empty or whitespace-only line translates to an empty line (nothing is decoded), and so
  does a line the tokenizer reduces to nothing (only control or zero-width characters);
* a line longer than the model can take is cut to ``max_source_pieces`` pieces, with a warning
  naming the line; it still gets exactly one output line;
* invalid UTF-8 (CLI input) is replaced by U+FFFD, with a warning naming the line.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from seqattn.checkpoint import LoadedModel, load_model_dir
from seqattn.config import DecodeConfig
from seqattn.data import bucket_batches, pad_sources
from seqattn.decode import beam_search
from seqattn.device import pick_device
from seqattn.errors import CheckpointError, UsageError
from seqattn.vocab import EOS, Segmented, group_pieces, segment, truncate

log = logging.getLogger(__name__)
DEFAULT_MODEL = "en-de"
PRECISIONS = ("fp32", "bf16", "fp16")  # weights stay fp32; bf16/fp16 run matmuls in autocast


def models_dir() -> Path:
    """Where shipped models live: ``$SEQATTN_MODELS``, else ``models/`` beside the package."""
    env = os.environ.get("SEQATTN_MODELS")
    return Path(env) if env else Path(__file__).resolve().parent.parent / "models"


def resolve_model(name: str | Path | None) -> Path:
    """A model directory from a path or a shipped model's short name (None: the default)."""
    if name is not None and Path(name).exists():
        return Path(name)
    short = str(name) if name is not None else DEFAULT_MODEL
    candidate = models_dir() / short
    if candidate.is_dir():
        return candidate
    shipped = sorted(p.name for p in models_dir().glob("*") if (p / "seqattn.json").is_file()) \
        if models_dir().is_dir() else []
    if name is None:
        raise CheckpointError(
            f"no default model ('{DEFAULT_MODEL}') in {models_dir()}; train one "
            "(seqattn train --preset sample-tiny --out runs/sample) and pass -m runs/sample")
    listing = f"shipped models: {', '.join(shipped)}" if shipped else "no models are shipped"
    raise CheckpointError(f"model '{name}' is neither a directory nor a shipped model "
                          f"({listing})")


def is_shipped(path: str | Path) -> bool:
    """Whether ``path`` is a shipped model (or lies in the shipped models folder): those are
    read, never written (calibration writes a copy elsewhere)."""
    shipped = models_dir()
    try:
        return Path(path).resolve().is_relative_to(shipped.resolve())
    except OSError:
        return False


@dataclass(frozen=True)
class Batching:
    """How sentences are grouped for decoding (the search itself: :class:`DecodeConfig`)."""

    batch_tokens: int = 4096
    batch_size: int | None = None
    attention: bool = True   # keep each hypothesis's attention (for alignments)


@dataclass
class Hyp:
    """One translation of one sentence."""

    text: str
    pieces: list[str]
    words: list[str]
    word_of_piece: list[int]
    score: float                  # length-normalised log-probability (GNMT penalty)
    log_prob: float
    weights: Tensor | None        # (L, H, T, S): target pieces (+eos) × source pieces (+eos)


@dataclass
class Translation:
    """A source line and its n-best translations (empty for an empty line)."""

    id: int
    source: str
    src: Segmented | None
    hyps: list[Hyp] = field(default_factory=list)
    truncated: bool = False

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


class Translator:
    """A loaded model plus everything needed to go from text to text; a hypothesis keeps its
    beam attention (``Hyp.weights``), which :func:`seqattn.align.word_attention` reads."""

    def __init__(self, loaded: LoadedModel, device: str = "cpu", precision: str = "fp32"):
        self.loaded = loaded
        self.model, self.cfg = loaded.model, loaded.cfg
        self.src_vocab, self.tgt_vocab = loaded.src_vocab, loaded.tgt_vocab
        self.device = pick_device(device)
        check_precision(precision, self.device)
        self.precision = precision
        self.max_source_pieces: int = self.model.max_source_len

    def translate(self, lines: Sequence[str], **options: Any) -> list[Translation]:
        """Translate ``lines``; see :meth:`stream` for the options."""
        return list(self.stream(lines, **options))

    def stream(self, lines: Iterable[str], beam: int | None = None, n_best: int = 1,
               alpha: float | None = None, max_len_a: float | None = None,
               max_len_b: int | None = None, min_len: int | None = None,
               max_len: int | None = None, batch_tokens: int = 4096,
               batch_size: int | None = None, chunk: int = 256,
               attention: bool = True) -> Iterator[Translation]:
        """Translate an iterable of lines lazily, ``chunk`` lines at a time, in input order.

        Within a chunk, sentences are sorted by length and batched by ``batch_tokens`` source
        tokens, or by ``batch_size`` sentences when given. ``max_len`` fixes the output limit
        (otherwise ``max_len_a`` · source length + ``max_len_b``); ``min_len`` forbids
        end-of-sentence before that many pieces.
        """
        search = self.cfg.decoding.override(  # checked there, once
            beam_size=beam, n_best=n_best, length_penalty=alpha, max_len_a=max_len_a,
            max_len_b=max_len_b, min_len=min_len, max_len=max_len)
        opts = Batching(batch_tokens, batch_size, attention)
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
        out = [self._segment(i, line) for i, line in items]
        todo = [k for k, tr in enumerate(out) if tr.src is not None]
        lens = [len(out[k].segmented.ids) + 1 for k in todo]
        if opts.batch_size:
            order = sorted(range(len(todo)), key=lambda j: lens[j])
            size = opts.batch_size
            batches = [order[i: i + size] for i in range(0, len(order), size)]
        else:
            batches = bucket_batches(lens, lens, opts.batch_tokens, seed=None)
        for batch in batches:
            self._decode([out[todo[j]] for j in batch], search, opts.attention)
        return out

    def _segment(self, i: int, line: str) -> Translation:
        if not line.strip():
            return Translation(i, line, None)
        seg = segment(self.src_vocab.sp, line)
        if not seg.ids:  # e.g. only zero-width or control characters: nothing to translate
            return Translation(i, line, None)
        truncated = len(seg.ids) > self.max_source_pieces
        if truncated:
            log.warning("line %d has %d pieces, more than this model takes (%d); translating "
                        "its first %d pieces", i + 1, len(seg.ids), self.max_source_pieces,
                        self.max_source_pieces)
            seg = truncate(seg, self.max_source_pieces)
        return Translation(i, line, seg, truncated=truncated)

    def _decode(self, batch: list[Translation], search: DecodeConfig, attention: bool) -> None:
        src, src_pad = pad_sources([tr.segmented.ids for tr in batch])
        src_len = (~src_pad).sum(dim=1)                                            # (B,)
        if search.max_len is not None:
            max_len = torch.full_like(src_len, search.max_len)
        else:
            max_len = (search.max_len_a * src_len.float() + search.max_len_b).long().clamp(min=1)
        if self.model.max_target_len is not None:
            max_len = max_len.clamp(max=self.model.max_target_len)
        with self.autocast():
            results = beam_search(self.model, src.to(self.device), src_pad.to(self.device),
                                  search.beam_size, max_len.to(self.device),
                                  n_best=search.n_best, min_len=search.min_len,
                                  alpha=search.length_penalty, keep_weights=attention)
        for tr, hyps, n in zip(batch, results, src_len.tolist()):
            tr.hyps = [self._hyp(h, n) for h in hyps]

    def autocast(self) -> Any:
        """The mixed-precision context of ``precision`` (bf16: matrix products in bfloat16,
        about twice as fast on CPUs with AVX-512 BF16; attention weights and the beam's
        log-probabilities are computed in float32)."""
        if self.precision == "fp32":
            return torch.autocast(self.device.type, enabled=False)
        dtype = torch.bfloat16 if self.precision == "bf16" else torch.float16
        return torch.autocast(self.device.type, dtype=dtype)

    def _hyp(self, h: Any, src_len: int) -> Hyp:
        ids = h.tokens[:-1] if h.tokens and h.tokens[-1] == EOS else h.tokens
        pieces = self.tgt_vocab.id_to_piece(ids)
        words, word_of_piece = group_pieces(pieces)
        weights = None if h.weights is None else h.weights[..., :src_len].float().cpu()
        return Hyp(self.tgt_vocab.decode(ids), pieces, words, word_of_piece, h.score,
                   h.log_prob, weights)


def check_precision(precision: str, device: torch.device) -> None:
    if precision not in PRECISIONS:
        raise UsageError(f"precision must be one of: {', '.join(PRECISIONS)}; "
                         f"got '{precision}'")
    if precision == "fp16" and device.type != "cuda":
        raise UsageError(f"fp16 decoding needs a CUDA device (not {device.type}); use bf16")


def load(model: str | Path | None = None, device: str = "auto",
         precision: str = "fp32") -> Translator:
    """Load a model directory or a shipped model by short name (None: the default model).

    ``device``: ``auto`` (CUDA when present, else the CPU), ``cpu``, ``cuda``, ``cuda:N``
    (:func:`seqattn.device.pick_device`). ``precision`` bf16 (or fp16 on CUDA) decodes with
    autocast: faster, with scores that differ from fp32 in the third decimal and now and then
    a different translation."""
    dev = pick_device(device)  # before the (slow) load
    path = resolve_model(model)
    check_precision(precision, dev)
    return Translator(load_model_dir(path, device=str(dev)), device=str(dev),
                      precision=precision)
