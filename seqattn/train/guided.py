"""Guided alignment training (Garg et al. 2019, "Jointly Learning to Align and Translate").

Attention alone aligns words only roughly. Given word alignments of the training pairs (Pharaoh
``i-j`` lines from an external aligner such as eflomal or fast_align), one cross-attention head
is trained to reproduce them: for every target piece whose word has links, the gold
distribution is uniform over the source pieces of the linked words, and the head pays

    L_align = - sum over supervised rows r of  sum_j  G[r, j] · log A[r, j]

added to the translation loss with a small weight (``training.guided_weight``; the paper uses
0.05) and normalised by target tokens like it. Row ``k`` of the teacher-forced attention is the
step that *predicts* piece ``k``: the same row that forced alignment reads by default
(``shift=False``) and that ``translate --align`` reads while decoding, so the supervised head is
directly the model's default alignment view. With ``training.guided_shift`` the head is
supervised at row ``k + 1`` instead, the step where piece ``k`` is the decoder's *input*
(shift-att, Chen et al. 2020): there the decoder knows which word it aligns, where at row ``k``
it must guess the word it is about to produce; the model's default view is then shift-att.

Word indices are the whitespace words of the training files as given (the same words that
``seqattn align`` links), so the alignment file must be made from the same text; when an aligner
ran on tokenized text, map its links back to whitespace words first
(``bench/guided_links.py`` does this for Moses-tokenized eflomal output).
"""

from __future__ import annotations

from seqattn.align.views import default_layer
from seqattn.config import Config
from seqattn.errors import ConfigError
from seqattn.models import attention_shape_of


def guided_view(cfg: Config) -> tuple[int, int] | None:
    """(decoder layer, head) that guided alignment supervises, or None when it is off."""
    t, m = cfg.training, cfg.model
    if not t.guided_alignment:
        return None
    shape = attention_shape_of(m)
    if shape is None:
        raise ConfigError("training.guided_alignment needs attention to guide, and "
                          "model.attention is 'none'; turn guided_alignment off")
    layers, heads = shape
    layer = default_layer(layers) if t.guided_layer is None else t.guided_layer
    if layer >= layers:
        raise ConfigError(f"training.guided_layer ({layer}) is out of range: the model has "
                          f"{layers} decoder layer(s), 0..{layers - 1}")
    if t.guided_head >= heads:
        raise ConfigError(f"training.guided_head ({t.guided_head}) is out of range: the model "
                          f"has {heads} head(s), 0..{heads - 1}")
    return layer, t.guided_head
