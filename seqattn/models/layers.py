"""Dropout that keeps less for the backward pass (training memory, not different numbers).

PyTorch's CPU dropout multiplies by a float32 noise tensor and keeps it for the backward pass:
four bytes per activation. :class:`Dropout` keeps a one-byte mask instead
(``torch.native_dropout``), and :func:`relu_dropout` keeps nothing beyond its output, which the
next linear layer keeps anyway: ReLU followed by dropout passes a gradient exactly where its
output is positive (an input at or below zero, or a dropped one, gives 0 either way). In a
Transformer feed-forward block that is the ReLU output, the noise and the dropout output
(three (N, ff) float tensors) down to one. Srivastava et al. (2014) for dropout itself.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor, nn


class Dropout(nn.Dropout):
    """``nn.Dropout`` with a bool mask kept for the backward pass. Same state dict, same
    expectation: kept units are scaled by 1 / (1 - p)."""

    def forward(self, x: Tensor) -> Tensor:
        if not self.training or self.p == 0.0:
            return x
        return torch.native_dropout(x, self.p, True)[0]


def relu_dropout(x: Tensor, p: float, training: bool) -> Tensor:
    """Dropout(ReLU(x)). Shapes: x (..., F) -> (..., F)."""
    if not training or p == 0.0:
        return torch.relu(x)
    return _ReluDropout.apply(x, p)


class _ReluDropout(torch.autograd.Function):
    """y = ReLU(x) · m / (1 - p), m ~ Bernoulli(1 - p); dy/dx = [y > 0] / (1 - p)."""

    @staticmethod
    def forward(ctx: Any, x: Tensor, p: float) -> Tensor:
        scale = 1.0 / (1.0 - p)
        keep = torch.empty_like(x, dtype=torch.bool).bernoulli_(1.0 - p)
        y = x.clamp_min(0.0).mul_(keep).mul_(scale)
        ctx.save_for_backward(y)
        ctx.scale = scale
        return y

    @staticmethod
    def backward(ctx: Any, grad: Tensor) -> tuple[Tensor, None]:
        (y,) = ctx.saved_tensors
        return grad * (y > 0).to(grad.dtype) * ctx.scale, None
