"""What the server does, without the web: loaded models, checked requests, and their records.

A request becomes a *plan* (checked options, hashable) in the request's own task, before it
waits for a batch, so a bad option never reaches a batch; requests with equal plans are decoded
together (:mod:`seqattn.serve.batcher`). The records are :mod:`seqattn.records`' — what
``seqattn translate -f jsonl`` and ``seqattn align -f jsonl`` write for the same options.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from seqattn.errors import UsageError
from seqattn.textio import language_of
from seqattn.translate import Translator, load


@dataclass(frozen=True)
class TranslateOptions:
    """The options of ``seqattn translate``, by the JSON API's names (None: the model's)."""

    beam: int | None = None
    n_best: int = 1
    alpha: float | None = None
    min_len: int | None = None
    max_len: int | None = None
    max_output_len: int | None = None
    align: bool = False        # words, pieces, links (the jsonl record's alignment fields)
    attention: bool = False    # the soft word matrix too (needs align)
    check: bool = False        # the evidence card
    layer: int | None = None
    heads: str | None = None
    shift_att: bool | None = None
    blend: str | None = None   # LAYER:HEADS:WEIGHT or "none"
    copy_numbers: bool = True
    split: bool = True
    caps: bool = True


@dataclass(frozen=True)
class AlignOptions:
    """The options of ``seqattn align`` (cross-attention), by the JSON API's names."""

    reverse_model: str | None = None
    method: str | None = None
    threshold: float | None = None
    sym: str | None = None
    merge: str = "sum"
    layer: int | None = None
    heads: str | None = None
    shift_att: bool | None = None
    blend: str | None = None
    check: bool = False


@dataclass(frozen=True)
class Plan:
    """A checked request, without its lines: equal plans share a decoding batch."""

    kind: str                      # "translate" or "align"
    model: str
    options: TranslateOptions | AlignOptions
    search: Any = field(default=None, compare=False)   # DecodeConfig (from the options)
    view: Any = field(default=None, compare=False)
    extraction: Any = field(default=None, compare=False)


