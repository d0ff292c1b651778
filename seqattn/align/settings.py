"""A model's stored alignment settings, typed, and how they fill in what a user leaves open.

``seqattn align --calibrate`` (:mod:`seqattn.align.calibrate`) and guided training store them as
``"alignment"`` in the model directory's ``seqattn.json``: the view (layer, heads, shift, blend),
the extraction (method, threshold) and, calibrated with a reverse model, a symmetrization.
:class:`AlignmentSettings` is the one place that reads and writes that mapping; unknown keys are
kept as they are.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

from seqattn.align.links import Extraction
from seqattn.align.names import MERGES
from seqattn.align.views import VIEW_PARAMS, Blend, View, check_layer_heads, default_layer
from seqattn.errors import CheckpointError, UsageError

if TYPE_CHECKING:
    from seqattn.translate import Translator

log = logging.getLogger(__name__)

_KNOWN = ("layer", "heads", "shift", "guided", "method", "threshold", "aer", "blend", "sym")


@dataclass(frozen=True)
class StoredSym:
    """A symmetrization chosen by ``--calibrate GOLD --reverse-model M``: heuristic or soft
    ``sym``, its link extraction, the AER it reached and the reverse model's name."""

    sym: str
    method: str = "argmax"
    threshold: float | None = None
    aer: float | None = None
    reverse: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return {"sym": self.sym, "method": self.method, "threshold": self.threshold,
                "aer": self.aer, "reverse": self.reverse}

    def describe(self) -> str:
        """In words: ``symmetrization mean, threshold 0.4``."""
        return f"symmetrization {self.sym}, {Extraction(self.method, self.threshold).links_by()}"


@dataclass(frozen=True)
class AlignmentSettings:
    """What a model stored about reading its alignments; None: not stored (use the default)."""

    layer: int | None = None
    heads: str | None = None
    shift: bool | None = None
    blend: Blend | None = None
    method: str | None = None
    threshold: float | None = None
    aer: float | None = None
    guided: bool = False
    sym: StoredSym | None = None
    extra: dict[str, Any] = field(default_factory=dict)  # keys of other tools, kept

    @classmethod
    def from_dict(cls, stored: Any) -> AlignmentSettings:
        """Read ``seqattn.json``'s ``"alignment"``; a malformed one is a CheckpointError."""
        if not stored:
            return cls()
        if not isinstance(stored, dict):
            raise CheckpointError("seqattn.json: 'alignment' must be a mapping")
        try:
            sym = stored.get("sym")
            return cls(
                layer=None if stored.get("layer") is None else int(stored["layer"]),
                heads=None if stored.get("heads") is None else str(stored["heads"]),
                shift=None if stored.get("shift") is None else bool(stored["shift"]),
                blend=Blend.from_dict(stored.get("blend")),
                method=None if stored.get("method") is None else str(stored["method"]),
                threshold=None if stored.get("threshold") is None else float(stored["threshold"]),
                aer=None if stored.get("aer") is None else float(stored["aer"]),
                guided=bool(stored.get("guided", False)),
                sym=None if not sym else StoredSym(
                    str(sym["sym"]), str(sym.get("method", "argmax")),
                    None if sym.get("threshold") is None else float(sym["threshold"]),
                    None if sym.get("aer") is None else float(sym["aer"]),
                    None if sym.get("reverse") is None else str(sym["reverse"])),
                extra={k: v for k, v in stored.items() if k not in _KNOWN})
        except (KeyError, TypeError, ValueError) as e:
            raise CheckpointError(f"seqattn.json: unreadable 'alignment' settings ({e})") from None

    @classmethod
    def of(cls, translator: Translator) -> AlignmentSettings:
        return cls.from_dict(translator.loaded.meta.get("alignment"))

    def as_dict(self) -> dict[str, Any]:
        """The mapping stored in ``seqattn.json`` (unset values left out)."""
        out: dict[str, Any] = {}
        for key, value in (("layer", self.layer), ("heads", self.heads), ("shift", self.shift)):
            if value is not None:
                out[key] = value
        if self.guided:
            out["guided"] = True
        if self.method is not None:
            out.update(method=self.method, threshold=self.threshold)
        if self.aer is not None:
            out["aer"] = self.aer
        if self.blend is not None:
            out["blend"] = self.blend.as_dict()
        if self.sym is not None:
            out["sym"] = self.sym.as_dict()
        return {**out, **self.extra}

    def with_view(self, view: View, extraction: Extraction, aer: float) -> AlignmentSettings:
        """These settings with a calibrated view and extraction; the stored symmetrization is
        kept only if the view did not change (it was tuned for the view)."""
        same = (self.layer, self.heads, bool(self.shift), self.blend) == \
            (view.layer, view.heads, view.shift, view.blend)
        return replace(self, layer=view.layer, heads=view.heads, shift=view.shift,
                       blend=view.blend, method=extraction.method,
                       threshold=extraction.threshold, aer=aer,
                       sym=self.sym if same else None)


#: what every alignment view says of a model built with ``model.attention: none``
NO_ATTENTION = ("this model has no attention to show: it was built with model.attention "
                "'none', so its decoder reads only the encoder's final state; it translates "
                "(translate, evaluate), and alignments need a model with attention")

STORED: Any = object()  # resolve_view(blend=STORED): the stored blend, if the view is stored


