"""Stage 3a acceptance criteria: one test each, judged from the session's measured runs."""

from __future__ import annotations

import pytest

from ryot.judge.criteria import CRITERIA
from ryot.train.trainer import Trainer


@pytest.mark.parametrize("criterion", CRITERIA)
def test_criterion(stage3a, criterion):
    row = next(r for r in stage3a.outcome.rows if r.id == criterion)
    assert row.passed, row.message()


@pytest.mark.parametrize("arm", ["baseline", "optimized"])
def test_training_step_time(benchmark, stage3a, arm):
    """pytest-benchmark's statistics of one full-length training step of each arm, with the
    stack under validation (--ryot-stack; the shipped one by default)."""
    config, device = stage3a.config, stage3a.device
    stack = stage3a.stack_factory(config, arm, device)
    trainer = Trainer(config, arm=arm, stack=stack, device=device)
    _, trained, optimizer = trainer.build()
    last = config.total_steps - 1  # past any sequence-length warmup, which ends by then
    full = config.training.batch_size * config.training.grad_accumulation * config.model.max_seq_len
    fed = []
    benchmark.group = "training step (full length)"
    benchmark.extra_info["arm"] = arm
    benchmark.pedantic(
        lambda: fed.append(trainer.train_step(last, trained, optimizer)[2]),
        rounds=3,
        warmup_rounds=1,
    )
    benchmark.extra_info["tokens_per_step"] = fed[-1]
    # the group's name is a claim: every measured step fed the full-length batch
    assert set(fed) == {full}, f"steps fed {sorted(set(fed))} tokens, full length is {full}"
