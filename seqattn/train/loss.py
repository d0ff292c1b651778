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


#: rows of logits made at a time by :func:`projected_loss_sums` (1,024 x 8,000 floats: 33 MB)
ROWS = 1024


def projected_loss_sums(features: Tensor, layer: torch.nn.Linear, target: Tensor,
                        smoothing: float, rows: int = ROWS) -> tuple[Tensor, Tensor]:
    """:func:`loss_sums` of ``layer(features)``, without ever holding all the logits.

    The output layer, the softmax and the loss run ``rows`` non-pad positions at a time; when
    a gradient is wanted each slice's gradient is made at once (the loss is a sum, so a slice's
    share of it is known then) and kept as (N, F) and (V, F) sums, so neither the (B, T, V)
    logits nor their log-probabilities outlive a slice. With a target vocabulary of 8,000 and
    4,096 target tokens that is three (4096, 8000) float tensors fewer (about 0.4 GB) at the
    peak of a training step, and padded positions cost nothing (OpenNMT-py's loss "shards" and
    Liger-Kernel's fused linear cross-entropy are the same idea).

    Shapes: features (B, T, F), target (B, T) -> two scalars (smoothed loss, NLL), summed.
    """
    return _ProjectedCrossEntropy.apply(features, layer.weight, layer.bias, target, smoothing,
                                        rows, torch.is_grad_enabled())


class _ProjectedCrossEntropy(torch.autograd.Function):
    """Forward makes the gradient too; backward scales it by the incoming gradient."""

    @staticmethod
    def forward(ctx: Any, features: Tensor, weight: Tensor, bias: Tensor | None, target: Tensor,
                smoothing: float, rows: int, grads: bool) -> tuple[Tensor, Tensor]:
        flat = features.reshape(-1, features.size(-1))                  # (N, F)
        where = (target.reshape(-1) != PAD).nonzero().squeeze(1)        # (K,) real positions
        # (needs_input_grad says True for parameters under no_grad too: validation asks grads)
        wanted = [grads and w for w in ctx.needs_input_grad[:3]]
        acc = torch.float64 if flat.dtype == torch.float64 else torch.float32
        grad_in = torch.zeros_like(flat, dtype=acc) if wanted[0] else None   # (N, F)
        grad_w = torch.zeros_like(weight, dtype=acc) if wanted[1] else None      # (V, F)
        grad_b = torch.zeros_like(bias, dtype=acc) if bias is not None and wanted[2] else None
        nll_sum = flat.new_zeros((), dtype=acc)
        uniform = flat.new_zeros((), dtype=acc)
        V = weight.size(0)
        for start in range(0, where.numel(), rows):
            pick = where[start:start + rows]
            x, y = flat.index_select(0, pick), target.reshape(-1).index_select(0, pick)
            logits = torch.nn.functional.linear(x, weight, bias)         # (k, V)
            log_probs = logits.to(acc).log_softmax(dim=-1)               # (k, V)
            nll_sum += -log_probs.gather(1, y.unsqueeze(1)).sum()
            if smoothing:
                uniform += -log_probs.mean(dim=-1).sum()
            if not any(wanted):
                continue
            grad = log_probs.exp_()                                      # softmax, in place
            if smoothing:
                grad.sub_(smoothing / V)
            grad.scatter_add_(1, y.unsqueeze(1), grad.new_full((y.numel(), 1), smoothing - 1))
            # fp16 would lose small gradients before the loss scale reaches them: float32 (the
            # sums stay float32 too, scaled in backward before they are cast)
            low = logits.dtype if logits.dtype == torch.bfloat16 else acc
            with torch.autocast(flat.device.type, enabled=False):
                g = grad.to(low)
                if grad_in is not None:
                    grad_in.index_copy_(0, pick, (g @ weight.to(low)).to(acc))
                if grad_w is not None:
                    grad_w += (g.t() @ x.to(low)).to(acc)
                if grad_b is not None:
                    grad_b += grad.sum(0)
        loss = nll_sum.clone() if not smoothing else (1 - smoothing) * nll_sum + \
            smoothing * uniform
        ctx.save_for_backward(*(t if t is not None else torch.empty(0)
                                for t in (grad_in, grad_w, grad_b)))
        ctx.shapes = (features.shape, features.dtype, weight.dtype,
                      None if bias is None else bias.dtype)
        ctx.wanted = wanted
        ctx.mark_non_differentiable(nll_sum)
        return loss, nll_sum

    @staticmethod
    def backward(ctx: Any, grad_loss: Tensor, _grad_nll: Tensor) -> tuple[Any, ...]:
        grad_in, grad_w, grad_b = ctx.saved_tensors     # float32 (float64): scaled, then cast
        shape, f_dtype, w_dtype, b_dtype = ctx.shapes
        wanted = ctx.wanted
        return ((grad_in * grad_loss).to(f_dtype).view(shape) if wanted[0] else None,
                (grad_w * grad_loss).to(w_dtype) if wanted[1] else None,
                (grad_b * grad_loss).to(b_dtype) if wanted[2] and b_dtype else None,
                None, None, None, None)


def alignment_loss(weights: Tensor, gold: Tensor) -> Tensor:
    """Summed cross-entropy of attention rows against gold rows.

    Shapes: weights (B, T, S) (softmax output, padding exactly 0), gold (B, T, S) -> scalar.
    """
    return -(gold * weights.float().clamp_min(1e-9).log()).sum()
