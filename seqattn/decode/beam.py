"""Batched beam search, written only against the :class:`seqattn.models.Seq2Seq` interface.

Scoring follows GNMT (Wu et al. 2016): beams compete on summed log-probabilities, and a
finished hypothesis Y is ranked by ``log P(Y) / lp(Y)`` with
``lp(Y) = ((5 + |Y|) / 6) ** alpha`` (|Y| counts the end-of-sentence token; alpha = 0 turns the
penalty off), or ``|Y| ** alpha`` with ``norm="power"``. A sentence is done once ``beam_size``
hypotheses have finished (as in fairseq), or
at its maximum length, where end-of-sentence is forced. End-of-sentence is forbidden before
``min_len`` tokens. With ``vocab`` (a vocabulary shortlist, :mod:`seqattn.shortlist`)
only those pieces are scored: the output layer projects onto their rows and the softmax
normalises over them.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
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


def length_penalty(length: int, alpha: float, norm: str = "gnmt") -> float:
    """GNMT's lp(Y) = ((5 + |Y|) / 6) ** alpha, or with ``norm="power"`` |Y| ** alpha (the
    normalisation of CTranslate2 and Marian, to compare with them like for like)."""
    return ((5 + length) / 6) ** alpha if norm == "gnmt" else float(length) ** alpha


@dataclass
class _Step:
    """How the alive rows after a step extend the rows before it (one entry per new row).
    Hypotheses are read back through these records only when they finish, so a step costs
    the same whatever the length so far (no growing token or attention copies)."""

    origin: Tensor            # (N,) the row before the step that each new row extends
    tokens: Tensor            # (N,) the token it appended
    log_probs: Tensor         # (N,) that token's log-probability
    weights: Tensor | None    # (N, L, H, S) the attention of the step that chose it


@torch.no_grad()
def beam_search(model: Seq2Seq, src: Tensor, src_pad: Tensor, beam_size: int,
                max_len: Tensor | int, n_best: int = 1, min_len: int = 0, alpha: float = 0.0,
                keep_weights: bool = True, norm: str = "gnmt",
                vocab: Tensor | None = None) -> list[list[Hypothesis]]:
    """The ``n_best`` best hypotheses of every sentence, best first.

    ``max_len`` (an int or a (B,) tensor) bounds the tokens before end-of-sentence. A sentence
    leaves the batch as soon as it is done, so the rest decode without its rows. ``vocab``: the
    only target ids the search may choose (sorted, end-of-sentence among them), or None for all.

    Shapes:
        src: (B, S) long; src_pad: (B, S) bool, True = padding; vocab: (V',) long
    """
    B, K = src.size(0), beam_size
    if n_best > K:
        raise ValueError(f"n_best ({n_best}) cannot exceed beam_size ({K})")
    dev = src.device
    eos, rows_of = EOS_ID, None
    if vocab is not None:  # column of eos among the shortlist's, and their output rows
        where = (vocab == EOS_ID).nonzero()
        if where.numel() != 1:
            raise ValueError("a vocabulary shortlist must hold end-of-sentence once")
        layer = model.output_layer()                       # its rows of the shortlist's ids
        bias = None if layer.bias is None else layer.bias.index_select(0, vocab)
        eos, rows_of = int(where[0, 0]), (layer.weight.index_select(0, vocab), bias)
    max_len = torch.as_tensor(max_len, device=dev).expand(B).long()             # (B,)
    sent = torch.arange(B, device=dev)                  # (A,) the sentences still decoding
    memory = model.encode(src, src_pad)                 # B rows until the first step is done
    state = model.init_state(memory)
    scores = torch.full((B, K), float("-inf"), device=dev)                      # (A, K)
    scores[:, 0] = 0.0                                  # all beams start identical: keep one
    prev = torch.full((B,), BOS_ID, dtype=torch.long, device=dev)
    history: list[_Step] = []
    finished: list[list[Hypothesis]] = [[] for _ in range(B)]
    # for t = 0 .. max_len: step every alive beam, pick the 2K best extensions per sentence,
    # file the eos ones among the top K as finished, drop the sentences that are done, keep
    # the K best other extensions of the rest alive, reorder the state
    for t in range(int(max_len.max()) + 1):
        A = sent.numel()
        if rows_of is None:
            logits, state, w = model.step(prev, state, memory)  # (A*K, V), _, (A*K, L, H, S)
        else:                                                   # the shortlist's columns only
            features, state, w = model.step(prev, state, memory, project=False)
            logits = F.linear(features, *rows_of)                               # (A*K, V')
        if t == 0:  # the K beams of a sentence are identical so far: one row was decoded
            rows = sent.repeat_interleave(K)                                    # (B*K,)
            logits, w, state, memory = logits[rows], w[rows], state.select(rows), \
                memory.select(rows)
        log_probs = logits.float().log_softmax(dim=-1)                          # (A*K, V)
        eos_lp = log_probs[:, eos].clone()                                      # (A*K,)
        _constrain(log_probs, t, min_len, max_len[sent], K, eos)
        top_scores, top_beam, top_tok, top_lp = _best_extensions(scores, log_probs, K)
        if vocab is not None:                                  # columns -> vocabulary ids
            top_tok = vocab[top_tok]
        is_eos = (top_tok == EOS_ID) & torch.isfinite(top_scores)
        take = is_eos[:, :K].nonzero()                                         # (F, 2)
        if take.numel():
            rows = take[:, 0] * K + top_beam[take[:, 0], take[:, 1]]          # (F,)
            _finish(finished, sent[take[:, 0]].tolist(), rows,
                    top_scores[take[:, 0], take[:, 1]], eos_lp[rows],
                    w[rows] if keep_weights else None, history, alpha, norm)
        count = torch.tensor([len(finished[b]) for b in sent.tolist()], device=dev)
        done = (count >= K) | (t >= max_len[sent])                              # (A,)
        if bool(done.all()):
            break
        cont, order = top_scores.masked_fill(is_eos, float("-inf")).topk(K, dim=1)  # (A, K)
        tok, tok_lp = top_tok.gather(1, order), top_lp.gather(1, order)          # (A, K)
        origin = top_beam.gather(1, order) + torch.arange(A, device=dev).unsqueeze(1) * K
        if bool(done.any()):                            # drop finished sentences' rows
            keep = ~done
            cont, tok, tok_lp, origin, sent = (cont[keep], tok[keep], tok_lp[keep],
                                               origin[keep], sent[keep])
            memory = memory.select(keep.repeat_interleave(K).nonzero().squeeze(1))
        origin, prev = origin.reshape(-1), tok.reshape(-1)                     # (A'*K,)
        history.append(_Step(origin, prev, tok_lp.reshape(-1),
                             w[origin] if keep_weights else None))
        state = state.select(origin)
        scores = cont
    return [sorted(f, key=lambda h: h.score, reverse=True)[:n_best] for f in finished]


def _best_extensions(scores: Tensor, log_probs: Tensor,
                     K: int) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """Each sentence's 2K best one-token extensions of its K beams: their total scores, the
    beam each extends, the token and its log-probability, best first. Only the 2K best tokens
    of a beam can be among them, so those are scored, not all K·V.

    Shapes:
        scores: (A, K) beam totals; log_probs: (A*K, V)
        returns: four (A, 2K) tensors
    """
    A = scores.size(0)
    row_lp, row_tok = log_probs.topk(min(2 * K, log_probs.size(-1)), dim=1)  # (A*K, C)
    C = row_tok.size(1)
    row_lp = row_lp.view(A, K * C)                                          # (A, K*C)
    cand = scores.repeat_interleave(C, dim=1) + row_lp                      # (A, K*C)
    top_scores, top_idx = cand.topk(2 * K, dim=1)                           # (A, 2K)
    top_tok = row_tok.view(A, K * C).gather(1, top_idx)                     # (A, 2K)
    return top_scores, top_idx // C, top_tok, row_lp.gather(1, top_idx)


def _constrain(log_probs: Tensor, t: int, min_len: int, max_len: Tensor, K: int,
               eos: int = EOS_ID) -> None:
    """In place: no eos (column ``eos``) before ``min_len`` tokens; only eos once a sentence
    reaches its ``max_len`` (with its model log-probability)."""
    eos_lp = log_probs[:, eos].clone()                                          # (A*K,)
    if t < min_len:
        log_probs[:, eos] = float("-inf")
    at_end = (t >= max_len).repeat_interleave(K)                                # (A*K,)
    if bool(at_end.any()):
        log_probs[at_end] = float("-inf")
        log_probs[:, eos] = torch.where(at_end, eos_lp, log_probs[:, eos])


def _finish(finished: list[list[Hypothesis]], sentences: list[int], rows: Tensor,
            totals: Tensor, eos_log_probs: Tensor, eos_weights: Tensor | None,
            history: list[_Step], alpha: float, norm: str) -> None:
    """File F hypotheses that end with eos now: the alive ``rows`` they extend are read back
    through ``history`` (all F at once, one gather per step)."""
    tokens, lps, weights = [], [], []
    for step in reversed(history):
        tokens.append(step.tokens[rows])
        lps.append(step.log_probs[rows])
        if step.weights is not None:
            weights.append(step.weights[rows])                                  # (F, L, H, S)
        rows = step.origin[rows]
    token_lists = torch.stack(tokens[::-1], dim=1).tolist() if tokens else [[]] * len(sentences)
    lp_lists = torch.stack(lps[::-1], dim=1).tolist() if lps else [[]] * len(sentences)
    stacked = None
    if eos_weights is not None:                                                 # (F, L, H, T, S)
        stacked = torch.stack([*weights[::-1], eos_weights], dim=3).float()
    for f, b in enumerate(sentences):
        toks = token_lists[f] + [EOS_ID]
        total = float(totals[f])
        finished[b].append(Hypothesis(toks, lp_lists[f] + [float(eos_log_probs[f])], total,
                                      total / length_penalty(len(toks), alpha, norm),
                                      None if stacked is None else stacked[f]))
