"""JSON records of translations and alignments, built in one place.

``seqattn translate --format jsonl``, ``seqattn align --format jsonl`` and ``seqattn serve``
all write these, so a served result equals the command line's for the same input and options.
"""

from __future__ import annotations

import dataclasses
import hashlib
import sys
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

from seqattn import __version__
from seqattn.lines import Hyp, LineTranslator, Translation

if TYPE_CHECKING:
    from seqattn.translate import Translator


def hyp_attention(translator: Translator, tr: Translation, hyp: Hyp, view: Any,
                  seen: dict[int, Any]) -> Any:
    """(words, eos) of ``hyp`` under ``view``, computed once per hypothesis (a forced pass for
    the full-context aligner) however many outputs read it; ``seen`` is the per-line cache."""
    if id(hyp) not in seen:
        from seqattn.align.force import word_attention

        seen[id(hyp)] = word_attention(translator, tr, hyp, view)
    return seen[id(hyp)]


def evidence_card(translator: Translator, tr: Translation, view: Any,
                  seen: dict[int, Any]) -> Any:
    """The evidence card of the best hypothesis (:mod:`seqattn.align.checks`)."""
    from seqattn.align.checks import evidence

    words, eos = hyp_attention(translator, tr, tr.hyps[0], view, seen)
    return evidence(words, eos, tr.hyps[0].words)


def finish_line(translator: Translator, tr: Translation, view: Any, copy_numbers: bool,
                check: bool, seen: dict[int, Any]) -> Any:
    """What ``translate`` does to a translated line before writing it: each source number
    copied into the output word that attends to it (:mod:`seqattn.align.numbers`; a forced
    pass, only for lines with a number), then, with ``check``, the best hypothesis's evidence
    card, which it returns (else None)."""
    if copy_numbers:
        from seqattn.align.numbers import copy_numbers as copy

        copy(translator, tr)
    return evidence_card(translator, tr, view, seen) if check and tr.hyps else None


def translation_record(translator: Translator, tr: Translation, view: Any, *,
                       links: bool = True, attention: bool = False, card: Any = None,
                       seen: dict[int, Any] | None = None) -> dict[str, Any]:
    """One line's record: source, translation, score; with ``links`` (what ``translate
    --format jsonl`` writes) the words, pieces, Pharaoh alignment and links of each hypothesis
    under ``view``; with ``attention`` the soft word matrix too; ``card`` adds ``checks``.
    An n-best list (more than one hypothesis) goes under ``nbest``."""
    seen = {} if seen is None else seen
    obj: dict[str, Any] = {"id": tr.id, "source": tr.source, "translation": tr.text,
                           "score": tr.score}
    if links:
        obj["source_words"] = tr.src.words if tr.src else []
        obj["source_pieces"] = tr.src.pieces if tr.src else []
    if tr.truncated:
        obj["truncated"] = True
    nbest = [_hyp_entry(translator, tr, h, view, links, attention, seen) for h in tr.hyps]
    if nbest:
        obj.update({k: v for k, v in nbest[0].items() if k not in ("translation", "score")})
    elif links:
        obj.update({"log_prob": None, "target_words": [], "target_pieces": [], "alignment": "",
                    "links": []})
    else:
        obj["log_prob"] = None
    if len(nbest) > 1:
        obj["nbest"] = nbest
    if card is not None:
        obj["checks"] = card.as_dict(tr.segmented.words, tr.hyps[0].words)
    return obj


def _hyp_entry(translator: Translator, tr: Translation, h: Hyp, view: Any, links: bool,
               attention: bool, seen: dict[int, Any]) -> dict[str, Any]:
    entry: dict[str, Any] = {"translation": h.text, "score": h.score, "log_prob": h.log_prob}
    if links:
        from seqattn.align.links import extract_links, pharaoh
        from seqattn.align.settings import resolve_extraction

        ex = resolve_extraction(translator)  # the model's calibrated way, else argmax
        words, eos = hyp_attention(translator, tr, h, view, seen)
        found = extract_links(words, ex.method, ex.threshold)
        entry.update({"target_words": h.words, "target_pieces": h.pieces,
                      "alignment": pharaoh(found),
                      "links": [list(link) for link in sorted(found)]})
    if h.copied:
        entry["copied"] = [list(pair) for pair in h.copied]
    if links and attention:
        entry["attention"] = words.tolist()
        entry["eos_attention"] = eos.tolist()
    return entry


def alignment_record(rec: Any, sym: str | None = None) -> dict[str, Any]:
    """One force-aligned pair (:class:`seqattn.align.force.PairAlignment`) as ``seqattn align
    --format jsonl`` writes it; ``sym`` names the symmetrization when a reverse model was
    used."""
    from seqattn.align.links import pharaoh

    links = sorted(rec.links)
    obj: dict[str, Any] = {
        "id": rec.id, "source": rec.source, "target": rec.target,
        "source_words": rec.src.words if rec.src else [],
        "target_words": rec.tgt.words if rec.tgt else [],
        "source_pieces": rec.src.pieces if rec.src else [],
        "target_pieces": rec.tgt.pieces if rec.tgt else [],
        "alignment": pharaoh(links), "links": [list(link) for link in links],
        "link_probs": rec.link_probs(),
        "attention": rec.words.tolist() if rec.words is not None else [],
        "eos": rec.eos.tolist() if rec.eos is not None else [],
        "view": rec.view.as_dict() if rec.view is not None else None,
    }
    if rec.reverse_words is not None:  # (n_src, n_tgt): rows are source words
        obj["reverse_attention"] = rec.reverse_words.tolist()
        obj["reverse_link_probs"] = [float(rec.reverse_words[s, t]) for s, t in links]
        obj["sym"] = sym
    if rec.truncated:
        obj["truncated"] = True
    if rec.checks is not None:
        obj["checks"] = rec.checks.as_dict(rec.src.words, rec.tgt.words)
    return obj


def run_record(decoder: LineTranslator, search: Any = None) -> dict[str, Any]:
    """What reproduces a record: seqattn's version and the engine's (torch or CTranslate2),
    the model (its directory's name and a hash of the weights that decoded), the device, the
    precision, and the search (``search``: a DecodeConfig; None for forced alignment). Every
    jsonl record of ``translate`` and ``align`` carries it as ``repro``."""
    engine = getattr(decoder, "engine", None)
    record: dict[str, Any] = {"seqattn": __version__}
    if engine is not None:  # CTranslate2
        import ctranslate2

        weights = Path(decoder.path) / "ctranslate2" / "model.bin"
        record.update(engine="ctranslate2", ctranslate2=ctranslate2.__version__,
                      device=engine.device, precision=engine.compute_type)
    else:
        from seqattn.checkpoint import WEIGHTS

        weights = Path(decoder.path) / WEIGHTS
        torch = sys.modules["torch"]
        record.update(engine="native", torch=torch.__version__,
                      device=str(getattr(decoder, "device", "cpu")),
                      precision=getattr(decoder, "precision", "fp32"))
    record.update(model=Path(decoder.path).resolve().name, model_sha256=_sha256(weights))
    if search is not None:
        record["decoding"] = dataclasses.asdict(search)
        if getattr(decoder, "shortlist", None) is not None:  # the search's vocabulary
            from seqattn.checkpoint import SHORTLIST

            record["decoding"]["shortlist_sha256"] = _sha256(Path(decoder.path) / SHORTLIST)
    return record


@lru_cache(maxsize=8)
def _sha256(path: Path) -> str:
    """The first 16 hex digits of the file's SHA-256 (once per file and process)."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()[:16]
