"""Translation with a CTranslate2 export (``seqattn export --format ctranslate2``), no torch.

The line policies are :class:`seqattn.lines.LineTranslator`'s, so lines, sentences, capitals and
over-long sentences are handled exactly as by the native engine; only ``_decode`` differs.
CTranslate2's search differs from ours in two ways (Klein et al. 2020, "Efficient and
High-Quality Neural Machine Translation with OpenNMT"; the ``translate_batch`` documentation):

* it divides a hypothesis's log-probability by ``length ** α`` (``length_penalty``), where our
  beam uses the GNMT penalty ``((5 + length) / 6) ** α`` (Wu et al. 2016, eq. 14): the same α
  means a slightly different preference for length, so the two engines are compared like for
  like with ``decoding.length_norm: power`` in the native beam;
* its output limit is one number per call: a·|source| + b is applied per batch, with the
  batch's longest source.

Scores are CTranslate2's (normalised); ``log_prob`` undoes the normalisation.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import TYPE_CHECKING

from seqattn.checkpoint import CONFIG, CT2_DIR, load_vocabs
from seqattn.config import load_config
from seqattn.engines.ct2_convert import QUANTIZATIONS
from seqattn.errors import CheckpointError, UsageError
from seqattn.lines import Hyp, LineTranslator, Translation
from seqattn.sentences import restore_caps
from seqattn.textio import language_of
from seqattn.vocab import group_pieces

if TYPE_CHECKING:
    from seqattn.config import DecodeConfig



def has_ct2(model_dir: Path) -> bool:
    """Whether ``model_dir`` holds a CTranslate2 export."""
    return (model_dir / CT2_DIR / "model.bin").is_file()


class CT2Translator(LineTranslator):
    """A CTranslate2 export of one of our Transformers, translating lines as
    :class:`seqattn.translate.Translator` does (``stream``, ``translate``)."""

    def __init__(self, model_dir: str | Path, device: str = "cpu", device_index: int = 0,
                 precision: str | None = None, threads: int = 0):
        try:
            import ctranslate2
        except ImportError:
            raise UsageError("this model is a CTranslate2 export: pip install ctranslate2 (or "
                             "'seqattn[ctranslate2]'), or use --engine native") from None
        self.path = Path(model_dir)
        if not has_ct2(self.path):
            raise CheckpointError(f"'{self.path}' holds no CTranslate2 model "
                                  f"({CT2_DIR}/): export one with seqattn export --format "
                                  "ctranslate2")
        self.cfg = load_config(self.path / CONFIG)
        src_vocab, self.tgt_vocab = load_vocabs(self.path)
        self.src_sp = src_vocab.sp
        self.max_source_pieces = self.cfg.model.max_positions - 1
        self.max_target_len = self.cfg.model.max_positions - 1
        self.trained_pieces = self.cfg.data.max_len
        self.language = language_of(self.cfg.data.train_src)
        compute = "default" if precision is None else QUANTIZATIONS.get(precision)
        if compute is None:
            raise UsageError(f"precision for the CTranslate2 engine must be one of: "
                             f"{', '.join(QUANTIZATIONS)}; got '{precision}'")
        threads = threads or int(os.environ.get("OMP_NUM_THREADS", "0") or 0)
        ctranslate2.set_log_level(logging.ERROR)   # its warnings are not one line of ours
        self.engine = ctranslate2.Translator(str(self.path / CT2_DIR), device=device,
                                             device_index=device_index, compute_type=compute,
                                             intra_threads=threads)

    def length_norm(self, given: str | None) -> str:
        if given not in (None, "power"):
            raise UsageError("CTranslate2 normalises a hypothesis's score by length ** α only: "
                             "use --length-norm power, or --engine native",
                             params=("decoding.length_norm",))
        return "power"

    def _decode(self, batch: list[Translation], search: DecodeConfig, attention: bool) -> None:
        tokens = [tr.segmented.pieces for tr in batch]
        lengths = [len(t) + 1 for t in tokens]                   # + eos, as our sources
        if search.max_len is not None:
            limit = search.max_len
        else:  # a·|source| + b of the batch's longest source, never above the cap
            limit = max(1, int(search.max_len_a * max(lengths) + search.max_len_b))
            limit = min(limit, search.max_output_len)
        limit = min(limit, self.max_target_len)
        results = self.engine.translate_batch(
            tokens, beam_size=search.beam_size, num_hypotheses=search.n_best,
            length_penalty=search.length_penalty, max_decoding_length=limit,
            min_decoding_length=search.min_len, return_scores=True,
            max_batch_size=0)
        for tr, result in zip(batch, results):
            tr.hyps = [self._hyp(pieces, score, search.length_penalty, tr.caps)
                       for pieces, score in zip(result.hypotheses, result.scores)]

    def _hyp(self, pieces: list[str], score: float, alpha: float, caps: bool) -> Hyp:
        words, word_of_piece = group_pieces(pieces)
        ids = [self.tgt_vocab.sp.piece_to_id(p) for p in pieces]
        text = self.tgt_vocab.decode(ids)          # as the native engine: no <unk> marks
        if caps:
            text, words = restore_caps(text), [restore_caps(w) for w in words]
        log_prob = score * (len(pieces) + 1) ** alpha   # the length counts the eos
        return Hyp(text, list(pieces), words, word_of_piece, score, log_prob, None)


def ct2_device(device: str) -> tuple[str, int]:
    """Our ``--device`` (auto, cpu, cuda, cuda:N) as CTranslate2's (device, index)."""
    if device in ("auto", "cpu", "cuda"):
        return device, 0
    if device.startswith("cuda:") and device[5:].isdigit():
        return "cuda", int(device[5:])
    raise UsageError(f"--device must be auto, cpu, cuda or cuda:N; got '{device}'")


def native_or_ct2(path: Path, engine: str) -> str:
    """Which engine serves ``path`` for ``--engine engine`` (auto: CTranslate2 when the model
    directory holds an export)."""
    if engine not in ("auto", "native", "ctranslate2"):
        raise UsageError(f"--engine must be auto, native or ctranslate2; got '{engine}'")
    if engine == "auto":
        return "ctranslate2" if has_ct2(path) else "native"
    if engine == "ctranslate2" and not has_ct2(path):
        raise CheckpointError(f"'{path}' holds no CTranslate2 model: export one with seqattn "
                              "export --format ctranslate2, or use --engine native")
    return engine

