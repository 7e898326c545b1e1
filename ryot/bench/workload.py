"""What is trained: the model and the data, Ryot's own or the team's, as the config says.

A workload is configuration, not code: `model.factory` names a model of one's own (else Ryot's
ScaledTransformerModel), `data.source: tokens` a folder of nanoGPT-style token files (else the
seeded synthetic language). Everything downstream (the trainer, the judge, serving) sees the
same four things either way:

- `build_model`: a fresh nn.Module mapping int64 ids (B, T) to logits (B, T, vocab_size);
- `Workload.train`: the rows of each step's batch, a pure function of (seed, step), so both
  arms, every pair and any resumed run see the same batches;
- `Workload.val`: fixed validation rows (N, max_seq_len + 1);
- `Workload.reference`: what the validation split allows, the Bayes floor where it is known.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Protocol

import torch
from torch import nn

from ryot.bench.batches import batch_indices
from ryot.config import Config, DataConfig, ModelConfig

RYOT_MODEL = "ScaledTransformerModel"


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


def load_workload(config: Config) -> Workload:
    """The data the config names, checked (ryot.bench.tokens.TokenDataError: one line)."""
    if config.data.source == "tokens":
        from ryot.bench import tokens

        return tokens.load_workload(config)
    return _synthetic(config)


def _synthetic(config: Config) -> Workload:
    from ryot.bench.data import bench_description, make_splits, reference_losses

    d, m = config.data, config.model
    train, val, source = make_splits(d, m.max_seq_len, m.vocab_size)
    ref = reference_losses(source, val)
    reference = Reference(
        description=bench_description(config),
        unigram_loss=ref.unigram_loss,
        bayes_floor=ref.bayes_floor,
        unigram_per_position=ref.unigram_per_position,
        floor_per_position=ref.floor_per_position,
    )
    return Workload(SyntheticTrain(train), val, reference, synthetic_record(d))


def synthetic_record(data: DataConfig) -> dict[str, Any]:
    return {"source": "synthetic", "seed": data.seed}


def build_model(model: ModelConfig) -> nn.Module:
    """A fresh, randomly initialised model (seed first for a reproducible init). A factory
    model's errors are the factory's (ryot.bench.factory checks them before any run)."""
    if model.is_factory:
        from ryot.bench import factory

        return factory.build(model)
    from ryot.bench.model import ScaledTransformerModel

    return ScaledTransformerModel(model)


def model_record(model: ModelConfig) -> dict[str, Any]:
    """What was trained, for comparison.json and the checkpoint."""
    if model.is_factory:
        return {
            "name": model.factory,
            "factory": model.factory,
            "factory_kwargs": dict(model.factory_kwargs),
            "vocab_size": model.vocab_size,
            "max_seq_len": model.max_seq_len,
        }
    return {"name": RYOT_MODEL, "factory": None, "factory_kwargs": {},
            "vocab_size": model.vocab_size, "max_seq_len": model.max_seq_len}  # fmt: skip
