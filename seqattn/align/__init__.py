"""Word alignment from attention: views, words, links, forced alignment and their measures.

The package, one topic a module, from the bottom up:

* :mod:`~seqattn.align.words`: piece attention merged into word attention;
* :mod:`~seqattn.align.views`: which layer, heads, shift and blend to read (:class:`View`);
* :mod:`~seqattn.align.symmetrize`, :mod:`~seqattn.align.links`: links from word attention,
  one direction or both (:class:`Extraction`, Pharaoh output);
* :mod:`~seqattn.align.settings`: a model's stored (calibrated) settings, typed, and how they
  fill in what a user leaves open;
* :mod:`~seqattn.align.force`: forced alignment of given pairs (:func:`force_align`,
  :func:`align`), and the same reading of a translation's attention (:func:`word_attention`);
* :mod:`~seqattn.align.selfattn`: Transformer self-attention read the same way;
* :mod:`~seqattn.align.checks`, :mod:`~seqattn.align.aer`, :mod:`~seqattn.align.calibrate`,
  :mod:`~seqattn.align.viz`: evidence checks, alignment error rate, the gold-set sweep, pictures.

Names are loaded on first use, so ``seqattn.align.aer`` (for ``evaluate --align``) stays free of
torch.
"""

from __future__ import annotations

import importlib
from typing import Any

_PUBLIC = {
    "word_weights": "words", "entropy": "words", "MERGES": "words",
    "Blend": "views", "View": "views", "head_rows": "views", "view_rows": "views",
    "check_layer_heads": "views", "default_layer": "views",
    "Extraction": "links", "METHODS": "links", "extract_links": "links", "both_norms": "links",
    "argmax_links": "links", "threshold_links": "links", "pharaoh": "links",
    "both_ways": "links",
    "AlignmentSettings": "settings", "StoredSym": "settings", "STORED": "settings",
    "resolve_view": "settings", "resolve_extraction": "settings",
    "resolve_sym_extraction": "settings", "model_shape": "settings", "default_view": "settings",
    "PairAlignment": "force", "force_align": "force", "stream_force_align": "force",
    "align": "force", "word_attention": "force", "align_translation": "force",
    "forced_weights": "force", "HypAlignment": "force",
}


def __getattr__(name: str) -> Any:
    if name in _PUBLIC:
        return getattr(importlib.import_module(f"seqattn.align.{_PUBLIC[name]}"), name)
    raise AttributeError(f"module 'seqattn.align' has no attribute {name!r}")


__all__ = sorted(_PUBLIC)
