"""Batched beam search, written only against the :class:`seqattn.models.Seq2Seq` interface.

Scoring follows GNMT (Wu et al. 2016): beams compete on summed log-probabilities, and a
finished hypothesis Y is ranked by ``log P(Y) / lp(Y)`` with
``lp(Y) = ((5 + |Y|) / 6) ** alpha`` (|Y| counts the end-of-sentence token; alpha = 0 turns the
penalty off). A sentence is done once ``beam_size`` hypotheses have finished (as in fairseq), or
at its maximum length, where end-of-sentence is forced. End-of-sentence is forbidden before
``min_len`` tokens.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from seqattn.models import BOS_ID, EOS_ID, Seq2Seq


@dataclass
class Hypothesis:
    """One finished output. ``weights`` (L, H, T, S) has one row per token, eos included."""

    tokens: list[int]              # without bos; ends with eos
    token_log_probs: list[float]
    log_prob: float                # sum of token_log_probs
    score: float                   # log_prob / length_penalty(len(tokens), alpha)
    weights: Tensor | None


def length_penalty(length: int, alpha: float) -> float:
    """GNMT's lp(Y) = ((5 + |Y|) / 6) ** alpha."""
    return ((5 + length) / 6) ** alpha


@dataclass
class _Beams:
    """The alive hypotheses of every sentence, flattened to (B * K) rows."""

    scores: Tensor            # (B, K) summed log-probabilities
    tokens: Tensor            # (B*K, t)
    log_probs: Tensor         # (B*K, t)
    weights: Tensor | None    # (B*K, L, H, t, S)


@torch.no_grad()
def beam_search(model: Seq2Seq, src: Tensor, src_pad: Tensor, beam_size: int,
                max_len: Tensor | int, n_best: int = 1, min_len: int = 0, alpha: float = 0.0,
                keep_weights: bool = True) -> list[list[Hypothesis]]:
    """The ``n_best`` best hypotheses of every sentence, best first.

    ``max_len`` (an int or a (B,) tensor) bounds the tokens before end-of-sentence.

    Shapes:
        src: (B, S) long; src_pad: (B, S) bool, True = padding
    """
    B, K = src.size(0), beam_size
    if n_best > K:
        raise ValueError(f"n_best ({n_best}) cannot exceed beam_size ({K})")
    dev = src.device
    max_len = torch.as_tensor(max_len, device=dev).expand(B).long()             # (B,)
    expand = torch.arange(B, device=dev).repeat_interleave(K)                   # (B*K,)
    memory = model.encode(src, src_pad).select(expand)
    state = model.init_state(memory)
    scores = torch.full((B, K), float("-inf"), device=dev)
    scores[:, 0] = 0.0                                  # all beams start identical: keep one
    beams = _Beams(scores, torch.empty(B * K, 0, dtype=torch.long, device=dev),
                   torch.empty(B * K, 0, device=dev), None)
    prev = torch.full((B * K,), BOS_ID, dtype=torch.long, device=dev)
    finished: list[list[Hypothesis]] = [[] for _ in range(B)]
    done = torch.zeros(B, dtype=torch.bool, device=dev)
    # for t = 0 .. max_len: step every beam, pick the 2K best extensions per sentence, file the
    # eos ones among the top K as finished, keep the K best others alive, reorder the state
    for t in range(int(max_len.max()) + 1):
        logits, state, w = model.step(prev, state, memory)     # (B*K, V), _, (B*K, L, H, S)
        log_probs = _constrain(logits.float().log_softmax(dim=-1), t, min_len, max_len, K)
        if keep_weights and beams.weights is None:
            beams.weights = w.new_zeros(B * K, *w.shape[1:3], 0, w.size(-1))
        V = log_probs.size(-1)
        cand = (beams.scores.view(-1, 1) + log_probs).view(B, K * V)          # (B, K*V)
        top_scores, top_idx = cand.topk(2 * K, dim=1)                          # (B, 2K)
        top_beam, top_tok = top_idx // V, top_idx % V
        is_eos = (top_tok == EOS_ID) & torch.isfinite(top_scores)
        _finish(finished, beams, is_eos[:, :K] & ~done.unsqueeze(1), top_beam, top_scores,
                log_probs, w, K, alpha)
        done |= torch.tensor([len(f) >= K for f in finished], device=dev) | (t >= max_len)
        if bool(done.all()):
            break
        cont, order = top_scores.masked_fill(is_eos, float("-inf")).topk(K, dim=1)  # (B, K)
        tok = top_tok.gather(1, order)                                           # (B, K)
        origin = (top_beam.gather(1, order)
                  + torch.arange(B, device=dev).unsqueeze(1) * K).view(-1)     # (B*K,)
        prev = tok.view(-1)
        beams = _Beams(cont, torch.cat([beams.tokens[origin], prev.unsqueeze(1)], dim=1),
                       torch.cat([beams.log_probs[origin],
                                  log_probs[origin, prev].unsqueeze(1)], dim=1),
                       None if beams.weights is None else
                       torch.cat([beams.weights[origin], w[origin].unsqueeze(3)], dim=3))
        state = state.select(origin)
    return [sorted(f, key=lambda h: h.score, reverse=True)[:n_best] for f in finished]


def _constrain(log_probs: Tensor, t: int, min_len: int, max_len: Tensor, K: int) -> Tensor:
    """No eos before ``min_len`` tokens; only eos once a sentence reaches its ``max_len``."""
    eos = log_probs[:, EOS_ID].clone()                                          # (B*K,)
    if t < min_len:
        log_probs[:, EOS_ID] = float("-inf")
    at_end = (t >= max_len).repeat_interleave(K)                                # (B*K,)
    if bool(at_end.any()):
        log_probs[at_end] = float("-inf")
        log_probs[:, EOS_ID] = torch.where(at_end, eos, log_probs[:, EOS_ID])
    return log_probs


def _finish(finished: list[list[Hypothesis]], beams: _Beams, take: Tensor, top_beam: Tensor,
            top_scores: Tensor, log_probs: Tensor, w: Tensor, K: int, alpha: float) -> None:
    """File the candidates ``take`` marks (eos extensions) as finished hypotheses."""
    for b, k in take.nonzero().tolist():
        row = b * K + int(top_beam[b, k])
        tokens = beams.tokens[row].tolist() + [EOS_ID]
        lps = beams.log_probs[row].tolist() + [float(log_probs[row, EOS_ID])]
        total = float(top_scores[b, k])
        weights = None
        if beams.weights is not None:
            weights = torch.cat([beams.weights[row], w[row].unsqueeze(2)], dim=2)  # (L, H, T, S)
        finished[b].append(Hypothesis(tokens, lps, total,
                                      total / length_penalty(len(tokens), alpha), weights))
