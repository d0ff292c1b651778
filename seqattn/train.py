"""Training: data, optimiser, schedule, validation, checkpoints, resume and data parallelism.

Device and parallelism live here, never in the models. Under ``torchrun`` each process reads
its rank from the environment, trains on its share of every step's batches, and only rank 0
logs and writes.

One optimiser step, as pseudo-code::

    batches = the step's accumulate × world_size batches (this rank takes every world-th one)
    for batch in this rank's share: loss_sum(batch).backward()      # sums, not means
    grads *= world_size / (target tokens of the whole step, all ranks)  # token-normalised
    clip; lr = schedule(step); adam.step()
"""

from __future__ import annotations

import json
import logging
import math
import os
import pickle
import signal
import threading
import time
from contextlib import nullcontext
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Protocol

import torch

from seqattn import checkpoint as ckpt
from seqattn.config import Config, dump_config, load_config
from seqattn.data import (
    PAD,
    Corpus,
    Vocab,
    bucket_batches,
    encode_corpus,
    iterate_batches,
    read_parallel,
    train_spm,
)
from seqattn.device import pick_device
from seqattn.errors import CheckpointError, ConfigError, DataError, Terminated
from seqattn.guided import alignment_loss, read_pharaoh

log = logging.getLogger(__name__)
HIGHER_IS_BETTER = {"bleu": True, "chrf": True, "loss": False, "ppl": False}


class Reporter(Protocol):
    """Receives progress; the CLI draws it with Rich. The library itself never prints."""

    def start(self, step: int, max_steps: int) -> None: ...
    def update(self, record: dict[str, Any]) -> None: ...
    def validated(self, record: dict[str, Any]) -> None: ...
    def close(self) -> None: ...


class _Silent:
    def start(self, step: int, max_steps: int) -> None: ...
    def update(self, record: dict[str, Any]) -> None: ...
    def validated(self, record: dict[str, Any]) -> None: ...
    def close(self) -> None: ...


# --------------------------------------------------------------------------- schedule


@dataclass
class Schedule:
    """Learning rate by step; ``plateau`` also decays on validation (state is plain numbers)."""

    kind: str
    lr: float
    warmup: int
    d_model: int
    factor: float = 0.5
    patience: int = 3
    min_lr: float = 0.0
    scale: float = 1.0
    bad: int = 0
    best: float | None = None

    def rate(self, step: int) -> float:
        step = max(step, 1)
        warm = min(1.0, step / self.warmup) if self.warmup else 1.0
        if self.kind == "inverse_sqrt":
            rate = self.lr * (min(warm, math.sqrt(self.warmup / step)) if self.warmup
                              else 1 / math.sqrt(step))
        elif self.kind == "noam":
            rate = self.lr * self.d_model ** -0.5 * min(step ** -0.5,
                                                        step * max(self.warmup, 1) ** -1.5)
        else:  # constant, plateau: linear warmup, then constant (times the plateau scale)
            rate = self.lr * warm * self.scale
        return max(rate, self.min_lr) if self.kind == "plateau" else rate

    def observe(self, value: float, higher_is_better: bool) -> None:
        """Plateau decay: after ``patience`` validations without improvement, scale by factor."""
        if self.kind != "plateau":
            return
        better = self.best is None or (value > self.best if higher_is_better else value < self.best)
        if better:
            self.best, self.bad = value, 0
        else:
            self.bad += 1
            if self.bad > self.patience:
                self.scale *= self.factor
                self.bad = 0

    def state(self) -> dict[str, float]:
        return {"scale": self.scale, "bad": self.bad,
                "best": float("nan") if self.best is None else self.best}

    def load(self, state: dict[str, Any]) -> None:
        self.scale, self.bad = float(state["scale"]), int(state["bad"])
        self.best = None if math.isnan(float(state["best"])) else float(state["best"])


def make_schedule(cfg: Config) -> Schedule:
    t = cfg.training
    return Schedule(t.schedule, t.lr, t.warmup_steps, cfg.model.hidden_size, t.plateau_factor,
                    t.plateau_patience, t.min_lr)


# --------------------------------------------------------------------------- loss


