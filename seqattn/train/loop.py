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
import time
from contextlib import nullcontext
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import torch

from seqattn import checkpoint as ckpt
from seqattn.align.settings import AlignmentSettings
from seqattn.batching import bucket_batches
from seqattn.config import Config, dump_config, load_config
from seqattn.data import iterate_batches, lengths
from seqattn.device import BF16_SLOW, pick_device, slow_bf16
from seqattn.errors import ConfigError, DataError, Terminated
from seqattn.textio import atomic_write
from seqattn.train.distributed import barrier, distributed
from seqattn.train.finetune import init_model, with_init
from seqattn.train.guided import guided_view
from seqattn.train.loss import alignment_loss, projected_loss_sums
from seqattn.train.prepare import TrainData, prepare_data
from seqattn.train.schedule import Schedule, make_schedule
from seqattn.train.state import (
    Progress,
    check_out_dir,
    load_state,
    remove_stale_temporaries,
    sigterm_as_interrupt,
    trim_log,
)

log = logging.getLogger(__name__)
HIGHER_IS_BETTER = {"bleu": True, "chrf": True, "loss": False, "ppl": False}


class Reporter(Protocol):
    """Receives progress; the CLI draws it with Rich. The library itself never prints."""

    def encoding(self, name: str, done: int, total: int) -> None: ...
    def start(self, step: int, max_steps: int) -> None: ...
    def update(self, record: dict[str, Any]) -> None: ...
    def validated(self, record: dict[str, Any]) -> None: ...
    def close(self) -> None: ...


class _Silent:
    def encoding(self, name: str, done: int, total: int) -> None: ...
    def start(self, step: int, max_steps: int) -> None: ...
    def update(self, record: dict[str, Any]) -> None: ...
    def validated(self, record: dict[str, Any]) -> None: ...
    def close(self) -> None: ...


# --------------------------------------------------------------------------- the run


def train(cfg: Config, out: str | Path, resume: bool = False, device: str | None = None,
          reporter: Reporter | None = None) -> dict[str, Any]:
    """Train ``cfg`` into the model directory ``out``; returns the final summary record."""
    out = Path(out)
    rank, world = distributed(device or cfg.training.device)
    reporter = reporter if reporter is not None and rank == 0 else _Silent()
    cfg = with_init(cfg)  # fine-tuning: the model section and vocabulary of training.init_from
    cfg = check_out_dir(cfg, out, resume) if rank == 0 else cfg
    _check_batch_budget(cfg)
    guided_view(cfg)
    if world > 1:
        barrier()
        if resume:  # the stored model and data sections, this start's training and decoding
            cfg = replace(load_config(out / ckpt.CONFIG), training=cfg.training,
                          decoding=cfg.decoding)
    dev = pick_device(device or cfg.training.device, rank)
    if dev.type == "cuda" and dev.index is not None:  # each rank's own GPU is the current one
        torch.cuda.set_device(dev)  # (NCCL collectives use it); plain "cuda" has no index to set
    if cfg.training.precision == "fp16" and dev.type != "cuda":
        raise ConfigError(f"training.precision fp16 needs a CUDA device (training on {dev}); "
                          "use bf16 or fp32")
    torch.manual_seed(cfg.training.seed)
    if rank == 0:
        made = not out.exists()
        out.mkdir(parents=True, exist_ok=True)
        remove_stale_temporaries(out)
        try:
            data = prepare_data(cfg, out, reporter.encoding)
        except BaseException:
            if made and not any(out.iterdir()):  # a bad input: no empty run directory left
                out.rmdir()
            raise
        atomic_write(out / ckpt.CONFIG, lambda f: f.write(dump_config(cfg)))
    if world > 1:
        barrier()
        if rank != 0:
            data = prepare_data(cfg, out)
    model, optimizer, schedule, progress, scaler = _start(cfg, data, out, dev, resume, rank)
    meta: dict[str, Any] = {"src_vocab": len(data.src_vocab), "tgt_vocab": len(data.tgt_vocab),
                            "parameters": sum(p.numel() for p in model.parameters()),
                            "world_size": world}
    guided = guided_view(cfg)
    if guided is not None:  # the supervised head is the model's alignment view
        meta["alignment"] = AlignmentSettings(layer=guided[0], heads=str(guided[1]),
                                              shift=cfg.training.guided_shift,
                                              guided=True).as_dict()
    if rank == 0:
        log.info("%s model, %s parameters, on %s%s", cfg.model.arch,
                 f"{meta['parameters']:,}", dev, f" × {world} processes" if world > 1 else "")
    wrapped = model
    if world > 1:
        from torch.nn.parallel import DistributedDataParallel

        wrapped = DistributedDataParallel(model, device_ids=[dev] if dev.type == "cuda" else None)
    run = _Run(cfg, out, Trainable(model, wrapped, optimizer, schedule, scaler), data, progress,
               Workers(dev, rank, world), reporter, meta)
    try:
        with sigterm_as_interrupt():
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