def model_shape(translator: Translator, kind: str = "cross") -> tuple[int, int]:
    """(layers, heads) of an attention the model shows; a one-line error naming the views
    it has when it lacks ``kind``."""
    shape = translator.model.attention_shape(kind)
    if shape is not None and kind == "cross" and translator.loaded.aligner is not None:
        shape = (shape[0] + 1, shape[1])  # the full-context aligner reads as one more layer
    if shape is None:
        kinds = [k for k in ("cross", "encoder", "decoder")
                 if translator.model.attention_shape(k) is not None]
        if not kinds:
            raise UsageError(NO_ATTENTION)
        raise UsageError(f"this model has no {kind} attention to read; it has: "
                         f"{', '.join(kinds)} (self-attention views need a Transformer)")
    return shape


def default_view(translator: Translator) -> tuple[int, str]:
    """(layer, heads) read for alignments: the model's calibrated choice if it has one, else
    the penultimate decoder layer averaged over heads."""
    stored = AlignmentSettings.of(translator)
    n_layers, _ = model_shape(translator)
    return (default_layer(n_layers) if stored.layer is None else stored.layer,
            "mean" if stored.heads is None else stored.heads)


def resolve_view(translator: Translator, layer: int | None = None, heads: str | None = None,
                 shift: bool | None = None, merge: str = "sum",
                 blend: Blend | None = STORED) -> View:
    """A validated view: given values, else the model's calibrated ones, else the defaults
    (:func:`default_view`; shift off; no blend). A stored blend is tuned for the stored view,
    so it applies only when ``layer``, ``heads`` and ``shift`` are all left to the model;
    ``blend=None`` turns it off."""
    default_layer_, default_heads = default_view(translator)
    stored = AlignmentSettings.of(translator)
    if blend is STORED:
        own = layer is None and heads is None and shift is None
        blend = stored.blend if own else None
        blend_note = " (read from the model's seqattn.json; view.blend none turns it off)"
    else:
        blend_note = ""
    view = View(default_layer_ if layer is None else layer,
                default_heads if heads is None else str(heads),
                bool(stored.shift) if shift is None else shift, merge, blend=blend)
    n_layers, n_heads = model_shape(translator)
    note = {k: "" if given is not None else " (read from the model's seqattn.json)"
            for k, given in (("layer", layer), ("heads", heads))}
    check_layer_heads(view.layer, view.heads, n_layers, n_heads, "view.layer", "view.heads",
                      note["layer"], note["heads"])
    if view.blend is not None:
        check_layer_heads(view.blend.layer, view.blend.heads, n_layers, n_heads,
                          "view.blend layer", "view.blend heads", blend_note, blend_note)
    if merge not in MERGES:
        raise UsageError(f"view.merge must be one of: {', '.join(MERGES)}; got '{merge}'",
                         params=VIEW_PARAMS)
    return view


def resolve_extraction(translator: Translator, default: Extraction | None = None) -> Extraction:
    """The model's calibrated extraction (method, threshold) if it stored one, else
    ``default``; the symmetrization of ``default`` is kept."""
    default = default or Extraction()
    stored = AlignmentSettings.of(translator)
    if stored.method is None:
        return default
    return Extraction(stored.method, stored.threshold, default.sym)


def resolve_sym_extraction(translator: Translator, given: Extraction, sym_given: bool,
                           extraction_given: bool, reverse_name: str | None = None
                           ) -> Extraction:
    """How to combine both directions: the flags the user gave, the rest from the
    symmetrization stored by ``--calibrate GOLD --reverse-model``
    (:func:`seqattn.align.calibrate.calibrate_sym`). ``given`` holds the user's method and
    threshold (else the view's calibrated ones) and sym (else grow-diag-final). The stored sym
    applies unless ``sym_given``; its method and threshold apply unless ``extraction_given``
    or the user chose another sym."""
    stored = AlignmentSettings.of(translator).sym
    if stored is None:
        return given
    if reverse_name is not None and stored.reverse not in (None, reverse_name):
        log.warning("the stored symmetrization was calibrated with reverse model '%s', not '%s'",
                    stored.reverse, reverse_name)
    sym = given.sym if sym_given else stored.sym
    if extraction_given or sym != stored.sym:
        return Extraction(given.method, given.threshold, sym)
    return Extraction(stored.method, stored.threshold, sym)


def resolve_alignment(translator: Translator, reverse: Translator | None = None,
                      method: str | None = None, threshold: float | None = None,
                      sym: str | None = None, layer: int | None = None,
                      heads: str | None = None, shift: bool | None = None, merge: str = "sum",
                      blend: Blend | None = STORED) -> tuple[View, Extraction]:
    """The view and the link extraction of a force-alignment, as ``seqattn align`` chooses
    them: what is given, the rest from the model's calibration (:func:`resolve_extraction`,
    :func:`resolve_sym_extraction` with a ``reverse`` model), else the defaults (argmax;
    threshold when only ``threshold`` is given; grow-diag-final)."""
    if sym is not None and reverse is None:
        raise UsageError("extraction.sym needs a reverse (target → source) model",
                         params=("extraction.sym",))
    name = method or ("threshold" if threshold is not None else "argmax")
    extraction = Extraction(name, threshold, sym or "grow-diag-final")
    explicit = method is not None or threshold is not None
    if not explicit:  # the model's calibrated extraction, if it has one
        extraction = resolve_extraction(translator, extraction)
    if reverse is not None:  # and its calibrated symmetrization, for what was not given
        extraction = resolve_sym_extraction(translator, extraction, sym is not None, explicit,
                                            reverse.loaded.path.name)
    return resolve_view(translator, layer, heads, shift, merge, blend=blend), extraction
