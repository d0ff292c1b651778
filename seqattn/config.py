"""Strict configuration: YAML -> frozen dataclasses.

A config file has up to four sections, ``data``, ``model``, ``training`` and ``decoding``; each
maps onto one frozen dataclass below. Loading is strict: an unknown key is an error naming its
dotted path and the closest valid key, a wrong type names the expected type, a value outside its
choices lists them, and ``--set section.key=value`` overrides go through the same checks (their
values are parsed as YAML, so ``--set training.clip_norm=null`` works).

The resolved :class:`Config` (every default filled in) is what a model directory stores.
"""

from __future__ import annotations

import dataclasses
import difflib
import math
import re
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, Union

import yaml

from seqattn.errors import ConfigError


def _num(default: Any, lo: float | None = None, hi: float | None = None, doc: str = "") -> Any:
    """A numeric field with an inclusive valid range, checked on load."""
    return field(default=default, metadata={"lo": lo, "hi": hi, "doc": doc})


def _check_ranges(obj: Any, section: str) -> None:
    """Every numeric field of ``obj`` within its range (:func:`_num`), however it was made."""
    for f in dataclasses.fields(obj):
        value, lo, hi = getattr(obj, f.name), f.metadata.get("lo"), f.metadata.get("hi")
        if value is None or isinstance(value, bool) or not isinstance(value, (int, float)):
            continue
        if math.isnan(value):
            raise ConfigError(f"{section}.{f.name} must be a number, got NaN")
        if (lo is not None and value < lo) or (hi is not None and value > hi):
            bound = f">= {lo}" if hi is None else f"<= {hi}" if lo is None else \
                f"within [{lo}, {hi}]"
            raise ConfigError(f"{section}.{f.name} must be {bound}, got {value}")


@dataclass(frozen=True)
class ExtraCorpus:
    """One more training corpus beside ``data.train_src``/``train_tgt`` and its weight: the
    pairs drawn from it each epoch are ``weight`` times its size (2: every pair twice; 0.3: a
    random 30 %, drawn again each epoch), the main corpus counting once."""

    src: str
    tgt: str
    weight: float = _num(1.0, lo=0.0)

    def __post_init__(self) -> None:
        _check_ranges(self, "data.corpora[]")


@dataclass(frozen=True)
class DataConfig:
    """Parallel text and sentencepiece subwords."""

    train_src: str | None = None
    train_tgt: str | None = None
    valid_src: str | None = None
    valid_tgt: str | None = None
    vocab: Literal["joint", "separate"] = "joint"
    vocab_size: int = _num(8000, lo=16, doc="sentencepiece vocabulary size (per model)")
    spm_type: Literal["unigram", "bpe"] = "unigram"
    spm_model: str | None = None  # reuse this joint sentencepiece model instead of training one
    src_spm_model: str | None = None  # reuse (separate vocabularies)
    tgt_spm_model: str | None = None
    max_len: int = _num(100, lo=1, doc="training pairs longer than this (in pieces) are skipped")
    corpora: tuple[ExtraCorpus, ...] = ()  # more training corpora, each with a weight
    max_ratio: float | None = _num(None, lo=1.0, doc="training pairs whose longer side has more "
                                   "than this many times the pieces of the shorter are skipped "
                                   "(misaligned lines in noisy corpora); None keeps them")