def loss_sums(logits: torch.Tensor, target: torch.Tensor, smoothing: float
              ) -> tuple[torch.Tensor, torch.Tensor]:
    """Label-smoothed cross-entropy and plain NLL, both summed over real (non-pad) tokens.

    Smoothing as in Szegedy et al. (2016): (1 - ε) · NLL + ε · mean over the vocabulary of
    -log p. Shapes: logits (B, T, V), target (B, T) -> two scalars. The gradient reaches
    ``logits`` through the smoothed loss only (the NLL is for reporting).
    """
    return _SmoothedCrossEntropy.apply(logits, target, smoothing)


class _SmoothedCrossEntropy(torch.autograd.Function):
    """One fused backward: d loss / d logits = keep · (softmax - (1 - ε) onehot - ε / V).

    Autograd's composite of log_softmax, gather and mean makes about three extra passes over
    the (B, T, V) logits; on a CPU the loss was a fifth of a Transformer training step.
    """

    @staticmethod
    def forward(ctx: Any, logits: torch.Tensor, target: torch.Tensor,
                smoothing: float) -> tuple[torch.Tensor, torch.Tensor]:
        wide = logits if logits.dtype in (torch.float32, torch.float64) else logits.float()
        log_probs = wide.log_softmax(dim=-1)                             # (B, T, V)
        keep = target != PAD                                             # (B, T)
        nll = -log_probs.gather(-1, target.unsqueeze(-1)).squeeze(-1)   # (B, T)
        nll_sum = nll.masked_select(keep).sum()
        loss = nll_sum.clone()
        if smoothing:
            uniform = -log_probs.mean(dim=-1).masked_select(keep).sum()
            loss = (1 - smoothing) * nll_sum + smoothing * uniform
        ctx.save_for_backward(log_probs, target, keep)
        ctx.smoothing, ctx.in_dtype = smoothing, logits.dtype
        ctx.mark_non_differentiable(nll_sum)
        return loss, nll_sum

    @staticmethod
    def backward(ctx: Any, grad_loss: torch.Tensor, _grad_nll: torch.Tensor) -> tuple[Any, ...]:
        log_probs, target, keep = ctx.saved_tensors
        eps, V = ctx.smoothing, log_probs.size(-1)
        grad = log_probs.exp()                                           # softmax (B, T, V)
        if eps:
            grad.sub_(eps / V)
        grad.scatter_add_(-1, target.unsqueeze(-1),
                          torch.full_like(target, -(1 - eps), dtype=grad.dtype).unsqueeze(-1))
        grad.mul_((keep * grad_loss).unsqueeze(-1).to(grad.dtype))
        return grad.to(ctx.in_dtype), None, None


# --------------------------------------------------------------------------- data


@dataclass
class TrainData:
    src_vocab: Vocab
    tgt_vocab: Vocab
    train: Corpus
    valid: Corpus
    valid_src: list[str] = field(default_factory=list)   # raw text, for BLEU
    valid_ref: list[str] = field(default_factory=list)


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
    ckpt.atomic_write(dst, lambda f: f.write(data), binary=True)


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


def prepare_data(cfg: Config, out: Path) -> TrainData:
    d = cfg.data
    paths = {k: _require(getattr(d, k), f"data.{k}")
             for k in ("train_src", "train_tgt", "valid_src", "valid_tgt")}
    train_pairs = read_parallel(paths["train_src"], paths["train_tgt"])
    valid_pairs = read_parallel(paths["valid_src"], paths["valid_tgt"])
    word_links = None  # read before any work, so a bad file stops the run at once
    if cfg.training.guided_alignment:
        word_links = read_pharaoh(cfg.training.guided_alignment, len(train_pairs))
    prepare_vocab(cfg, out, paths["train_src"], paths["train_tgt"])
    src_path, tgt_path = ckpt.spm_paths(out)
    src_vocab = Vocab(src_path)
    tgt_vocab = src_vocab if src_path == tgt_path else Vocab(tgt_path)
    train = encode_corpus(train_pairs, src_vocab, tgt_vocab, d.max_len, word_links)
    valid = encode_corpus(valid_pairs, src_vocab, tgt_vocab, None)
    log.info("training pairs: %d kept, %d empty skipped, %d longer than %d pieces skipped",
             len(train), train.skipped_empty, train.skipped_long, d.max_len)
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
                        f"'{paths['train_tgt']}' (all empty or longer than data.max_len)")
    if not len(valid):
        raise DataError(f"no usable validation pairs in '{paths['valid_src']}'")
    kept = [(s, t) for s, t in valid_pairs if s.strip() and t.strip()]
    return TrainData(src_vocab, tgt_vocab, train, valid, [s for s, _ in kept],
                     [t for _, t in kept])


