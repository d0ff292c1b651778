"""The data of a run: sentencepiece model(s) copied or trained into the run directory, the
training and validation pairs encoded, and guided-alignment links read and mapped to pieces."""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from seqattn import checkpoint as ckpt
from seqattn.config import Config
from seqattn.data import Corpus, check_pharaoh, encode_corpus, iter_pharaoh, read_parallel
from seqattn.errors import CheckpointError, ConfigError, DataError
from seqattn.store import checked_lines, joined, stored_corpus
from seqattn.textio import atomic_write
from seqattn.vocab import Vocab, train_spm

log = logging.getLogger(__name__)


@dataclass
class TrainData:
    src_vocab: Vocab
    tgt_vocab: Vocab
    train: Corpus
    valid: Corpus
    valid_src: list[str] = field(default_factory=list)   # raw text, for BLEU
    valid_ref: list[str] = field(default_factory=list)
    #: with data.corpora: each corpus's kept pairs and weight (the main one first, weight 1)
    parts: list[tuple[int, float]] | None = None


def _require(path: str | None, key: str) -> Path:
    if not path:
        raise ConfigError(f"{key} is not set; give it in the config or with --set {key}=FILE")
    if not Path(path).is_file():
        what = "is a directory" if Path(path).is_dir() else "does not exist"
        raise DataError(f"{key} '{path}' {what}")
    return Path(path)


def _copy_atomic(src: Path, dst: Path) -> None:
    """Copy ``src`` to ``dst`` atomically: a killed run never leaves half a sentencepiece model
    that the next start would take for a finished one."""
    data = src.read_bytes()
    atomic_write(dst, lambda f: f.write(data), binary=True)


def prepare_vocab(cfg: Config, out: Path, train_src: Path, train_tgt: Path) -> None:
    """Copy or train the sentencepiece model(s) into ``out`` (nothing to do if present)."""
    d = cfg.data
    try:
        ckpt.spm_paths(out)
        return
    except CheckpointError:
        pass
    if d.vocab == "joint":
        if d.spm_model:
            _copy_atomic(_require(d.spm_model, "data.spm_model"), out / ckpt.JOINT_SPM)
        else:
            log.info("training a joint %s sentencepiece model (%d pieces)", d.spm_type,
                     d.vocab_size)
            train_spm([train_src, train_tgt], out / ckpt.JOINT_SPM.removesuffix(".model"),
                      d.vocab_size, d.spm_type)
        return
    for side, given, text, name in (("src", d.src_spm_model, train_src, ckpt.SRC_SPM),
                                    ("tgt", d.tgt_spm_model, train_tgt, ckpt.TGT_SPM)):
        if given:
            _copy_atomic(_require(given, f"data.{side}_spm_model"), out / name)
        else:
            log.info("training the %s sentencepiece model (%d pieces)", side, d.vocab_size)
            train_spm([text], out / name.removesuffix(".model"), d.vocab_size, d.spm_type)


#: the encoded training pairs (seqattn.store), reused by --resume and re-runs
CORPUS = "corpus"

#: the links seqattn makes itself (training.guided_alignment: eflomal), kept in the run directory
GUIDED_LINKS = "guided.eflomal.txt"


def guided_links_file(cfg: Config, out: Path, src: Path, tgt: Path) -> Path | None:
    """The Pharaoh file guided alignment reads: the one configured, or, with ``eflomal``,
    links seqattn makes with eflomal once and keeps in the run directory (reused on resume).
    The Moses tokenizer's language is each training file's suffix when it is a language code
    (``train.de``), else English."""
    given = cfg.training.guided_alignment
    if not given or given != "eflomal":
        return Path(given) if given else None
    from seqattn.align.statistical import eflomal_links, require_extra
    from seqattn.textio import language_of

    path = out / GUIDED_LINKS
    if path.is_file():
        return path
    require_extra()  # before anything is computed
    pairs = read_parallel(src, tgt)  # eflomal needs the whole corpus in memory anyway
    langs = [language_of(f) for f in (src, tgt)]
    log.info("guided alignment: running eflomal on %d training pairs (%s-%s)", len(pairs),
             *langs)
    lines = eflomal_links([s for s, _ in pairs], [t for _, t in pairs], *langs)
    out.mkdir(parents=True, exist_ok=True)
    atomic_write(path, lambda f: f.write("".join(line + "\n" for line in lines)))
    return path