@dataclass(frozen=True)
class ModelConfig:
    """Architecture: RNN fields apply to arch rnn, Transformer fields to arch transformer."""

    arch: Literal["rnn", "transformer"] = "transformer"
    hidden_size: int = _num(256, lo=1, doc="RNN hidden size per direction / Transformer d_model")
    embed_size: int = _num(256, lo=1, doc="RNN embedding size (the Transformer uses hidden_size)")
    enc_layers: int = _num(3, lo=1)
    dec_layers: int = _num(3, lo=1)
    dropout: float = _num(0.1, lo=0.0, hi=0.9)
    # RNN
    cell: Literal["gru", "lstm"] = "gru"
    # none: no attention, the decoder reads only the encoder's final state (Cho et al. 2014)
    attention: Literal["bahdanau", "luong", "none"] = "bahdanau"
    score: Literal["additive", "dot", "general", "concat"] | None = None  # None: the paper's own
    input_feeding: bool = True
    # Transformer
    heads: int = _num(4, lo=1)
    ff_size: int = _num(1024, lo=1)
    norm: Literal["pre", "post"] = "pre"
    tie_embeddings: bool = True
    max_positions: int = _num(1024, lo=1)

    def __post_init__(self) -> None:
        if self.arch == "transformer" and self.attention == "none":
            raise ConfigError("model.attention 'none' is for arch rnn (a Transformer is built "
                              "from attention); use arch: rnn, or attention: bahdanau")
        if self.attention == "none" and self.score is not None:
            raise ConfigError(f"model.score '{self.score}' does not go with model.attention "
                              "'none' (a model without attention has no score); drop score")
        if self.score is None and self.attention != "none":  # the score each paper uses
            default = "additive" if self.attention == "bahdanau" else "general"
            object.__setattr__(self, "score", default)
        if self.arch == "rnn" and self.attention == "bahdanau" and self.score != "additive":
            raise ConfigError(
                f"model.score '{self.score}' does not go with model.attention 'bahdanau' "
                "(Bahdanau attention is additive); use score: additive, or attention: luong"
            )
        if self.arch == "rnn" and self.attention == "luong" and self.score == "additive":
            raise ConfigError(
                "model.score 'additive' does not go with model.attention 'luong'; "
                "choose one of: concat, dot, general (or attention: bahdanau)"
            )
        if self.arch == "transformer" and self.hidden_size % self.heads:
            raise ConfigError(
                f"model.hidden_size ({self.hidden_size}) must be divisible by model.heads "
                f"({self.heads})"
            )


@dataclass(frozen=True)
class TrainConfig:
    """Optimisation, validation and checkpointing."""

    seed: int = 1234
    device: str = "auto"  # auto, cpu, cuda, cuda:N
    precision: Literal["fp32", "bf16", "fp16"] = "fp32"
    batch_tokens: int = _num(4096, lo=1, doc="target tokens per batch (before accumulation)")
    accumulate: int = _num(1, lo=1, doc="batches per optimiser step")
    max_steps: int = _num(10000, lo=1)
    max_epochs: int | None = _num(None, lo=1)
    lr: float = _num(5e-4, lo=0.0)
    adam_betas: tuple[float, float] = (0.9, 0.98)
    weight_decay: float = _num(0.0, lo=0.0)
    schedule: Literal["constant", "inverse_sqrt", "noam", "plateau"] = "inverse_sqrt"
    warmup_steps: int = _num(4000, lo=0)
    plateau_factor: float = _num(0.5, lo=0.0, hi=1.0)
    plateau_patience: int = _num(3, lo=0)
    min_lr: float = _num(1e-6, lo=0.0)
    clip_norm: float | None = _num(1.0, lo=0.0)
    label_smoothing: float = _num(0.1, lo=0.0, hi=0.99)
    log_every: int = _num(100, lo=1)
    valid_every: int = _num(1000, lo=1)
    best_metric: Literal["bleu", "chrf", "loss", "ppl"] = "bleu"
    patience: int | None = _num(None, lo=1, doc="stop after this many validations without gain")
    keep_checkpoints: int = _num(0, lo=0, doc="keep the weights of the last N validations in "
                                 "checkpoints/, for seqattn export --average")
    # guided alignment (seqattn.train.guided): a Pharaoh file of links between the whitespace
    # words of data.train_src and data.train_tgt, one line per training pair, or "eflomal":
    # seqattn makes them with eflomal (pip install 'seqattn[align]'; seqattn.align.statistical)
    guided_alignment: str | None = None
    guided_weight: float = _num(0.05, lo=0.0, doc="weight of the alignment loss")
    guided_layer: int | None = _num(None, lo=0, doc="decoder layer; None: the penultimate")
    guided_head: int = _num(0, lo=0)
    guided_shift: bool = False  # supervise the step where the word is the decoder input
    # fine-tuning: a model directory or shipped model name whose weights, vocabulary and model
    # section this run starts from (seqattn.train.finetune); seqattn train --init-from
    init_from: str | None = None

    def __post_init__(self) -> None:
        if not re.fullmatch(r"auto|cpu|cuda(:\d+)?|mps", self.device):
            raise ConfigError(
                f"training.device '{self.device}' is not valid; choose one of: auto, cpu, cuda, "
                "cuda:N, mps"
            )


LENGTH_NORMS = ("gnmt", "power")


