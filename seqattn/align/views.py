"""Attention views: which attention to read for an alignment, and the rows it reads.

A :class:`View` chooses the decoder ``layer``, the ``heads`` (mean, max or one head), ``shift``
(Chen et al. 2020, "shift-att": piece ``k`` reads the step where it is the decoder *input*, row
``k + 1``; the last piece reads the step that predicts end-of-sentence, so every word has a row)
and an optional :class:`Blend` with a second view. Without a stored choice a Transformer is read
at its penultimate decoder layer averaged over heads (Garg et al. 2019, §5: the penultimate
layer aligns best), an RNN at its one attention.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from torch import Tensor

from seqattn.errors import UsageError

#: the names errors give the settings of a view (the CLI shows its flags instead)
VIEW_PARAMS = ("view.layer", "view.heads", "view.blend", "view.merge", "view.attention")


def default_layer(n_layers: int) -> int:
    """The layer read (and supervised by guided training) unless told otherwise: the
    penultimate decoder layer (Garg et al. 2019)."""
    return max(n_layers - 2, 0)


@dataclass(frozen=True)
class Blend:
    """A second view mixed into the first: ``(1 - weight) · first + weight · (layer, heads)``,
    read at the step that predicts each piece (never shifted). A guided head read with
    shift-att is sharp but, for the last word before final punctuation, reads the step that
    predicts the punctuation; an unsupervised layer read plainly knows where each word came
    from. Written ``LAYER:HEADS:WEIGHT`` (e.g. ``2:mean:0.4``)."""

    layer: int
    heads: str
    weight: float

    def as_dict(self) -> dict[str, Any]:
        return {"layer": self.layer, "heads": self.heads, "weight": self.weight}

    @classmethod
    def parse(cls, text: str) -> Blend | None:
        """``LAYER:HEADS:WEIGHT``, or ``none`` (no blend) → None."""
        if text.strip().lower() == "none":
            return None
        parts = text.split(":")
        try:
            if len(parts) != 3:
                raise ValueError
            layer, heads, weight = int(parts[0]), parts[1].strip(), float(parts[2])
        except ValueError:
            raise UsageError(f"view.blend takes LAYER:HEADS:WEIGHT (e.g. 2:mean:0.4) or none; "
                             f"got '{text}'", params=VIEW_PARAMS) from None
        if not 0.0 < weight < 1.0:
            raise UsageError(f"view.blend weight must be between 0 and 1 (exclusive), got "
                             f"{weight}", params=VIEW_PARAMS)
        return cls(layer, heads, weight)

    @classmethod
    def from_dict(cls, stored: Any) -> Blend | None:
        if not stored:
            return None
        return cls(int(stored["layer"]), str(stored["heads"]), float(stored["weight"]))


@dataclass(frozen=True)
class View:
    """Which attention to read: ``layer``, ``heads`` ("mean", "max" or a head number as a
    string), ``shift`` (shift-att), the subword ``merge``, ``attention``: "cross" (decoder
    over source, the alignment), or "encoder" / "decoder" self-attention
    (:mod:`seqattn.align.selfattn`), and an optional :class:`Blend` with a second view."""

    layer: int = 0
    heads: str = "mean"
    shift: bool = False
    merge: str = "sum"
    attention: str = "cross"
    blend: Blend | None = None

    def as_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"layer": self.layer, "heads": self.heads, "shift": self.shift,
                               "merge": self.merge}
        if self.blend is not None:
            out["blend"] = self.blend.as_dict()
        return out if self.attention == "cross" else {**out, "attention": self.attention}


def check_layer_heads(layer: int, heads: str, n_layers: int, n_heads: int, layer_flag: str,
                      heads_flag: str, layer_note: str = "", heads_note: str = "",
                      kind: str = "cross") -> None:
    """One-line errors for a layer or heads setting this model does not have."""
    if not 0 <= layer < n_layers:
        which = "decoder" if kind == "cross" else kind
        raise UsageError(f"{layer_flag} {layer} is out of range{layer_note}; this model has "
                         f"{n_layers} {which} layer(s): 0..{n_layers - 1}", params=VIEW_PARAMS)
    if heads not in ("mean", "max") and not (heads.isdigit() and int(heads) < n_heads):
        raise UsageError(f"{heads_flag} must be mean, max or a head number 0..{n_heads - 1}, "
                         f"got '{heads}'{heads_note}", params=VIEW_PARAMS)


def head_rows(weights: Tensor, layer: int, heads: str) -> Tensor:
    """One layer's attention with its heads combined (mean, max or one head).

    Shapes:
        weights: (L, H, T, S)
        returns: (T, S)
    """
    w = weights[layer]                                                       # (H, T, S)
    return w.mean(dim=0) if heads == "mean" else w.max(dim=0).values \
        if heads == "max" else w[int(heads)]


def view_rows(weights: Tensor, view: View) -> Tensor:
    """The rows a view reads from piece attention whose last row is the end-of-sentence step
    (teacher-forced, or a hypothesis of the beam).

    Shapes:
        weights: (L, H, Tp + 1, Sp + 1): rows y1 .. yn eos over source pieces + eos
        returns: (Tp, Sp + 1), row k for target piece k (k + 1 with shift-att), blended
    """
    rows = head_rows(weights, view.layer, view.heads)                        # (Tp + 1, S)
    rows = rows[1:] if view.shift else rows[:-1]                             # (Tp, S)
    if view.blend is not None:
        other = head_rows(weights, view.blend.layer, view.blend.heads)[:-1]  # (Tp, S)
        rows = (1.0 - view.blend.weight) * rows + view.blend.weight * other
    return rows