def prepare_data(cfg: Config, out: Path,
                 encoding: Callable[[str, int, int], None] | None = None) -> TrainData:
    """The run's vocabulary and data; ``encoding(name, pairs done, pairs in all)`` hears how
    far the encoding of each training file has gone (the CLI draws a bar)."""
    d = cfg.data
    paths = {k: _require(getattr(d, k), f"data.{k}")
             for k in ("train_src", "train_tgt", "valid_src", "valid_tgt")}
    valid_pairs = read_parallel(paths["valid_src"], paths["valid_tgt"])
    n_src, n_tgt = checked_lines(paths["train_src"]), checked_lines(paths["train_tgt"])
    if n_src != n_tgt:  # before any work (the pairs themselves are read as they are encoded)
        raise DataError(f"'{paths['train_src']}' has {n_src} lines but '{paths['train_tgt']}' "
                        f"has {n_tgt}; parallel files must have one line per sentence pair")
    if not n_src:
        raise DataError(f"'{paths['train_src']}' and '{paths['train_tgt']}' are empty")
    extra_lines = []
    for k, c in enumerate(d.corpora):  # every corpus checked before any work
        if cfg.training.guided_alignment:
            raise ConfigError("data.corpora and training.guided_alignment do not go together "
                              "yet: the links cover data.train_src only")
        extra = {side: _require(getattr(c, side), f"data.corpora[{k}].{side}")
                 for side in ("src", "tgt")}
        extra_lines.append(checked_lines(extra["src"]))
        if extra_lines[-1] != checked_lines(extra["tgt"]):
            raise DataError(f"data.corpora[{k}]: '{c.src}' and '{c.tgt}' have different "
                            "numbers of lines; parallel files must have one line per pair")
    word_links = None  # read before any work, so a bad file stops the run at once
    links_file = None
    if cfg.training.guided_alignment:
        links_file = guided_links_file(cfg, out, paths["train_src"], paths["train_tgt"])
        assert links_file is not None  # guided_alignment is set
        check_pharaoh(links_file, n_src)          # one pass now; read again as it is encoded
        word_links = iter_pharaoh(links_file)
    prepare_vocab(cfg, out, paths["train_src"], paths["train_tgt"])
    src_vocab, tgt_vocab = ckpt.load_vocabs(out)
    vocab_files = sorted({src_vocab.path, tgt_vocab.path})
    def told(name: str, total: int) -> Callable[[int], None] | None:
        return None if encoding is None else (lambda done: encoding(name, done, total))

    main = stored_corpus(out / CORPUS, paths["train_src"], paths["train_tgt"], src_vocab,
                         tgt_vocab, d.max_len, vocab_files, word_links, links_file, d.max_ratio,
                         told(paths["train_src"].name, n_src))
    extras = [stored_corpus(out / f"{CORPUS}-{k + 1}", Path(c.src), Path(c.tgt), src_vocab,
                            tgt_vocab, d.max_len, vocab_files, max_ratio=d.max_ratio,
                            progress=told(Path(c.src).name, n))
              for k, (c, n) in enumerate(zip(d.corpora, extra_lines))]
    train = joined([main, *extras])
    parts = None
    if extras:
        parts = [(len(main), 1.0)] + [(len(x), c.weight) for x, c in zip(extras, d.corpora)]
        for (n, w), c, x in zip(parts[1:], d.corpora, extras):
            log.info("corpus %s: %d pairs kept (%d empty, %d too long, %d beyond the ratio "
                     "skipped), weight %g: %d per epoch", c.src, n, x.skipped_empty,
                     x.skipped_long, x.skipped_ratio, w, round(w * n))
    valid = encode_corpus(valid_pairs, src_vocab, tgt_vocab, None)
    log.info("training pairs: %d kept, %d empty skipped, %d longer than %d pieces skipped%s",
             len(train), train.skipped_empty, train.skipped_long, d.max_len,
             "" if d.max_ratio is None else
             f", {train.skipped_ratio} with a length ratio above {d.max_ratio:g} skipped")
    if train.links is not None:
        log.info("guided alignment: %d pairs supervised, %d without links, %d whose links do "
                 "not fit their words (skipped)",
                 sum(1 for x in train.links if x), sum(1 for x in train.links if x == []),
                 train.unusable_links)
        if train.unusable_links > len(train) // 10:
            raise DataError(f"training.guided_alignment '{cfg.training.guided_alignment}': the "
                            f"links of {train.unusable_links} of {len(train)} pairs name words "
                            "their sentences do not have; was it made from other text (e.g. "
                            "tokenized)? It must index the whitespace words of the training files")
    if not len(train):
        raise DataError(f"no usable training pairs in '{paths['train_src']}' / "
                        f"'{paths['train_tgt']}' (all empty, longer than data.max_len or beyond "
                        "data.max_ratio)")
    if not len(valid):
        raise DataError(f"no usable validation pairs in '{paths['valid_src']}'")
    kept = [(s, t) for s, t in valid_pairs if s.strip() and t.strip()]
    return TrainData(src_vocab, tgt_vocab, train, valid, [s for s, _ in kept],
                     [t for _, t in kept], parts)
