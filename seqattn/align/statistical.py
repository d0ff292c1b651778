"""Word links from a statistical aligner, for guided-alignment training (``training.
guided_alignment: eflomal``): eflomal (Östling & Tiedemann 2016, a Bayesian IBM-model sampler)
run both ways on Moses-tokenized text, symmetrized (grow-diag-final-and by default, Koehn et al.
2003), and mapped back to the whitespace words of the text as given, which is what the guided
loss and ``seqattn align`` count.

eflomal and sacremoses are an optional extra: ``pip install 'seqattn[align]'``. eflomal samples,
so two runs differ slightly (it takes no seed).
"""

from __future__ import annotations

import logging
import re
import tempfile
from collections.abc import Sequence
from pathlib import Path

from seqattn.align.symmetrize import HEURISTICS, symmetrize
from seqattn.errors import UsageError

log = logging.getLogger(__name__)
EXTRA = "pip install 'seqattn[align]'"


def token_words(raw: str, tokens: Sequence[str]) -> list[int] | None:
    """For each token, the index of the raw whitespace word holding its first character; None
    when the tokens cannot be found in order in the raw text (the tokenizer changed it)."""
    spans = [m.span() for m in re.finditer(r"\S+", raw)]
    out, pos = [], 0
    for tok in tokens:
        at = raw.find(tok, pos)
        if at < 0 or raw[pos:at].strip():
            return None
        out.append(next(w for w, (a, b) in enumerate(spans) if a <= at < b))
        pos = at + len(tok)
    return out


def require_extra():  # noqa: ANN201
    """eflomal and the Moses tokenizer, or a one-line UsageError naming the install command."""
    try:
        import eflomal
        from sacremoses import MosesTokenizer
    except ImportError:
        raise UsageError(f"training.guided_alignment: eflomal needs eflomal and sacremoses, "
                         f"which are not installed: {EXTRA}") from None
    return eflomal, MosesTokenizer


def eflomal_links(src: Sequence[str], tgt: Sequence[str], src_lang: str = "en",
                  tgt_lang: str = "en", heuristic: str = "grow-diag-final-and") -> list[str]:
    """Pharaoh lines (``i-j``, 0-based whitespace words of ``src`` and ``tgt``), one per pair;
    an empty line for a pair whose tokens cannot be mapped back to its words."""
    if heuristic not in HEURISTICS:
        raise UsageError(f"unknown symmetrization '{heuristic}'; choose one of: "
                         f"{', '.join(HEURISTICS)}")
    toks_src, toks_tgt = moses_tokenize(src, src_lang), moses_tokenize(tgt, tgt_lang)
    token_links = eflomal_token_links(toks_src, toks_tgt, heuristic)
    lines, lost = [], 0
    for k, found in enumerate(token_links):
        links = as_words(src[k], toks_src[k], tgt[k], toks_tgt[k], found)
        lost += int(links is None and bool(toks_src[k] and toks_tgt[k]))
        lines.append(" ".join(f"{a}-{b}" for a, b in sorted(links or ())))
    if lost:
        log.warning("eflomal: %d of %d pairs could not be mapped back to their words and have "
                    "no links", lost, len(lines))
    return lines


def as_words(src: str, toks_src: Sequence[str], tgt: str, toks_tgt: Sequence[str],
             links: set[tuple[int, int]]) -> set[tuple[int, int]] | None:
    """Token links as links between the whitespace words holding the tokens; None when the
    tokens cannot be mapped back to the words (or a side has none)."""
    sw, tw = token_words(src, toks_src), token_words(tgt, toks_tgt)
    if sw is None or tw is None or not toks_src or not toks_tgt:
        return None
    return {(sw[i], tw[j]) for i, j in links}


def moses_tokenize(lines: Sequence[str], lang: str = "en") -> list[list[str]]:
    """The Moses tokenizer's tokens of each line (no XML escaping), as eflomal reads them."""
    _, moses = require_extra()
    tok = moses(lang)
    return [tok.tokenize(line, escape=False) for line in lines]


def eflomal_token_links(toks_src: Sequence[Sequence[str]], toks_tgt: Sequence[Sequence[str]],
                        heuristic: str = "grow-diag-final-and") -> list[set[tuple[int, int]]]:
    """eflomal run both ways on tokenized pairs, symmetrized with ``heuristic``: links between
    token indices, one set per pair."""
    eflomal, _ = require_extra()
    with tempfile.TemporaryDirectory() as tmp:
        fwd_path, rev_path = Path(tmp) / "fwd", Path(tmp) / "rev"
        # eflomal cannot take an empty sentence: a lone placeholder token, never mapped back
        eflomal.Aligner().align([" ".join(t) + "\n" if t else "∅\n" for t in toks_src],
                                [" ".join(t) + "\n" if t else "∅\n" for t in toks_tgt],
                                links_filename_fwd=str(fwd_path),
                                links_filename_rev=str(rev_path), quiet=True)
        fwd = _read(fwd_path)
        rev = _read(rev_path)
    return [symmetrize(f, r, heuristic) if s and t else set()
            for f, r, s, t in zip(fwd, rev, toks_src, toks_tgt)]


def _read(path: Path) -> list[set[tuple[int, int]]]:
    return [{(int(a), int(b)) for a, b in (x.split("-") for x in line.split())}
            for line in path.read_text(encoding="utf-8").splitlines()]