# --------------------------------------------------------------------------- run state


@dataclass
class Progress:
    """Where a run stands; saved in the training state so --resume continues exactly."""

    step: int = 0
    epoch: int = 0
    position: int = 0          # batches of the current epoch already consumed (all ranks)
    best: float | None = None
    bad_validations: int = 0
    target_tokens: int = 0
    seconds: float = 0.0

    def numbers(self) -> dict[str, float]:
        return {"step": self.step, "epoch": self.epoch, "position": self.position,
                "best": float("nan") if self.best is None else self.best,
                "bad_validations": self.bad_validations, "target_tokens": self.target_tokens,
                "seconds": self.seconds}

    @classmethod
    def from_numbers(cls, n: dict[str, Any]) -> Progress:
        best = float(n["best"])
        return cls(int(n["step"]), int(n["epoch"]), int(n["position"]),
                   None if math.isnan(best) else best, int(n["bad_validations"]),
                   int(n["target_tokens"]), float(n["seconds"]))


def _distributed() -> tuple[int, int]:
    """(rank, world size); starts the process group when launched by torchrun."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world == 1:
        return 0, 1
    import torch.distributed as dist

    if not dist.is_initialized():
        backend = "nccl" if torch.cuda.is_available() else "gloo"
        dist.init_process_group(backend)
    return dist.get_rank(), world


# --------------------------------------------------------------------------- the run


def train(cfg: Config, out: str | Path, resume: bool = False, device: str | None = None,
          reporter: Reporter | None = None) -> dict[str, Any]:
    """Train ``cfg`` into the model directory ``out``; returns the final summary record."""
    out = Path(out)
    rank, world = _distributed()
    reporter = reporter if reporter is not None and rank == 0 else _Silent()
    cfg = _check_out_dir(cfg, out, resume) if rank == 0 else cfg
    _check_batch_budget(cfg)
    guided_view(cfg)
    if world > 1:
        _barrier()
        if resume:  # the stored model and data sections, this start's training and decoding
            cfg = replace(load_config(out / ckpt.CONFIG), training=cfg.training,
                          decoding=cfg.decoding)
    dev = pick_device(device or cfg.training.device, rank)
    if cfg.training.precision == "fp16" and dev.type != "cuda":
        raise ConfigError(f"training.precision fp16 needs a CUDA device (training on {dev}); "
                          "use bf16 or fp32")
    torch.manual_seed(cfg.training.seed)
    if rank == 0:
        out.mkdir(parents=True, exist_ok=True)
        _remove_stale_temporaries(out)
        data = prepare_data(cfg, out)
        ckpt.atomic_write(out / ckpt.CONFIG, lambda f: f.write(dump_config(cfg)))
    if world > 1:
        _barrier()
        if rank != 0:
            data = prepare_data(cfg, out)
    from seqattn.models import build_model

    model = build_model(cfg.model, len(data.src_vocab), len(data.tgt_vocab)).to(dev)
    optimizer = torch.optim.Adam(model.parameters(), lr=cfg.training.lr,
                                 betas=cfg.training.adam_betas,
                                 weight_decay=cfg.training.weight_decay)
    schedule, progress = make_schedule(cfg), Progress()
    if resume:
        _load_state(out, model, optimizer, schedule, progress, dev)
        log.info("resuming at step %d (epoch %d)", progress.step, progress.epoch)
        if rank == 0:
            _trim_log(out, progress.step)
            for step, path in ckpt.step_checkpoints(out):  # from a run that went on unsaved
                if step > progress.step:
                    path.unlink(missing_ok=True)
    meta: dict[str, Any] = {"src_vocab": len(data.src_vocab), "tgt_vocab": len(data.tgt_vocab),
                            "parameters": sum(p.numel() for p in model.parameters())}
    guided = guided_view(cfg)
    if guided is not None:  # the supervised head is the model's alignment view
        meta["alignment"] = {"layer": guided[0], "heads": str(guided[1]),
                             "shift": cfg.training.guided_shift, "guided": True}
    if rank == 0:
        log.info("%s model, %s parameters, on %s%s", cfg.model.arch,
                 f"{meta['parameters']:,}", dev, f" × {world} processes" if world > 1 else "")
    wrapped = model
    if world > 1:
        from torch.nn.parallel import DistributedDataParallel

        wrapped = DistributedDataParallel(model, device_ids=[dev] if dev.type == "cuda" else None)
    run = _Run(cfg, out, model, wrapped, optimizer, schedule, progress, data, dev, rank, world,
               reporter, meta)
    try:
        with _sigterm_as_interrupt():
            return run.loop()
    except (KeyboardInterrupt, Terminated) as e:
        if rank == 0:
            run.save()
            log.warning("%s: checkpoint saved at step %d; continue with --resume",
                        "terminated" if isinstance(e, Terminated) else "interrupted",
                        progress.step)
        raise
    finally:
        reporter.close()


class _sigterm_as_interrupt:  # noqa: N801  (used as a context manager)
    """While training, SIGTERM raises :class:`Terminated` so that a
    ``kill``, a scheduler's pre-emption or the end of a background job saves a checkpoint the
    way Ctrl-C does. Only the main thread can install handlers; elsewhere this does nothing."""

    def __enter__(self) -> None:
        self.installed = False  # only over the default action: an ignored SIGTERM stays ignored
        if threading.current_thread() is threading.main_thread() and \
                signal.getsignal(signal.SIGTERM) is signal.SIG_DFL:
            signal.signal(signal.SIGTERM, self._raise)
            self.installed = True

    @staticmethod
    def _raise(signum: int, frame: Any) -> None:
        raise Terminated()

    def __exit__(self, *exc: object) -> None:
        if self.installed:
            signal.signal(signal.SIGTERM, signal.SIG_DFL)


def _barrier() -> None:
    import torch.distributed as dist

    dist.barrier()


def _remove_stale_temporaries(out: Path) -> None:
    """An atomic write killed midway leaves a hidden ``.NAME.XXXXXXXX.tmp`` beside NAME; a new
    start of the run removes those of its own files (and nothing else)."""
    for name in (ckpt.CONFIG, ckpt.WEIGHTS, ckpt.META, ckpt.LAST_WEIGHTS, ckpt.TRAIN_STATE,
                 ckpt.TRAIN_LOG, ckpt.JOINT_SPM, ckpt.SRC_SPM, ckpt.TGT_SPM):
        for stale in out.glob(f".{name}.*.tmp"):
            stale.unlink(missing_ok=True)
    for stale in (out / ckpt.CHECKPOINTS).glob(".step-*.tmp"):
        stale.unlink(missing_ok=True)


def guided_view(cfg: Config) -> tuple[int, int] | None:
    """(decoder layer, head) that guided alignment supervises, or None when it is off."""
    t, m = cfg.training, cfg.model
    if not t.guided_alignment:
        return None
    layers, heads = (m.dec_layers, m.heads) if m.arch == "transformer" else (1, 1)
    layer = max(layers - 2, 0) if t.guided_layer is None else t.guided_layer
    if layer >= layers:
        raise ConfigError(f"training.guided_layer ({layer}) is out of range: the model has "
                          f"{layers} decoder layer(s), 0..{layers - 1}")
    if t.guided_head >= heads:
        raise ConfigError(f"training.guided_head ({t.guided_head}) is out of range: the model "
                          f"has {heads} head(s), 0..{heads - 1}")
    return layer, t.guided_head


def _check_batch_budget(cfg: Config) -> None:
    """Refuse, before any work, a batch budget that a kept training pair could exceed.

    A pair is kept when both sides have at most ``data.max_len`` pieces (eos included), and
    it costs that many padded tokens; with ``batch_tokens`` below ``max_len`` such a pair would
    get an over-budget batch of its own, so memory would no longer be bounded by
    ``batch_tokens``.
    """
    d, t = cfg.data, cfg.training
    if d.max_len > t.batch_tokens:
        raise ConfigError(f"training.batch_tokens ({t.batch_tokens}) is smaller than "
                          f"data.max_len ({d.max_len}): a pair of max_len pieces would not fit "
                          "in a batch; raise training.batch_tokens or lower data.max_len")


def _check_out_dir(cfg: Config, out: Path, resume: bool) -> Config:
    """Refuse to overwrite a model; on resume, return the stored config (plus allowed changes)."""
    if out.exists() and not out.is_dir():
        raise DataError(f"--out '{out}' is a file; give a directory")
    above = next((p for p in out.parents if p.exists()), None)
    if above is not None and not above.is_dir():
        raise DataError(f"--out '{out}': '{above}' is a file, not a directory")
    state = out / ckpt.TRAIN_STATE
    if not resume:
        if (out / ckpt.META).exists() or state.exists():
            raise DataError(f"'{out}' already holds a model; pass --resume to continue it or "
                            "choose another --out")
        return cfg
    if not state.is_file():
        hint = "" if (out / ckpt.META).exists() else \
            "; if a run stopped there before its first checkpoint, start it again without --resume"
        raise CheckpointError(f"nothing to resume in '{out}' ({ckpt.TRAIN_STATE} is missing)"
                              f"{hint}")
    stored = load_config(out / ckpt.CONFIG)
    if stored.model != cfg.model or stored.data != cfg.data:
        changed = "model" if stored.model != cfg.model else "data"
        raise ConfigError(f"--resume cannot change the {changed} section of the run in '{out}';"
                          " only training and decoding settings may change")
    return replace(stored, training=cfg.training, decoding=cfg.decoding)


def _trim_log(out: Path, step: int) -> None:
    """After a crash the log can run ahead of the checkpoint, and end in half a line: keep
    the records up to the step the run resumes from, so it never shows a step twice."""
    path = out / ckpt.TRAIN_LOG
    if not path.exists():
        return
    kept = []
    for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
        try:
            if int(json.loads(line).get("step", 0)) <= step:
                kept.append(line + "\n")
        except (ValueError, TypeError, AttributeError):  # half a line, or not ours
            continue
    ckpt.atomic_write(path, lambda f: f.write("".join(kept)))


def _load_state(out: Path, model: Any, optimizer: Any, schedule: Schedule, progress: Progress,
                dev: torch.device) -> None:
    path = out / ckpt.TRAIN_STATE
    try:
        state = torch.load(path, map_location=dev, weights_only=True)
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        schedule.load(state["schedule"])
        restored = Progress.from_numbers(state["progress"])
        torch.set_rng_state(state["rng"].cpu())
        if dev.type == "cuda" and "cuda_rng" in state:
            torch.cuda.set_rng_state(state["cuda_rng"].cpu(), dev)
    except FileNotFoundError:
        raise CheckpointError(f"'{path}' is missing; nothing to resume") from None
    except (RuntimeError, KeyError, ValueError, EOFError, pickle.UnpicklingError) as e:
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise CheckpointError(f"training state '{path}' is corrupt or not seqattn's ({first})") \
            from None
    for name, value in vars(restored).items():
        setattr(progress, name, value)


class _Run:
    """One training run's moving parts; ``loop`` is the training loop."""

    def __init__(self, cfg: Config, out: Path, model: Any, wrapped: Any, optimizer: Any,
                 schedule: Schedule, progress: Progress, data: TrainData, dev: torch.device,
                 rank: int, world: int, reporter: Reporter, meta: dict[str, Any]):
        self.cfg, self.t, self.out = cfg, cfg.training, out
        self.model, self.wrapped, self.optimizer = model, wrapped, optimizer
        self.schedule, self.progress, self.data, self.dev = schedule, progress, data, dev
        self.rank, self.world, self.reporter, self.meta = rank, world, reporter, meta
        amp = {"bf16": torch.bfloat16, "fp16": torch.float16}.get(self.t.precision)
        # bf16 autocast on CPU too (fast where the CPU has AVX-512 BF16 or AMX); fp16: CUDA only
        self.amp_dtype = amp if dev.type == "cuda" or amp is torch.bfloat16 else None
        self.scaler = torch.amp.GradScaler("cuda") if self.amp_dtype is torch.float16 else None
        self.per_step = self.t.accumulate * world
        self.guided = guided_view(cfg)

    def epoch_batches(self) -> list[list[int]]:
        c = self.data.train
        return bucket_batches([len(s) for s in c.src], [len(t) for t in c.tgt],
                              self.t.batch_tokens, seed=self.t.seed * 1000 + self.progress.epoch)

    def loop(self) -> dict[str, Any]:
        p, t = self.progress, self.t
        batches = self.epoch_batches()
        if len(batches) < self.per_step:
            raise DataError(f"the training data fill only {len(batches)} batches of "
                            f"{t.batch_tokens} tokens, fewer than one step needs "
                            f"({self.per_step}); lower training.batch_tokens or accumulate")
        if self.rank == 0 and not (self.out / ckpt.TRAIN_STATE).exists():
            self.save()  # a first checkpoint at once: a run killed before it validates resumes
        self.reporter.start(p.step, t.max_steps)
        window = {"loss": 0.0, "nll": 0.0, "tokens": 0, "align": 0.0, "align_rows": 0.0,
                  "start": time.perf_counter()}
        stop = False
        # while step < max_steps: take this step's batches (next epoch when short), update,
        # log every log_every steps, validate + checkpoint every valid_every steps
        while p.step < t.max_steps and not stop:
            if p.position + self.per_step > len(batches):
                if t.max_epochs is not None and p.epoch + 1 >= t.max_epochs:
                    break
                p.epoch, p.position = p.epoch + 1, 0
                batches = self.epoch_batches()
            step_batches = batches[p.position + self.rank: p.position + self.per_step: self.world]
            started = time.perf_counter()
            loss, nll, tokens = self.update(step_batches)
            p.seconds += time.perf_counter() - started
            p.position += self.per_step
            p.step += 1
            p.target_tokens += tokens
            window["loss"] += loss
            window["nll"] += nll
            window["align"] += self.align_sum
            window["align_rows"] += self.align_rows
            window["tokens"] += tokens
            if p.step % t.log_every == 0 or p.step == t.max_steps:
                self.log_window(window)
            if p.step % t.valid_every == 0 or p.step == t.max_steps:
                stop = self.validate_and_save()
        if p.step % t.valid_every and p.step != t.max_steps:  # stopped early: final checkpoint
            self.validate_and_save()
        summary = {"kind": "done", "step": p.step, "best": p.best, "metric": t.best_metric,
                   "seconds": round(p.seconds, 1), "target_tokens": p.target_tokens}
        self.write_log(summary)
        return summary

    def update(self, step_batches: list[list[int]]) -> tuple[float, float, int]:
        """One optimiser step over this rank's batches; returns summed loss, NLL and tokens."""
        self.wrapped.train()
        c = self.data.train
        tokens = sum(sum(len(c.tgt[i]) + 1 for i in idx) for idx in step_batches)
        total = torch.tensor(float(tokens), device=self.dev)
        if self.world > 1:
            import torch.distributed as dist

            dist.all_reduce(total)
        loss_sum = nll_sum = 0.0
        self.align_sum, self.align_rows = 0.0, 0.0  # this step's alignment loss, for the log
        for k, batch in enumerate(iterate_batches(c, step_batches)):
            batch = batch.to(self.dev)
            last = k == len(step_batches) - 1
            sync = self.wrapped.no_sync() if self.world > 1 and not last else nullcontext()
            with sync, torch.autocast(self.dev.type, dtype=self.amp_dtype,
                                      enabled=self.amp_dtype is not None):
                logits, weights = self.wrapped(batch.src, batch.src_pad, batch.tgt_in,
                                               need_weights=self.guided is not None)
                loss, nll = loss_sums(logits, batch.tgt_out, self.t.label_smoothing)
                translation_loss = loss.item()  # what the log reports as the loss
                if self.guided is not None and batch.gold is not None and weights is not None:
                    layer, head = self.guided
                    gold = batch.gold                                       # (B, T, S)
                    if self.t.guided_shift:  # piece k is read at row k + 1 (shift-att)
                        gold = torch.cat([torch.zeros_like(gold[:, :1]), gold[:, :-1]], dim=1)
                    align = alignment_loss(weights[:, layer, head], gold)
                    self.align_sum += align.item()
                    self.align_rows += gold.sum().item()
                    loss = loss + self.t.guided_weight * align
            (self.scaler.scale(loss) if self.scaler else loss).backward()
            loss_sum += translation_loss
            nll_sum += nll.item()
        if self.scaler:
            self.scaler.unscale_(self.optimizer)
        scale = self.world / total.item()   # DDP averages gradients over ranks; undo, then /tokens
        for param in self.model.parameters():
            if param.grad is not None:
                param.grad.mul_(scale)
        if self.t.clip_norm is not None:
            torch.nn.utils.clip_grad_norm_(self.model.parameters(), self.t.clip_norm)
        lr = self.schedule.rate(self.progress.step + 1)
        for group in self.optimizer.param_groups:
            group["lr"] = lr
        if self.scaler:
            self.scaler.step(self.optimizer)
            self.scaler.update()
        else:
            self.optimizer.step()
        self.optimizer.zero_grad(set_to_none=True)
        if self.world > 1:  # report the whole step, not this rank's share
            import torch.distributed as dist

            sums = torch.tensor([loss_sum, nll_sum, self.align_sum, self.align_rows],
                                device=self.dev)
            dist.all_reduce(sums)
            loss_sum, nll_sum, self.align_sum, self.align_rows = sums.tolist()
        return loss_sum, nll_sum, int(total.item())

    def log_window(self, window: dict[str, float]) -> None:
        elapsed = max(time.perf_counter() - window["start"], 1e-9)
        tokens = max(window["tokens"], 1)
        record = {"kind": "train", "step": self.progress.step, "epoch": self.progress.epoch,
                  "loss": window["loss"] / tokens, "ppl": math.exp(min(window["nll"] / tokens, 50)),
                  "tokens_per_s": window["tokens"] / elapsed, "target_tokens": window["tokens"],
                  "seconds": elapsed,
                  "lr": self.optimizer.param_groups[0]["lr"]}
        if self.guided is not None:  # mean cross-entropy of a supervised attention row
            record["align_loss"] = window["align"] / max(window["align_rows"], 1.0)
        self.write_log(record)
        self.reporter.update(record)
        window.update(loss=0.0, nll=0.0, tokens=0, align=0.0, align_rows=0.0,
                      start=time.perf_counter())

    def validate_and_save(self) -> bool:
        """Validate, keep the best weights, checkpoint; True when early stopping says stop."""
        if self.rank != 0:
            _barrier()
            return self._early_stop_everywhere(False)
        from seqattn.validate import validate

        scores = validate(self.model, self.data, self.cfg, self.dev)
        metric = self.t.best_metric
        value, higher = scores[metric], HIGHER_IS_BETTER[metric]
        p = self.progress
        improved = p.best is None or (value > p.best if higher else value < p.best)
        if improved:  # seqattn.json first: model.safetensors never exists without it
            p.best, p.bad_validations = value, 0
            ckpt.write_meta(self.out, {**self.meta, "step": p.step, "scores": scores})
            ckpt.save_weights(self.model, self.out / ckpt.WEIGHTS)
        else:
            p.bad_validations += 1
        if self.t.keep_checkpoints:
            ckpt.keep_step_checkpoint(self.model, self.out, p.step, self.t.keep_checkpoints)
        self.schedule.observe(value, higher)
        record = {"kind": "valid", "step": p.step, **scores, "best": p.best,
                  "improved": improved}
        self.write_log(record)
        self.reporter.validated(record)
        self.save()
        stop = self.t.patience is not None and p.bad_validations >= self.t.patience
        if stop:
            log.info("early stopping: %s did not improve in %d validations", metric,
                     self.t.patience)
        if self.world > 1:
            _barrier()
        return self._early_stop_everywhere(stop)

    def _early_stop_everywhere(self, stop: bool) -> bool:
        if self.world == 1:
            return stop
        import torch.distributed as dist

        flag = torch.tensor([1.0 if stop else 0.0], device=self.dev)
        dist.broadcast(flag, src=0)
        return bool(flag.item())

    def save(self) -> None:
        """The latest weights and everything --resume needs, each file written atomically."""
        state = {"model": self.model.state_dict(), "optimizer": self.optimizer.state_dict(),
                 "schedule": self.schedule.state(), "progress": self.progress.numbers(),
                 "rng": torch.get_rng_state()}
        if self.dev.type == "cuda":
            state["cuda_rng"] = torch.cuda.get_rng_state(self.dev)
        ckpt.save_weights(self.model, self.out / ckpt.LAST_WEIGHTS)
        ckpt.atomic_write(self.out / ckpt.TRAIN_STATE, lambda f: torch.save(state, f),
                          binary=True)

    def write_log(self, record: dict[str, Any]) -> None:
        if self.rank == 0:
            with open(self.out / ckpt.TRAIN_LOG, "a", encoding="utf-8") as f:
                f.write(json.dumps(record) + "\n")
