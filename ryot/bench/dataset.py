"""What a workload's data is to the trainer, whatever its source: the training split (a step's
batch ids, then their rows), the fixed validation rows, and the reference losses they allow.
ryot.bench.workload builds one from the config; the token files' reader builds its own."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Protocol

import torch

from ryot.bench.batches import batch_indices


@dataclass(frozen=True)
class Reference:
    """The validation split's reference losses: the unigram loss (token frequencies alone)
    always, the Bayes floor (the best any model can do) only where the language is known."""

    description: str
    unigram_loss: float
    bayes_floor: float | None = None
    unigram_per_position: list[float] | None = None
    floor_per_position: list[float] | None = None

    def context_learned(self, val_loss: float) -> float:
        """Fraction of the unigram -> floor gap a model with this loss closed: NaN where the
        floor is unknown, or where the language has no context to learn."""
        if self.bayes_floor is None:
            return math.nan
        gap = self.unigram_loss - self.bayes_floor
        return (self.unigram_loss - val_loss) / gap if gap > 1e-9 else math.nan


class TrainSplit(Protocol):
    """The training data as the trainer reads it: ids of a step's batch, then its rows."""

    def batch(
        self, step: int, micro: int, batch_size: int, accumulation: int, seed: int
    ) -> torch.Tensor:
        """The ids of micro-batch `micro` of optimizer step `step` (a pure function of them)."""
        ...

    def rows(self, ids: torch.Tensor) -> torch.Tensor:
        """(len(ids), max_seq_len + 1) int64 token ids: inputs row[:-1], targets row[1:]."""
        ...


@dataclass(frozen=True)
class SyntheticTrain:
    """The synthetic language's training rows, all in memory; a step's batch is a slice of a
    seeded permutation per pass (ryot.bench.batches)."""

    data: torch.Tensor  # (num_train_samples, max_seq_len + 1) int64

    def batch(self, step, micro, batch_size, accumulation, seed) -> torch.Tensor:
        return batch_indices(step, micro, batch_size, accumulation, len(self.data), seed)

    def rows(self, ids: torch.Tensor) -> torch.Tensor:
        return self.data[ids]


@dataclass
class Workload:
    train: TrainSplit
    val: torch.Tensor  # (N, max_seq_len + 1) int64, fixed
    reference: Reference
    # comparison.json's and the checkpoint's record of the data: its source and, for token
    # files, each file's token count and content hash (two runs compare only on equal data)
    data_record: dict[str, Any] = field(default_factory=dict)