class Service:
    """The models a server holds, by name (a directory's name or a shipped model's)."""

    def __init__(self, models: dict[str, Translator], batch_tokens: int = 4096):
        if not models:
            raise UsageError("give at least one model (-m)")
        self.models = models
        self.default = next(iter(models))
        self.batch_tokens = batch_tokens

    @classmethod
    def load(cls, names: Sequence[str], device: str = "auto", precision: str = "fp32",
             batch_tokens: int = 4096) -> Service:
        models: dict[str, Translator] = {}
        for name in names:
            translator = load(name, device=device, precision=precision)
            key = translator.loaded.path.resolve().name
            if key in models:
                raise UsageError(f"two models are named '{key}': give each once")
            models[key] = translator
        return cls(models, batch_tokens)

    def translator(self, name: str | None) -> Translator:
        name = self.default if name is None else name
        if name not in self.models:
            raise UnknownModel(f"unknown model '{name}'; this server has: "
                               f"{', '.join(self.models)}")
        return self.models[name]

    def describe(self) -> list[dict[str, Any]]:
        """What ``GET /v1/models`` lists: each model's languages, shape and alignment views."""
        from seqattn.align.settings import AlignmentSettings, model_shape, resolve_view

        out = []
        for name, tr in self.models.items():
            view = resolve_view(tr)
            layers, heads = model_shape(tr)
            stored = AlignmentSettings.of(tr)
            out.append({
                "name": name, "default": name == self.default,
                "source_language": tr.language,
                "target_language": language_of(tr.cfg.data.train_tgt),
                "arch": tr.cfg.model.arch, "layers": layers, "heads": heads,
                "aligner": tr.loaded.aligner is not None,   # layer ``layers - 1`` is it
                "view": view.as_dict(), "calibrated": stored.layer is not None,
                "guided": stored.guided,   # the stored view's head was trained to align
                "beam": tr.cfg.decoding.beam_size,
            })
        return out

    # ---------------------------------------------------------------- checking (request task)

    def translate_plan(self, model: str | None, options: TranslateOptions) -> Plan:
        from seqattn.align.settings import STORED, resolve_view
        from seqattn.align.views import Blend

        name = self.default if model is None else model
        tr = self.translator(name)
        search = tr.cfg.decoding.override(
            beam_size=options.beam, n_best=options.n_best, length_penalty=options.alpha,
            min_len=options.min_len, max_len=options.max_len,
            max_output_len=options.max_output_len)
        if options.attention and not options.align:
            raise UsageError("attention (the soft matrix) comes with the alignment: give "
                             "align: true too", params=("attention",))
        view = None
        if self._needs_view(options):
            blend = STORED if options.blend is None else Blend.parse(options.blend)
            view = resolve_view(tr, options.layer, options.heads, options.shift_att,
                                blend=blend)
        return Plan("translate", name, options, search=search, view=view)

    @staticmethod
    def _needs_view(o: TranslateOptions) -> bool:
        return o.align or o.check or any(x is not None for x in (o.layer, o.heads,
                                                                  o.shift_att, o.blend))

    def align_plan(self, model: str | None, options: AlignOptions) -> Plan:
        from seqattn.align.settings import STORED, resolve_alignment
        from seqattn.align.views import Blend

        name = self.default if model is None else model
        tr = self.translator(name)
        reverse = self.translator(options.reverse_model) if options.reverse_model else None
        blend = STORED if options.blend is None else Blend.parse(options.blend)
        view, extraction = resolve_alignment(
            tr, reverse, options.method, options.threshold, options.sym, options.layer,
            options.heads, options.shift_att, options.merge, blend=blend)
        return Plan("align", name, options, view=view, extraction=extraction)

    # ---------------------------------------------------------------- work (decoding thread)

    def run(self, plan: Plan, items: list[Any]) -> list[dict[str, Any]]:
        """The records of ``items`` (lines, or (source, target) pairs) under ``plan``."""
        if plan.kind == "translate":
            return self._translate(plan, items)
        return self._align(plan, items)

    def _translate(self, plan: Plan, lines: list[str]) -> list[dict[str, Any]]:
        from seqattn.align.numbers import copy_numbers
        from seqattn.records import evidence_card, translation_record

        o = plan.options
        assert isinstance(o, TranslateOptions)
        tr = self.models[plan.model]
        s = plan.search
        results = tr.translate(lines, beam=s.beam_size, n_best=s.n_best,
                               alpha=s.length_penalty, min_len=s.min_len, max_len=s.max_len,
                               max_output_len=s.max_output_len,
                               batch_tokens=self.batch_tokens, chunk=max(1, len(lines)),
                               attention=o.align or o.check, split_sentences=o.split,
                               fold_caps=o.caps)
        records = []
        for t in results:
            if o.copy_numbers:
                copy_numbers(tr, t)
            seen: dict[int, Any] = {}
            card = evidence_card(tr, t, plan.view, seen) if o.check and t.hyps else None
            records.append(translation_record(tr, t, plan.view, links=o.align,
                                              attention=o.attention, card=card, seen=seen))
        return records

    def _align(self, plan: Plan, pairs: list[tuple[str, str]]) -> list[dict[str, Any]]:
        from seqattn.align.force import align
        from seqattn.records import alignment_record

        o = plan.options
        assert isinstance(o, AlignOptions)
        tr = self.models[plan.model]
        reverse = self.models[o.reverse_model] if o.reverse_model else None
        found = align(tr, pairs, plan.view, plan.extraction, reverse, check=o.check,
                      batch_tokens=self.batch_tokens, chunk=max(1, len(pairs)))
        sym = plan.extraction.sym if reverse is not None else None
        return [alignment_record(rec, sym) for rec in found]


class UnknownModel(UsageError):
    """A request named a model this server does not hold."""