@dataclass(frozen=True)
class DecodeConfig:
    """Search settings used by translate, align and validation."""

    beam_size: int = _num(5, lo=1)
    n_best: int = _num(1, lo=1)
    length_penalty: float = _num(0.6, lo=0.0, doc="GNMT alpha; 0 disables the penalty")
    #: how a finished hypothesis's log-probability is normalised: "gnmt" divides by
    #: ((5 + |Y|) / 6) ** α (Wu et al. 2016), "power" by |Y| ** α (CTranslate2's, Marian's)
    length_norm: str = "gnmt"
    max_len_a: float = _num(1.5, lo=0.0, doc="max output length = a * source length + b")
    max_len_b: int = _num(10, lo=0)
    min_len: int = _num(0, lo=0)
    max_len: int | None = _num(None, lo=1, doc="a fixed output limit instead of a · source + b")
    # The absolute cap, whatever the source: a 1,023-piece garbage line would otherwise allow
    # 1.5 · 1023 + 10 pieces (clamped to the model's 1,023 positions), about 10 s of beam search
    # on 2 cores for an output nobody wants. 256 is CTranslate2's max_decoding_length; no
    # Multi30k training sentence has more than 55 pieces (the shipped models' sentencepiece),
    # so their a·S+b reaches it only for sources of 164+ pieces, far beyond their training.
    max_output_len: int = _num(256, lo=1, doc="no output sentence has more pieces (before "
                               "end-of-sentence), whatever a · source + b gives")

    def __post_init__(self) -> None:
        if self.length_norm not in LENGTH_NORMS:
            raise ConfigError(f"decoding.length_norm must be one of: {', '.join(LENGTH_NORMS)}; "
                              f"got '{self.length_norm}'")
        _check_ranges(self, "decoding")
        if self.n_best > self.beam_size:
            raise ConfigError(
                f"decoding.n_best ({self.n_best}) cannot exceed decoding.beam_size "
                f"({self.beam_size})"
            )
        if self.max_len is not None and self.min_len > self.max_len:
            raise ConfigError(f"decoding.min_len ({self.min_len}) cannot exceed "
                              f"decoding.max_len ({self.max_len})")
        for name in ("max_len", "min_len"):  # a fixed length above the cap is a contradiction
            value = getattr(self, name)
            if value is not None and value > self.max_output_len:
                raise ConfigError(f"decoding.{name} ({value}) cannot exceed "
                                  f"decoding.max_output_len ({self.max_output_len}), the cap "
                                  "on every output's length; raise the cap as well")

    def output_limit(self, src_len: Any) -> Any:
        """The most pieces each output may have before end-of-sentence: ``max_len`` if set,
        else ``max_len_a`` · ``src_len`` + ``max_len_b`` (at least 1), never above
        ``max_output_len``. ``src_len``: a (B,) long tensor of source lengths (eos included);
        returns a (B,) long tensor (this module does not import torch)."""
        if self.max_len is not None:
            return src_len.new_full(src_len.shape, self.max_len)
        limit = (self.max_len_a * src_len.float() + self.max_len_b).long()   # float32, as ever
        return limit.clamp(min=1, max=self.max_output_len)

    def override(self, **given: Any) -> DecodeConfig:
        """These settings with the ``given`` ones that are not None, checked here like the
        YAML; an error names the settings given (``params``), so the CLI can name its flags."""
        changes = {k: v for k, v in given.items() if v is not None}
        try:
            return dataclasses.replace(self, **changes)
        except ConfigError as e:
            raise ConfigError(str(e), params=tuple(f"decoding.{k}" for k in changes)) from None


@dataclass(frozen=True)
class Config:
    """The whole configuration: one field per YAML section."""

    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    training: TrainConfig = field(default_factory=TrainConfig)
    decoding: DecodeConfig = field(default_factory=DecodeConfig)


# --------------------------------------------------------------------------- loading


