"""Length-bucketed batches of sentence indices, torch-free (training, and every decoding
engine, cut their batches here)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any


def bucket_batches(src_lens: Sequence[int], tgt_lens: Sequence[int], batch_tokens: int,
                   seed: int | None) -> list[Any]:
    """Group sentence indices into batches of at most ``batch_tokens`` padded tokens.

    Sentences are sorted by length (with a little seeded noise so epochs differ), cut into
    batches whose padded size ``n * max(len)`` (source or target, whichever is larger) stays
    within the budget, and the batch order is shuffled. ``seed=None`` keeps the sorted order
    (for validation). A sentence longer than the budget still gets a batch of its own.

    Each batch is an array of indices (int32 below 2^31 pairs: a million pairs cost 4 MB, not a
    Python int each, and the batches are views into one array); the sorting and shuffling draw
    from ``numpy.random.default_rng(seed)``. Nothing here is a Python object per pair, so the
    memory this takes is a few bytes a pair, once.
    """
    import numpy as np

    n = len(tgt_lens)
    index = np.int32 if n < 2**31 else np.int64
    t = np.asarray(tgt_lens, dtype=np.int32)
    sizes = np.maximum(np.asarray(src_lens, dtype=np.int32), t) + 1           # (N,) int32
    rng = np.random.default_rng(seed) if seed is not None else None
    keys = sizes.astype(np.float32) + rng.random(n, dtype=np.float32) * 2 if rng is not None \
        else sizes
    order = np.lexsort((t, keys)).astype(index)     # by key, then target length; stable
    del keys, t
    cuts, count, longest = [], 0, 0
    step = 1 << 20                                  # the greedy pass reads a slice at a time
    for first in range(0, n, step):
        for k, size in enumerate(sizes[order[first:first + step]].tolist(), start=first):
            if count and max(longest, size) * (count + 1) > batch_tokens:
                cuts.append(k)      # the batch's longest so far decides its padded size
                count, longest = 0, 0
            count, longest = count + 1, max(longest, size)
    batches = np.split(order, cuts) if n else []
    if rng is not None:
        batches = [batches[i] for i in rng.permutation(len(batches))]
    return batches
