"""What the server does, without the web: loaded models, checked requests, and their records.

A request becomes a *plan* (checked options, hashable) in the request's own task, before it
waits for a batch, so a bad option never reaches a batch; requests with equal plans are decoded
together (:mod:`seqattn.serve.batcher`). The records are :mod:`seqattn.records`' — what
``seqattn translate -f jsonl`` and ``seqattn align -f jsonl`` write for the same options.
"""

from __future__ import annotations

from collections.abc import Hashable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from seqattn.errors import UsageError
from seqattn.lines import LineTranslator
from seqattn.serve.settings import ServeSettings
from seqattn.textio import language_of
from seqattn.translate import Translator, load

if TYPE_CHECKING:
    from seqattn.align.links import Extraction
    from seqattn.align.views import View
    from seqattn.config import DecodeConfig


def _opt(default: Any, doc: str) -> Any:
    """An option with its description (the API's OpenAPI page shows it)."""
    return field(default=default, metadata={"doc": doc})


@dataclass(frozen=True)
class TranslateOptions:
    """The options of ``seqattn translate``, by the JSON API's names (None: the model's)."""

    beam: int | None = _opt(None, "Beam size; 1 = greedy [the model's, 5].")
    n_best: int = _opt(1, "Hypotheses per line (under 'nbest' when more than one).")
    alpha: float | None = _opt(None, "Length penalty α [the model's].")
    length_norm: str | None = _opt(None, "gnmt: divide by ((5 + length) / 6) ** α; power: by "
                                         "length ** α [the model's, gnmt; CTranslate2: power].")
    min_len: int | None = _opt(None, "No end-of-sentence before this many pieces.")
    max_len: int | None = _opt(None, "At most this many pieces per sentence.")
    max_output_len: int | None = _opt(None, "Never more pieces than this, however long the "
                                            "source [the model's].")
    align: bool = _opt(False, "Words, pieces, Pharaoh alignment and links of each hypothesis.")
    attention: bool = _opt(False, "The soft word attention matrix too (with align).")
    check: bool = _opt(False, "The evidence card: possible omissions, repeats, flat rows.")
    layer: int | None = _opt(None, "Decoder layer read for the alignment [the model's view].")
    heads: str | None = _opt(None, "mean, max or a head number [the model's view].")
    shift_att: bool | None = _opt(None, "Read each word where it was the decoder input.")
    blend: str | None = _opt(None, "LAYER:HEADS:WEIGHT, or none [the model's view].")
    copy_numbers: bool = _opt(True, "Copy source numbers into the output words attending "
                                    "to them.")
    split: bool = _opt(True, "Translate a line of several sentences sentence by sentence.")
    caps: bool = _opt(True, "Translate an ALL-CAPS sentence in sentence case.")

    @property
    def needs_view(self) -> bool:
        return self.align or self.check or any(
            x is not None for x in (self.layer, self.heads, self.shift_att, self.blend))


@dataclass(frozen=True)
class AlignOptions:
    """The options of ``seqattn align`` (cross-attention), by the JSON API's names."""

    reverse_model: str | None = _opt(None, "A loaded target→source model: align both ways "
                                           "and symmetrize.")
    method: str | None = _opt(None, "argmax, threshold, both, confident or bidir [the "
                                    "model's calibrated one].")
    threshold: float | None = _opt(None, "The method's threshold P.")
    sym: str | None = _opt(None, "Symmetrization with reverse_model [the calibrated one].")
    merge: str = _opt("sum", "Subword merge: sum, mean or max.")
    layer: int | None = _opt(None, "Decoder layer [the model's view].")
    heads: str | None = _opt(None, "mean, max or a head number [the model's view].")
    shift_att: bool | None = _opt(None, "Read each target word at the step where it is the "
                                        "decoder input.")
    blend: str | None = _opt(None, "LAYER:HEADS:WEIGHT, or none [the model's view].")
    check: bool = _opt(False, "The evidence card of each pair.")