def load_config(path: str | Path, overrides: typing.Sequence[str] = ()) -> Config:
    """Read a YAML file, apply ``section.key=value`` overrides, and validate everything."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(f"config file '{path}' does not exist") from None
    except IsADirectoryError:
        raise ConfigError(f"config file '{path}' is a directory, not a YAML file") from None
    except UnicodeDecodeError as e:
        raise ConfigError(f"config file '{path}' is not UTF-8 text ({e.reason})") from None
    except OSError as e:
        raise ConfigError(f"cannot read config file '{path}': {e.strerror}") from None
    try:
        raw = yaml.safe_load(text)
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f" line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(e, "problem", None) or str(e).splitlines()[0]
        raise ConfigError(f"config file '{path}'{where}: invalid YAML: {problem}") from None
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        raise ConfigError(f"config file '{path}' must hold a mapping of sections, not a list")
    return config_from_dict(raw, overrides)


def config_from_dict(raw: dict[str, Any], overrides: typing.Sequence[str] = ()) -> Config:
    """Validate a nested dict (as read from YAML) plus overrides into a :class:`Config`."""
    raw = _deep_copy(raw)
    for item in overrides:
        keys, value = parse_override(item)
        _set_path(keys)  # reject unknown paths before touching the dict
        node = raw
        for key in keys[:-1]:
            if node.get(key) is None:
                node[key] = {}
            node = node[key]
            if not isinstance(node, dict):
                raise ConfigError(f"'{key}' must be a mapping of keys before '{item}' can apply")
        node[keys[-1]] = value
    return _build(Config, raw, "")


def parse_override(item: str) -> tuple[list[str], Any]:
    """``'model.hidden_size=512'`` -> ``(['model', 'hidden_size'], 512)`` (value parsed as YAML)."""
    name, sep, value = item.partition("=")
    name = name.strip()
    if not sep or not name or not re.fullmatch(r"[A-Za-z_][\w]*(\.[A-Za-z_][\w]*)+", name):
        raise ConfigError(
            f"override '{item}' is not of the form section.key=value "
            "(for example --set model.hidden_size=512)"
        )
    try:
        parsed = yaml.safe_load(value) if value.strip() else ""
    except yaml.YAMLError:
        parsed = value  # keep it as a string; type checking will complain if needed
    return name.split("."), parsed


def config_to_dict(cfg: Any) -> dict[str, Any]:
    """A plain nested dict (tuples become lists) suitable for YAML or JSON."""
    out: dict[str, Any] = {}
    for f in dataclasses.fields(cfg):
        value = getattr(cfg, f.name)
        if dataclasses.is_dataclass(value):
            value = config_to_dict(value)
        elif isinstance(value, tuple):
            value = [config_to_dict(v) if dataclasses.is_dataclass(v) else v for v in value]
        out[f.name] = value
    return out


def dump_config(cfg: Config) -> str:
    """The resolved config as YAML text (sections in a fixed order)."""
    return yaml.safe_dump(config_to_dict(cfg), sort_keys=False, allow_unicode=True)


def all_keys() -> list[str]:
    """Every valid dotted key, e.g. ``model.hidden_size``."""
    return [f"{s.name}.{f.name}" for s in dataclasses.fields(Config)
            for f in dataclasses.fields(_hints(Config)[s.name])]


# --------------------------------------------------------------------------- internals


def _deep_copy(raw: Any) -> Any:
    if isinstance(raw, dict):
        return {k: _deep_copy(v) for k, v in raw.items()}
    if isinstance(raw, list):
        return [_deep_copy(v) for v in raw]
    return raw


def _set_path(keys: list[str]) -> None:
    """Reject an override whose dotted path is not a config key."""
    cls: Any = Config
    for depth, key in enumerate(keys):
        if not dataclasses.is_dataclass(cls):
            raise ConfigError(f"'{'.'.join(keys[:depth])}' is a value, not a section")
        names = [f.name for f in dataclasses.fields(cls)]
        if key not in names:
            _unknown(".".join(keys[: depth + 1]), key, names)
        cls = _hints(typing.cast(type, cls))[key]
    if dataclasses.is_dataclass(cls):
        raise ConfigError(f"'{'.'.join(keys)}' is a section; set one of its keys instead")


def _hints(cls: type) -> dict[str, Any]:
    return typing.get_type_hints(cls)


def _unknown(path: str, key: str, names: list[str]) -> typing.NoReturn:
    parent = path.rpartition(".")[0]
    close = difflib.get_close_matches(key, names, n=1, cutoff=0.6)
    if close:
        hint = f"did you mean '{parent + '.' if parent else ''}{close[0]}'?"
    else:  # perhaps the key lives in another section
        elsewhere = [k for k in all_keys() if k.endswith("." + key)]
        hint = (f"did you mean '{elsewhere[0]}'?" if elsewhere
                else f"valid keys here: {', '.join(names)}")
    raise ConfigError(f"unknown config key '{path}'; {hint}")


def _build(cls: type, raw: Any, prefix: str) -> Any:
    where = prefix.rstrip(".") or "the config"
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        raise ConfigError(f"'{where}' must be a mapping of keys, got {_show(raw)}")
    names = [f.name for f in dataclasses.fields(cls)]
    for key in raw:
        if key not in names:
            _unknown(f"{prefix}{key}", str(key), names)
    hints = _hints(cls)
    kwargs = {}
    for f in dataclasses.fields(cls):
        required = f.default is dataclasses.MISSING and \
            f.default_factory is dataclasses.MISSING
        if required and f.name not in raw:
            raise ConfigError(f"{prefix}{f.name} is required")
        if f.name in raw:
            kwargs[f.name] = _coerce(raw[f.name], hints[f.name], f"{prefix}{f.name}", f.metadata)
        elif dataclasses.is_dataclass(hints[f.name]):
            kwargs[f.name] = _build(hints[f.name], {}, f"{prefix}{f.name}.")
    return cls(**kwargs)


_FLOAT = re.compile(r"[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?")


def _coerce(value: Any, tp: Any, path: str, meta: Any = None) -> Any:
    if dataclasses.is_dataclass(tp):
        return _build(typing.cast(type, tp), value, path + ".")
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if origin in (Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        inner = [a for a in args if a is not type(None)]
        return _coerce(value, inner[0], path, meta) if len(inner) == 1 else value
    if origin is Literal:
        if value not in args:
            raise ConfigError(
                f"{path} must be one of: {', '.join(map(str, args))}; got {_show(value)}"
            )
        return value
    if origin is tuple and len(args) == 2 and args[1] is Ellipsis:  # tuple[X, ...]
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"{path} must be a list, got {_show(value)}")
        return tuple(_coerce(v, args[0], f"{path}[{i}]") for i, v in enumerate(value))
    if origin is tuple:
        if not isinstance(value, (list, tuple)) or len(value) != len(args):
            raise ConfigError(f"{path} must be a list of {len(args)} numbers, got {_show(value)}")
        return tuple(_coerce(v, a, f"{path}[{i}]") for i, (v, a) in enumerate(zip(value, args)))
    if tp is bool:
        if not isinstance(value, bool):
            raise ConfigError(f"{path} must be true or false, got {_show(value)}")
        return value
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"{path} must be an integer, got {_show(value)}")
    elif tp is float:
        if isinstance(value, str) and _FLOAT.fullmatch(value.strip()):
            value = float(value)  # YAML 1.1 reads 1e-4 (no dot) as a string
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(f"{path} must be a number, got {_show(value)}")
        value = float(value)
    elif tp is str:
        if not isinstance(value, str):
            raise ConfigError(f"{path} must be a string, got {_show(value)}")
    _check_range(value, path, meta or {})
    return value


def _check_range(value: Any, path: str, meta: Any) -> None:
    lo, hi = meta.get("lo"), meta.get("hi")
    if lo is not None and value < lo or hi is not None and value > hi:
        if hi is None:
            want = f">= {lo:g}"
        elif lo is None:
            want = f"<= {hi:g}"
        else:
            want = f"between {lo:g} and {hi:g}"
        raise ConfigError(f"{path} must be {want}, got {value!r}")


def _show(value: Any) -> str:
    return f"{type(value).__name__} {value!r}" if not isinstance(value, str) else repr(value)


# --------------------------------------------------------------------------- presets


def preset_names() -> list[str]:
    """Names of the example configs shipped with the package (``--preset NAME``)."""
    from importlib import resources

    folder = resources.files("seqattn") / "presets"
    return sorted(p.name[: -len(".yaml")] for p in folder.iterdir() if p.name.endswith(".yaml"))


def preset_path(name: str) -> Path:
    """The YAML file of a shipped preset; unknown names list the valid ones."""
    from importlib import resources

    names = preset_names()
    if name not in names:
        close = difflib.get_close_matches(name, names, n=1)
        hint = f"did you mean '{close[0]}'? " if close else ""
        raise ConfigError(f"unknown preset '{name}'; {hint}choose one of: {', '.join(names)}")
    return Path(str(resources.files("seqattn") / "presets" / f"{name}.yaml"))