def _start(cfg: Config, data: TrainData, out: Path, dev: torch.device, resume: bool,
           rank: int) -> tuple[Any, Any, Schedule, Progress, Any]:
    """The model, optimiser, schedule, progress and fp16's gradient scaler (else None): new,
    or restored from ``out``'s saved training state (``resume``; the log and kept checkpoints
    are cut back to that step)."""
    from seqattn.models import build_model

    model = build_model(cfg.model, len(data.src_vocab), len(data.tgt_vocab)).to(dev)
    optimizer = torch.optim.Adam(model.parameters(), lr=cfg.training.lr,
                                 betas=cfg.training.adam_betas,
                                 weight_decay=cfg.training.weight_decay)
    schedule, progress = make_schedule(cfg), Progress()
    # fp16 only (train() refuses it off CUDA); bf16 has fp32's range and needs no scaling
    scaler = torch.amp.GradScaler("cuda") if cfg.training.precision == "fp16" else None
    init = init_model(cfg)
    if init is not None and not resume:  # fine-tuning: the trained weights, a fresh optimiser
        ckpt.load_weights(model, init / ckpt.WEIGHTS, device=str(dev))
        log.info("starting from the weights of %s", init)
    if resume:
        load_state(out, model, optimizer, schedule, progress, dev, scaler, rank,
                   distributed()[1])
        log.info("resuming at step %d (epoch %d)", progress.step, progress.epoch)
        if rank == 0:
            trim_log(out, progress.step)
            for step, path in ckpt.step_checkpoints(out):  # from a run that went on unsaved
                if step > progress.step:
                    path.unlink(missing_ok=True)
    return model, optimizer, schedule, progress, scaler


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


@dataclass(frozen=True)
class Trainable:
    """What an update changes: the model (``wrapped`` by DDP under torchrun, else the model
    itself), its optimiser, the learning-rate schedule and fp16's gradient scaler (else None)."""

    model: Any
    wrapped: Any
    optimizer: Any
    schedule: Schedule
    scaler: Any = None


@dataclass(frozen=True)
class Workers:
    """Where the run computes: this process's device, its rank and the number of processes."""

    dev: torch.device
    rank: int = 0
    world: int = 1


