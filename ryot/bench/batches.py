"""Which synthetic samples make each step's batch: a pure function of the step."""

from __future__ import annotations

import torch


def batch_indices(
    step: int, micro: int, batch_size: int, accumulation: int, n: int, seed: int
) -> torch.Tensor:
    """Sample ids of micro-batch `micro` of optimizer step `step`: a function of the step alone.

    Each pass over the data is a fresh seeded permutation, so any arm, and any resumed run,
    sees exactly the same batches at the same step without carrying loader state.
    """
    start = (step * accumulation + micro) * batch_size
    first_pass, last_pass = start // n, (start + batch_size - 1) // n
    ids = []
    for p in range(first_pass, last_pass + 1):
        g = torch.Generator().manual_seed(seed * 1_000_003 + p)
        ids.append(torch.randperm(n, generator=g))
    order = torch.cat(ids)
    offset = start - first_pass * n
    return order[offset : offset + batch_size]
