"""The optimization stack: identity when off, real effect when on, NoEffect when sabotaged."""

from __future__ import annotations

import itertools
from dataclasses import replace

import pytest
import torch

from ryot.config import ModelConfig
from ryot.model import Block, ScaledTransformerModel
from ryot.optim import ARMS, build_stack
from ryot.optim.compression import SemanticCompressor, TokenDropper, drop_tokens, kept_count
from ryot.optim.scaling import InferenceScalingEngine, warmup_length
from ryot.train import Trainer
from tests.sabotage import NoOpKernel

CPU = torch.device("cpu")


def with_optimizations(cfg, level=0, ratio=0.0, warmup=0, score="random"):
    o = cfg.optimizations
    return replace(
        cfg,
        optimizations=replace(
            o,
            kernel_optimizer=replace(o.kernel_optimizer, level=level),
            semantic_compressor=replace(o.semantic_compressor, ratio=ratio, score=score),
            inference_scaling=replace(o.inference_scaling, warmup_steps=warmup),
        ),
    )


def train(cfg, arm="optimized", stack=None, **kwargs):
    stack = build_stack(cfg, arm, CPU) if stack is None else stack
    return Trainer(cfg, arm=arm, stack=stack, **kwargs)


def findings(result, name):
    return next(e for e in result.evidence if e["name"] == name)["findings"]


# -- identity when switched off ------------------------------------------------------------


def test_switched_off_stack_is_bitwise_the_baseline(smoke_config):
    off = with_optimizations(smoke_config)
    baseline = train(off, "baseline").run()
    optimized = train(off, "optimized").run()
    assert optimized.step_losses == baseline.step_losses
    assert optimized.val_loss == baseline.val_loss
    assert all(not e["enabled"] and e["findings"] == [] for e in optimized.evidence)


# -- semantic compression --------------------------------------------------------------------


def _block(dim=16):
    torch.manual_seed(0)
    cfg = ModelConfig(vocab_size=10, embed_dim=dim, num_heads=2, num_layers=3, ff_dim=32,
                      max_seq_len=12, dropout=0.0)  # fmt: skip
    return Block(cfg).eval()


def test_dropping_layer_equals_full_layer_on_kept_prefix():
    block = _block()
    x = torch.randn(2, 12, 16)
    x[:, :8] *= 100  # the norm score keeps exactly the 8 loudest tokens: a prefix
    out = drop_tokens(block, x, ratio=1 / 3, score="norm")
    # Causal attention: a prefix's outputs do not depend on later tokens, so the kept prefix
    # must equal the full layer there, and the dropped tokens must pass through unchanged.
    torch.testing.assert_close(out[:, :8], block(x)[:, :8])
    assert torch.equal(out[:, 8:], x[:, 8:])


def test_dropping_keeps_order_and_count():
    block = _block()
    x = torch.randn(3, 12, 16)
    out = drop_tokens(block, x, ratio=0.5, score="random")
    changed = (out != x).any(dim=-1)  # (B, T) tokens the layer touched
    assert changed.sum(dim=1).tolist() == [kept_count(0.5, 12)] * 3


def test_token_dropping_model_stays_causal_in_training():
    cfg = ModelConfig(vocab_size=20, embed_dim=16, num_heads=2, num_layers=4, ff_dim=32,
                      max_seq_len=10, dropout=0.0)  # fmt: skip
    torch.manual_seed(0)
    model = ScaledTransformerModel(cfg).train()
    model.token_dropper = TokenDropper(0.4, "random")
    idx = torch.randint(0, 20, (2, 10))
    changed = idx.clone()
    changed[:, 6] = (changed[:, 6] + 1) % 20
    torch.manual_seed(1)
    a = model(idx)
    torch.manual_seed(1)  # the same random choice of kept tokens
    b = model(changed)
    torch.testing.assert_close(a[:, :6], b[:, :6])
    assert not torch.allclose(a[:, 6:], b[:, 6:])


def test_compression_reports_fewer_flops_and_kept_fraction(smoke_config):
    cfg = with_optimizations(smoke_config, ratio=0.5)
    result = train(cfg, "compression").run()
    m = result.evidence[0]["measurements"]
    assert m["flops_per_step"] < m["baseline_flops_per_step"]
    assert m["kept_fraction_per_layer"] == {"1": 0.5, "2": 0.5}
    assert findings(result, "compression") == []


def test_evaluation_runs_the_full_model(smoke_config):
    cfg = with_optimizations(smoke_config, ratio=0.5)
    trainer = train(cfg, "compression")
    model, _, _ = trainer.build()
    dropper = model.token_dropper
    trainer.evaluate(model)
    assert dropper.kept_fraction == {}  # never called in eval mode