class _Run:
    """One training run's moving parts; ``loop`` is the training loop."""

    def __init__(self, cfg: Config, out: Path, parts: Trainable, data: TrainData,
                 progress: Progress, workers: Workers, reporter: Reporter,
                 meta: dict[str, Any]):
        self.cfg, self.t, self.out = cfg, cfg.training, out
        self.model, self.wrapped = parts.model, parts.wrapped
        self.optimizer, self.schedule = parts.optimizer, parts.schedule
        self.progress, self.data = progress, data
        dev, world = workers.dev, workers.world
        self.dev, self.rank, self.world = dev, workers.rank, world
        self.reporter, self.meta = reporter, meta
        amp = {"bf16": torch.bfloat16, "fp16": torch.float16}.get(self.t.precision)
        # bf16 autocast on CPU too (fast where the CPU has AVX-512 BF16 or AMX); fp16: CUDA only
        self.amp_dtype = amp if dev.type == "cuda" or amp is torch.bfloat16 else None
        if self.amp_dtype is torch.bfloat16 and workers.rank == 0 and slow_bf16(dev):
            log.warning(BF16_SLOW)
        self.scaler = parts.scaler  # (fp16) its scale is saved with the training state
        self.per_step = self.t.accumulate * world
        self.guided = guided_view(cfg)
        self.tgt_lens = np.asarray(lengths(data.train.tgt))  # (N,) memory-mapped when stored

    def epoch_batches(self) -> list[Any]:
        c, seed = self.data.train, self.t.seed * 1000 + self.progress.epoch
        if self.data.parts is None:
            return bucket_batches(lengths(c.src), lengths(c.tgt), self.t.batch_tokens, seed=seed)
        from seqattn.store import epoch_sample

        sizes, weights = zip(*self.data.parts)                 # several corpora, weighted
        sample = epoch_sample(sizes, weights, seed)            # (this epoch's pairs,)
        src, tgt = np.asarray(lengths(c.src)), np.asarray(lengths(c.tgt))
        batches = bucket_batches(src[sample], tgt[sample], self.t.batch_tokens, seed=seed)
        return [sample[b] for b in batches]

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

    def update(self, step_batches: list[Any]) -> tuple[float, float, int]:
        """One optimiser step over this rank's batches; returns summed loss, NLL and tokens."""
        self.wrapped.train()
        c = self.data.train
        tokens = sum(int(self.tgt_lens[idx].sum()) + len(idx)  # + an eos each
                     for idx in step_batches)
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
                features, weights = self.wrapped(batch.src, batch.src_pad, batch.tgt_in,
                                                 need_weights=self.guided is not None,
                                                 project=False)          # (B, T, F)
                loss, nll = projected_loss_sums(features, self.model.output_layer(),
                                                batch.tgt_out, self.t.label_smoothing)
                del features  # the loss keeps what backward needs
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
        rng = self._random_states()
        if self.rank != 0:
            barrier()
            return self._early_stop_everywhere(False)
        from seqattn.train.validate import validate

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
        self.save(rng)
        stop = self.t.patience is not None and p.bad_validations >= self.t.patience
        if stop:
            log.info("early stopping: %s did not improve in %d validations", metric,
                     self.t.patience)
        if self.world > 1:
            barrier()
        return self._early_stop_everywhere(stop)

    def _early_stop_everywhere(self, stop: bool) -> bool:
        if self.world == 1:
            return stop
        import torch.distributed as dist

        flag = torch.tensor([1.0 if stop else 0.0], device=self.dev)
        dist.broadcast(flag, src=0)
        return bool(flag.item())

    def _random_states(self) -> list[dict[str, Any]] | None:
        """Every rank's random state (dropout), gathered to all ranks; None in one process."""
        if self.world == 1:
            return None
        import torch.distributed as dist

        mine = {"rng": torch.get_rng_state()}
        if self.dev.type == "cuda":
            mine["cuda_rng"] = torch.cuda.get_rng_state(self.dev)
        states: list[Any] = [None] * self.world
        dist.all_gather_object(states, mine)
        return states

    def save(self, rng_ranks: list[dict[str, Any]] | None = None) -> None:
        """The latest weights and everything --resume needs, each file written atomically
        (with ``rng_ranks``, each torchrun rank's random state, so each resumes exactly)."""
        state = {"model": self.model.state_dict(), "optimizer": self.optimizer.state_dict(),
                 "schedule": self.schedule.state(), "progress": self.progress.numbers(),
                 "rng": torch.get_rng_state()}
        if rng_ranks is not None:
            state["rng_ranks"] = rng_ranks
        if self.dev.type == "cuda":
            state["cuda_rng"] = torch.cuda.get_rng_state(self.dev)
        if self.scaler is not None:  # else a resumed fp16 run starts again at scale 2**16
            state["scaler"] = self.scaler.state_dict()
        ckpt.save_weights(self.model, self.out / ckpt.LAST_WEIGHTS)
        atomic_write(self.out / ckpt.TRAIN_STATE, lambda f: torch.save(state, f),
                          binary=True)

    def write_log(self, record: dict[str, Any]) -> None:
        if self.rank == 0:
            with open(self.out / ckpt.TRAIN_LOG, "a", encoding="utf-8") as f:
                f.write(json.dumps(record) + "\n")
