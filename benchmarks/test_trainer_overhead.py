"""Trainer overhead: Trainer.run against a bare training loop of the same model and data.

Both benchmarks sit in one group, so pytest-benchmark's table gives their ratio side by side in
one run; the test asserts nothing about time (speed is measured, never asserted here).
"""

from __future__ import annotations

from dataclasses import replace

import pytest
import torch

from ryot.bench.model import ScaledTransformerModel, lm_loss
from ryot.config import load_config
from ryot.train.schedule import batch_indices, curve_steps, learning_rate
from ryot.train.trainer import Trainer
from tests.conftest import CONFIGS


@pytest.fixture(scope="module")
def config():
    """Big enough that a step is real work (tens of ms), small enough for the unit suite; one
    thread, because two OpenMP threads on two busy cores make step times jitter by 30%."""
    smoke = load_config(CONFIGS / "smoke.yaml")
    model = replace(smoke.model, embed_dim=128, num_heads=4, ff_dim=256, max_seq_len=64,
                    vocab_size=256, dropout=0.0)  # fmt: skip
    training = replace(smoke.training, num_epochs=2, steps_per_epoch=5, batch_size=8, threads=1)
    data = replace(smoke.data, num_train_samples=80, num_val_samples=16)
    return replace(smoke, model=model, training=training, data=data)


def evaluate(model, data) -> float:
    model.eval()
    with torch.no_grad():
        loss = float(lm_loss(model(data[:, :-1]), data[:, 1:]))
    model.train()
    return loss


def bare_loop(config, train, val) -> float:
    """What any hand-written loop must do for the protocol: init, AdamW with the learning-rate
    schedule, clipped steps, the validation curve off the clock, and the final validation."""
    t = config.training
    torch.manual_seed(t.seed)
    model = ScaledTransformerModel(config.model)
    optimizer = torch.optim.AdamW(
        model.parameters(), lr=t.learning_rate, weight_decay=t.weight_decay
    )
    curve_val = val[: config.measurement.curve_samples]
    curve_at = set(curve_steps(config.total_steps, config.measurement.curve_points))
    evaluate(model, val)
    evaluate(model, curve_val)
    model.train()
    for step in range(config.total_steps):
        for group in optimizer.param_groups:
            group["lr"] = learning_rate(step, t)
        batch = train[batch_indices(step, 0, t.batch_size, 1, len(train), t.seed)]
        loss = lm_loss(model(batch[:, :-1]), batch[:, 1:])
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), t.grad_clip)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        if step + 1 in curve_at:
            evaluate(model, curve_val)
    return evaluate(model, val)


@pytest.mark.benchmark(group="trainer overhead")
def test_bare_training_loop(benchmark, config):
    trainer = Trainer(config)  # only for the same data tensors
    benchmark.pedantic(
        bare_loop, args=(config, trainer.train_data, trainer.val_data), rounds=3, warmup_rounds=1
    )


@pytest.mark.benchmark(group="trainer overhead")
def test_trainer_run(benchmark, config):
    trainer = Trainer(config)
    result = benchmark.pedantic(trainer.run, rounds=3, warmup_rounds=1)
    assert len(result.step_times) == config.total_steps