# -- sequence-length warmup ------------------------------------------------------------------


def test_warmup_schedule():
    lengths = [warmup_length(s, 10, 32, 128, 16) for s in range(12)]
    assert lengths[0] == 32 and lengths[10:] == [128, 128]
    assert lengths == sorted(lengths) and all(n % 16 == 0 for n in lengths)


def test_scaling_feeds_fewer_tokens_and_reports_the_schedule(smoke_config):
    cfg = with_optimizations(smoke_config, warmup=6)
    result = train(cfg, "scaling").run()
    m = result.evidence[0]["measurements"]
    assert result.step_tokens == m["tokens_per_step"]
    assert result.step_tokens[0] < m["full_tokens_per_step"] == result.step_tokens[-1]
    assert m["schedule"][0] == [1, 8] and m["schedule"][-1][1] == cfg.model.max_seq_len


# -- kernel ----------------------------------------------------------------------------------


def test_kernel_level_1_changes_attention_kernels_and_optimizer(smoke_config):
    result = train(with_optimizations(smoke_config, level=1), "kernel").run()
    m = result.evidence[0]["measurements"]
    assert m["attention_ops"] != m["reference_attention_ops"]
    assert m["optimizer_fused"] is True
    assert findings(result, "kernel") == []


def test_kernel_level_2_bf16_applied_or_skipped_with_reason(smoke_config):
    result = train(with_optimizations(smoke_config, level=2), "kernel").run()
    ev = result.evidence[0]
    if any("bf16" in a for a in ev["applied"]):
        assert "bfloat16" in ev["measurements"]["matmul_dtypes"]
    else:
        assert any(s["what"] == "bf16 autocast" and s["why"] for s in ev["skipped"])
    assert any(s["what"] == "TF32" for s in ev["skipped"])  # CPU: no TF32


@pytest.mark.slow
def test_kernel_level_3_compiles_once_across_warmup_lengths(smoke_config):
    cfg = with_optimizations(smoke_config, level=3, warmup=6)
    result = train(cfg, "optimized").run()
    m = next(e for e in result.evidence if e["name"] == "kernel")["measurements"]
    assert m["frames_compiled"] >= 1
    assert m["compile_seconds"] > 0
    # Four distinct warmup lengths, but dynamic shapes: far fewer recompiles than lengths.
    assert m["recompiles"] < 3
    assert not result.diverged


# -- sabotage: a no-op in place of each optimization is reported as NoEffect ----------------


class NoOpCompressor(SemanticCompressor):
    def prepare_model(self, model):
        return model


class NoOpScaling(InferenceScalingEngine):
    def transform_batch(self, step, inputs, targets):
        return inputs, targets


@pytest.mark.parametrize(
    "name, make",
    [
        ("kernel", lambda cfg: NoOpKernel(CPU, 2)),
        ("compression", lambda cfg: NoOpCompressor(CPU, 0.5)),
        ("scaling", lambda cfg: NoOpScaling(CPU, 6, 8, 8, cfg.model.max_seq_len)),
    ],
)
def test_no_op_optimization_is_reported_as_no_effect(smoke_config, name, make):
    result = train(smoke_config, name, stack=[make(smoke_config)]).run()
    (finding,) = findings(result, name)
    assert finding["kind"] == "NoEffect" and finding["detail"]


# -- registry: every combination trains two steps and resumes -------------------------------


COMBINATIONS = list(itertools.product([0, 2], [0.0, 0.5], [0, 2]))


@pytest.mark.parametrize("level, ratio, warmup", COMBINATIONS)
def test_every_combination_trains_and_resumes(smoke_config, tmp_path, level, ratio, warmup):
    cfg = with_optimizations(smoke_config, level=level, ratio=ratio, warmup=warmup)
    cfg = replace(cfg, training=replace(cfg.training, num_epochs=2, steps_per_epoch=1))
    full = train(cfg).run()
    path = tmp_path / "optimized.pt"
    train(cfg, checkpoint_path=path).run(stop_after_epoch=1)
    resumed = train(cfg, checkpoint_path=path).run(resume=path)
    assert len(full.step_losses) == 2 and not full.diverged
    assert resumed.step_losses == full.step_losses
    assert resumed.val_loss == full.val_loss
    enabled = {e["name"] for e in full.evidence if e["enabled"]}
    assert enabled == {n for n, on in zip(("kernel", "compression", "scaling"),
                                          (level, ratio, warmup), strict=True) if on}  # fmt: skip
    assert all(e["effective"] for e in full.evidence)


def test_arm_names():
    assert set(ARMS) == {"baseline", "optimized", "kernel", "compression", "scaling"}
