"""Trainer: training, divergence, resume equivalence."""

from __future__ import annotations

import itertools
import math
from dataclasses import replace

import pytest
import torch

from ryot.train.checkpoint import CheckpointError
from ryot.train.evaluation import evaluate, token_losses
from ryot.train.schedule import batch_indices, curve_steps, learning_rate
from ryot.train.trainer import Trainer
from tests.sabotage import NaNAfter


def test_trains_and_loss_falls(smoke_config):
    result = Trainer(smoke_config).run()
    t = smoke_config.training
    assert len(result.step_times) == len(result.step_losses) == smoke_config.total_steps
    assert [e.epoch for e in result.epochs] == list(range(1, t.num_epochs + 1))
    assert result.epochs[-1].mean_loss < result.epochs[0].mean_loss
    assert not result.diverged and math.isfinite(result.val_loss)
    # Every step feeds the full batch at full length.
    assert set(result.step_tokens) == {t.batch_size * smoke_config.model.max_seq_len}
    full_length = smoke_config.model.max_seq_len
    assert result.epochs[0].tokens == t.steps_per_epoch * t.batch_size * full_length
    assert 0 < result.bayes_floor < result.unigram_loss < math.log(smoke_config.model.vocab_size)
    assert result.initial_val_loss > result.val_loss
    assert len(result.val_loss_per_position) == smoke_config.model.max_seq_len
    assert sum(result.val_loss_per_position) / full_length == pytest.approx(result.val_loss)
    assert result.wall_time_s == pytest.approx(
        result.setup_time_s + sum(result.step_times) + result.close_time_s
    )
    assert result.peak_memory_mb > 0


def test_same_seed_same_losses(smoke_config):
    a, b = Trainer(smoke_config).run(), Trainer(smoke_config).run()
    assert a.step_losses == b.step_losses and a.val_loss == b.val_loss


def test_nan_stops_the_arm_and_marks_it_diverged(smoke_config):
    result = Trainer(smoke_config, stack=[NaNAfter(torch.device("cpu"), step=4)]).run()
    assert result.diverged
    assert "loss is nan at step 5" in result.divergence
    assert len(result.step_losses) == 5  # stopped at the first NaN
    assert result.epochs[-1].status == "diverged"
    assert result.val_loss is None


def test_gradient_accumulation_feeds_every_micro_batch(smoke_config):
    from dataclasses import replace

    cfg = replace(smoke_config, training=replace(smoke_config.training, grad_accumulation=2))
    result = Trainer(cfg).run()
    assert result.step_tokens[0] == 2 * cfg.training.batch_size * cfg.model.max_seq_len
    assert result.epochs[0].samples == 2 * cfg.training.batch_size * cfg.training.steps_per_epoch


def test_batches_depend_only_on_the_step():
    n, bs = 20, 8
    ids = torch.cat([batch_indices(s, 0, bs, 1, n, seed=3) for s in range(5)])
    # Each pass of 20 samples is a permutation: the first 20 ids are all distinct.
    assert sorted(ids[:20].tolist()) == list(range(20))
    assert torch.equal(batch_indices(3, 0, bs, 1, n, 3), batch_indices(3, 0, bs, 1, n, 3))


def test_resume_from_checkpoint_matches_uninterrupted_run(smoke_config, tmp_path):
    full = Trainer(smoke_config, checkpoint_path=tmp_path / "full.pt").run()
    half_path = tmp_path / "half.pt"
    Trainer(smoke_config, checkpoint_path=half_path).run(stop_after_epoch=2)
    resumed = Trainer(smoke_config, checkpoint_path=half_path).run(resume=half_path)
    assert resumed.resumed_from_step == 2 * smoke_config.training.steps_per_epoch
    assert resumed.step_losses == full.step_losses
    assert resumed.final_loss == full.final_loss
    assert resumed.val_loss == full.val_loss


