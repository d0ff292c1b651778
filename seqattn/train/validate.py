"""Validation during training: teacher-forced loss and perplexity, greedy BLEU and chrF."""

from __future__ import annotations

import math
from typing import Any

import torch

from seqattn.batching import bucket_batches
from seqattn.config import Config
from seqattn.data import iterate_batches, pad_sources
from seqattn.decode import greedy
from seqattn.train.loss import projected_loss_sums
from seqattn.vocab import EOS


@torch.no_grad()
def validate(model: Any, data: Any, cfg: Config, dev: torch.device) -> dict[str, float]:
    """Scores of ``model`` on ``data.valid``: loss and ppl per target token, BLEU and chrF."""
    model.eval()
    valid = data.valid
    loss = nll = 0.0
    tokens = 0
    batches = bucket_batches([len(s) for s in valid.src], [len(t) for t in valid.tgt],
                             cfg.training.batch_tokens, seed=None)
    for batch in iterate_batches(valid, batches):
        batch = batch.to(dev)
        features, _ = model(batch.src, batch.src_pad, batch.tgt_in, project=False)
        batch_loss, batch_nll = projected_loss_sums(features, model.output_layer(),
                                                    batch.tgt_out, cfg.training.label_smoothing)
        loss += batch_loss.item()
        nll += batch_nll.item()
        tokens += batch.n_tokens
    hyps = greedy_texts(model, valid.src, data.tgt_vocab, dev, cfg.training.batch_tokens,
                        cfg.decoding.max_len_a, cfg.decoding.max_len_b)
    bleu, chrf = corpus_scores(hyps, data.valid_ref)
    model.train()
    return {"loss": loss / tokens, "ppl": math.exp(min(nll / tokens, 50)), "bleu": bleu,
            "chrf": chrf}


def greedy_texts(model: Any, src_ids: list[list[int]], tgt_vocab: Any, dev: torch.device,
                 batch_tokens: int, max_len_a: float, max_len_b: int) -> list[str]:
    """Greedy translations of encoded sources (without eos), in input order."""
    out: list[str] = [""] * len(src_ids)
    lens = [len(s) for s in src_ids]
    for idx in bucket_batches(lens, lens, batch_tokens, seed=None):
        src, src_pad = pad_sources([src_ids[i] for i in idx])
        max_len = int(max_len_a * src.size(1) + max_len_b)
        tokens, _ = greedy(model, src.to(dev), src_pad.to(dev), max_len=max(max_len, 1))
        for row, i in zip(tokens.tolist(), idx):
            out[i] = tgt_vocab.decode(row[: row.index(EOS)] if EOS in row else row)
    return out


def corpus_scores(hyps: list[str], refs: list[str]) -> tuple[float, float]:
    """sacreBLEU BLEU and chrF with default settings."""
    from sacrebleu.metrics import BLEU, CHRF

    return BLEU().corpus_score(hyps, [refs]).score, CHRF().corpus_score(hyps, [refs]).score
