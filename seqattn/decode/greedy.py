"""Decoding, written only against the :class:`seqattn.models.Seq2Seq` interface.

Functions here never check which model class they hold: they call ``encode``, ``init_state``
and ``step``, and reorder with ``Memory.select`` / ``State.select``. Put the model in eval mode
first (``model.eval()``); decoding runs without gradients.
"""

from __future__ import annotations

import torch
from torch import Tensor

from seqattn.models import BOS_ID, EOS_ID, PAD_ID, Seq2Seq


@torch.no_grad()
def greedy(model: Seq2Seq, src: Tensor, src_pad: Tensor, max_len: int, bos_id: int = BOS_ID,
           eos_id: int = EOS_ID, pad_id: int = PAD_ID) -> tuple[Tensor, Tensor]:
    """Pick the most likely token at every step until every row has produced ``eos_id`` or
    ``max_len`` tokens are out.

    A row's output includes its eos; after it the row holds ``pad_id`` and zero attention
    weights. A row that never reaches eos holds ``max_len`` tokens.

    Shapes:
        src: (B, S) long; src_pad: (B, S) bool, True = padding
        returns: tokens (B, T) long with T <= max_len, weights (B, L, H, T, S)
    """
    if max_len < 1:
        raise ValueError(f"max_len must be at least 1, got {max_len}")
    B = src.size(0)
    memory = model.encode(src, src_pad)
    state = model.init_state(memory)
    prev = torch.full((B,), bos_id, dtype=torch.long, device=src.device)     # (B,)
    finished = torch.zeros(B, dtype=torch.bool, device=src.device)         # (B,)
    tokens, weights = [], []
    # for t < max_len: step, take the argmax, blank finished rows, stop once all have eos
    for _ in range(max_len):
        logits, state, w = model.step(prev, state, memory)         # (B, V), _, (B, L, H, S)
        prev = logits.argmax(dim=-1).masked_fill(finished, pad_id)  # (B,)
        tokens.append(prev)
        weights.append(w.masked_fill(finished.view(B, 1, 1, 1), 0.0))
        finished = finished | (prev == eos_id)
        if bool(finished.all()):
            break
    return torch.stack(tokens, dim=1), torch.stack(weights, dim=3)  # (B, T), (B, L, H, T, S)