@dataclass(frozen=True)
class Plan:
    """A checked request, without its lines."""

    kind: str                      # "translate" or "align"
    model: str
    options: TranslateOptions | AlignOptions
    search: DecodeConfig | None = field(default=None, compare=False)
    view: View | None = field(default=None, compare=False)
    extraction: Extraction | None = field(default=None, compare=False)

    def batch_key(self) -> Hashable:
        """Requests with equal keys share a decoding pass: for translation the model, the
        search and the line policies (records are then built per request, with its own
        output options); for alignment the whole plan."""
        o = self.options
        if isinstance(o, TranslateOptions):
            return ("translate", self.model, self.search, o.split, o.caps)
        return self


class Service:
    """The models a server holds, by name (a directory's name or a shipped model's)."""

    def __init__(self, models: dict[str, Translator], settings: ServeSettings | None = None,
                 decoders: dict[str, LineTranslator] | None = None):
        """``models``: the native models (views, alignments, forced passes); ``decoders``:
        another engine that translates for a model (a CTranslate2 export), by name."""
        if not models:
            raise UsageError("a server needs at least one model")
        self.models = models
        self.decoders = decoders or {}
        self.default = next(iter(models))
        self.settings = settings or ServeSettings()

    @classmethod
    def load(cls, names: Sequence[str], device: str = "auto", precision: str = "fp32",
             settings: ServeSettings | None = None) -> Service:
        """Load each model; one that holds a CTranslate2 export translates with it (the
        native weights still give the alignments)."""
        from seqattn.engines.ct2 import CT2Translator, ct2_device, has_ct2

        models: dict[str, Translator] = {}
        decoders: dict[str, LineTranslator] = {}
        for name in names:
            translator = load(name, device=device, precision=precision)
            path = translator.loaded.path
            key = path.resolve().name
            if key in models:
                raise UsageError(f"two models are named '{key}': give each once")
            models[key] = translator
            if has_ct2(path):
                decoders[key] = CT2Translator(path, *ct2_device(device))
        return cls(models, settings, decoders)

    def translator(self, name: str | None) -> Translator:
        name = self.default if name is None else name
        if name not in self.models:
            raise UnknownModel(f"unknown model '{name}'; this server has: "
                               f"{', '.join(self.models)}")
        return self.models[name]

    def describe(self) -> list[dict[str, Any]]:
        """What ``GET /v1/models`` lists: each model's languages, shape and alignment views."""
        from seqattn.align.settings import AlignmentSettings, model_shape, resolve_view
        from seqattn.models import has_attention

        out = []
        for name, tr in self.models.items():
            attends = has_attention(tr.model)  # else translation only
            view = resolve_view(tr) if attends else None
            layers, heads = model_shape(tr) if attends else (0, 0)
            stored = AlignmentSettings.of(tr)
            out.append({
                "name": name, "default": name == self.default,
                "source_language": tr.language,
                "target_language": language_of(tr.cfg.data.train_tgt),
                "arch": tr.cfg.model.arch, "layers": layers, "heads": heads,
                "aligner": tr.loaded.aligner is not None,   # layer ``layers - 1`` is it
                "view": view.as_dict() if view else None,
                "calibrated": stored.layer is not None,
                "guided": stored.guided,   # the stored view's head was trained to align
                "beam": tr.cfg.decoding.beam_size,
                "engine": "ctranslate2" if name in self.decoders else "native",
            })
        return out

    # ---------------------------------------------------------------- checking (request task)

    def translate_plan(self, model: str | None, options: TranslateOptions) -> Plan:
        from seqattn.align.settings import STORED, resolve_view
        from seqattn.align.views import Blend

        name = self.default if model is None else model
        tr = self.translator(name)
        decoder = self.decoders.get(name, tr)
        search = tr.cfg.decoding.override(
            beam_size=options.beam, n_best=options.n_best, length_penalty=options.alpha,
            min_len=options.min_len, max_len=options.max_len,
            max_output_len=options.max_output_len,
            length_norm=decoder.length_norm(options.length_norm))
        self._within_limits(tr, search)
        if options.attention and not options.align:
            raise UsageError("attention (the soft matrix) comes with the alignment: give "
                             "align: true too", params=("attention",))
        view = None
        if options.needs_view:
            blend = STORED if options.blend is None else Blend.parse(options.blend)
            view = resolve_view(tr, options.layer, options.heads, options.shift_att,
                                blend=blend)
        return Plan("translate", name, options, search=search, view=view)

    def _within_limits(self, tr: Translator, search: DecodeConfig) -> None:
        """A request may not ask for more work than the server allows: a beam up to
        ``max_beam``, and no more output pieces than the model's own limit (``decoding.
        max_output_len`` of its config), so that one request cannot hold the decoder for
        hours."""
        if search.beam_size > self.settings.max_beam:
            raise UsageError(f"decoding.beam_size {search.beam_size} is more than this server "
                             f"allows ({self.settings.max_beam}, --max-beam)",
                             params=("decoding.beam_size",))
        cap = tr.cfg.decoding.max_output_len
        for param, value in (("decoding.max_output_len", search.max_output_len),
                             ("decoding.max_len", search.max_len),
                             ("decoding.min_len", search.min_len)):
            if value is not None and value > cap:
                raise UsageError(f"{param} {value} is more than this model's limit ({cap} "
                                 "pieces)", params=(param,))

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

    def run(self, group: list[tuple[Plan, list[Any]]]) -> list[list[dict[str, Any]]]:
        """The records of each job of ``group`` (plans with one :meth:`Plan.batch_key`; items
        are lines, or (source, target) pairs), decoded in one pass."""
        plan = group[0][0]
        if isinstance(plan.options, TranslateOptions):
            return self._translate(group)
        pairs = [pair for _, items in group for pair in items]
        return _split(self._align(plan, pairs), [len(items) for _, items in group])

    def _translate(self, group: list[tuple[Plan, list[Any]]]) -> list[list[dict[str, Any]]]:
        from seqattn.records import finish_line, translation_record

        first = group[0][0]
        tr, s = self.models[first.model], first.search
        assert s is not None and isinstance(first.options, TranslateOptions)
        weights = any(isinstance(p.options, TranslateOptions) and p.options.needs_view
                      for p, _ in group)
        lines = [line for _, items in group for line in items]
        decoder = self.decoders.get(first.model, tr)  # alignments: a native forced pass
        results = decoder.translate(lines, beam=s.beam_size, n_best=s.n_best,
                               alpha=s.length_penalty, min_len=s.min_len, max_len=s.max_len,
                               max_output_len=s.max_output_len, length_norm=s.length_norm,
                               batch_tokens=self.settings.batch_tokens,
                               chunk=max(1, len(lines)), attention=weights,
                               split_sentences=first.options.split,
                               fold_caps=first.options.caps)
        out, start = [], 0
        for plan, items in group:   # each request's records with its own output options
            o = plan.options
            assert isinstance(o, TranslateOptions)
            records = []
            for t in results[start:start + len(items)]:
                seen: dict[int, Any] = {}
                card = finish_line(tr, t, plan.view, o.copy_numbers, o.check, seen)
                records.append(translation_record(tr, t, plan.view, links=o.align,
                                                  attention=o.attention, card=card, seen=seen))
            out.append(records)
            start += len(items)
        return out

    def _align(self, plan: Plan, pairs: list[tuple[str, str]]) -> list[dict[str, Any]]:
        from seqattn.align.force import align
        from seqattn.records import alignment_record

        o = plan.options
        assert isinstance(o, AlignOptions) and plan.extraction is not None
        tr = self.models[plan.model]
        reverse = self.models[o.reverse_model] if o.reverse_model else None
        found = align(tr, pairs, plan.view, plan.extraction, reverse, check=o.check,
                      batch_tokens=self.settings.batch_tokens, chunk=max(1, len(pairs)))
        sym = plan.extraction.sym if reverse is not None else None
        return [alignment_record(rec, sym) for rec in found]


def _split(records: list[Any], sizes: list[int]) -> list[list[Any]]:
    out, start = [], 0
    for n in sizes:
        out.append(records[start:start + n])
        start += n
    return out


class UnknownModel(UsageError):
    """A request named a model this server does not hold."""
