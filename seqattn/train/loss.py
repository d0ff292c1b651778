"""The training losses: label-smoothed cross-entropy (with a fused backward pass) and the guided
alignment loss."""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from seqattn.vocab import PAD


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


def alignment_loss(weights: Tensor, gold: Tensor) -> Tensor:
    """Summed cross-entropy of attention rows against gold rows.

    Shapes: weights (B, T, S) (softmax output, padding exactly 0), gold (B, T, S) -> scalar.
    """
    return -(gold * weights.float().clamp_min(1e-9).log()).sum()
