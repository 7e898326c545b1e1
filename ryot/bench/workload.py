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

from typing import Any

from torch import nn

from ryot.bench.dataset import Reference, SyntheticTrain, TrainSplit, Workload
from ryot.config import Config, DataConfig, ModelConfig

__all__ = ["Reference", "SyntheticTrain", "TrainSplit", "Workload", "build_model",
           "load_workload", "model_record"]  # fmt: skip

RYOT_MODEL = "ScaledTransformerModel"


def load_workload(config: Config) -> Workload:
    """The data the config names, checked (ryot.bench.tokens.TokenDataError: one line)."""
    if config.data.source == "tokens":
        from ryot.bench import tokens

        data = tokens.load(config)
        reference = Reference(
            data.description, data.unigram_loss, unigram_per_position=data.unigram_per_position
        )
        return Workload(data.train, data.val, reference, data.data_record)
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


def bench_record(config: Config) -> dict[str, Any]:
    """comparison.json's `bench` and `workload`: the reference losses of the validation split
    (the Bayes floor null where it is unknown), what model was trained on what data."""
    if config.data.source == "tokens":
        workload = load_workload(config)
        ref = workload.reference
        bench = {
            "description": ref.description,
            "unigram_loss": ref.unigram_loss,
            "bayes_floor": None,
            "floor_per_position": None,
            "unigram_per_position": ref.unigram_per_position,
        }
        data = workload.data_record
    else:
        from ryot.bench.data import bench_reference

        bench, data = bench_reference(config), synthetic_record(config.data)
    return {"bench": bench, "workload": {"model": model_record(config.model), "data": data}}