def test_curve_is_measured_off_the_clock_at_every_planned_step(smoke_config):
    result = Trainer(smoke_config).run()
    m = smoke_config.measurement
    steps = [p.step for p in result.curve]
    assert steps == curve_steps(smoke_config.total_steps, m.curve_points)
    assert steps[0] == 0 and steps[-1] == smoke_config.total_steps
    for point in result.curve:
        # the arm's own training clock: setup plus the steps done, less the machine's stalls,
        # never evaluation time; the final point after the stack's close() and finish() too
        expected = result.setup_time_s - result.setup_stall_s + sum(result.step_clock[: point.step])
        if point.step == smoke_config.total_steps:
            expected += result.close_time_s - result.close_stall_s
        assert point.clock_s == pytest.approx(expected)
    assert result.curve[-1].val_loss < result.curve[0].val_loss
    assert result.eval_time_s > 0


def test_curve_ends_reuse_the_full_evaluations_exactly(smoke_config):
    """The first and last curve points come from the full evaluations' first curve_samples rows:
    the same number as evaluating those rows alone, up to float rounding."""
    config = replace(smoke_config, measurement=replace(smoke_config.measurement, curve_samples=8))
    trainer = Trainer(config)
    model, _, _ = trainer.build()
    full = token_losses(model, trainer.val_data, trainer.device)
    alone, _ = evaluate(model, trainer.curve_data, trainer.device)
    assert full.shape == (config.data.num_val_samples, config.model.max_seq_len)
    assert float(full[: len(trainer.curve_data)].mean()) == pytest.approx(alone, abs=1e-6)
    result = trainer.run()
    assert result.curve[0].val_loss == pytest.approx(alone, abs=1e-6)  # same seeded init
    assert result.curve[0].val_loss != pytest.approx(result.initial_val_loss, abs=1e-9)


def test_evaluation_is_exact_fp32_whatever_the_stack_switched_on(smoke_config):
    trainer = Trainer(smoke_config)
    model, _, _ = trainer.build()
    seen = []
    model.register_forward_hook(
        lambda *_: seen.append(
            (torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32)
        )
    )
    before = torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32
    torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = True
    try:
        evaluate(model, trainer.val_data, trainer.device)
        assert seen and set(seen) == {(False, False)}
        assert torch.backends.cuda.matmul.allow_tf32 and torch.backends.cudnn.allow_tf32
    finally:
        torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = before


def test_curve_steps_are_denser_near_the_end_and_include_both_ends():
    assert curve_steps(100, 10) == [0, 19, 36, 51, 64, 75, 84, 91, 96, 99, 100]
    steps = curve_steps(100, 10)
    gaps = [b - a for a, b in zip(steps, steps[1:], strict=False)]
    assert gaps == sorted(gaps, reverse=True)  # never sparser towards the end
    assert curve_steps(12, 10)[0] == 0 and curve_steps(12, 10)[-1] == 12
    assert curve_steps(12, 10) == sorted(set(curve_steps(12, 10)))


def test_learning_rate_warms_up_linearly_then_decays_by_cosine(smoke_config):
    from dataclasses import replace

    t = replace(smoke_config.training, learning_rate=1.0, lr_warmup_steps=4, lr_min_ratio=0.1,
                num_epochs=2, steps_per_epoch=7)  # fmt: skip
    rates = [learning_rate(s, t) for s in range(14)]
    assert rates[:4] == pytest.approx([0.25, 0.5, 0.75, 1.0])
    assert rates[4] == pytest.approx(1.0)  # the decay starts at the peak
    assert all(a >= b for a, b in itertools.pairwise(rates[4:]))
    assert rates[-1] == pytest.approx(0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * 9 / 10)))
    flat = replace(t, lr_warmup_steps=0, lr_min_ratio=1.0)
    assert {learning_rate(s, flat) for s in range(14)} == {1.0}


def test_resume_refuses_another_arm_or_other_optimization_settings(smoke_config, tmp_path):
    from dataclasses import replace

    path = tmp_path / "base.pt"
    Trainer(smoke_config, checkpoint_path=path).run(stop_after_epoch=1)
    with pytest.raises(CheckpointError, match="arm 'baseline', not 'optimized'"):
        Trainer(smoke_config, arm="optimized").run(resume=path)
    o = smoke_config.optimizations
    other = replace(smoke_config, optimizations=o.replace(
        semantic_compressor=replace(o.semantic_compressor, ratio=0.1)))  # fmt: skip
    with pytest.raises(CheckpointError, match="different optimizations config"):
        Trainer(other).run(resume=path)
