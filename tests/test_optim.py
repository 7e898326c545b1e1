"""The optimization stack: identity when off, real effect when on, NoEffect when sabotaged."""

from __future__ import annotations

import functools
import itertools
from dataclasses import replace

import pytest
import torch

from ryot.bench.model import Block, ScaledTransformerModel
from ryot.config import ModelConfig, load_config
from ryot.optim import build_stack, kernel, registry
from ryot.optim.base import RunFacts
from ryot.optim.compression import SemanticCompressor, TokenDropper, drop_tokens, kept_count
from ryot.optim.kernel import KernelOptimizer
from ryot.optim.probe import StepProbe
from ryot.optim.scaling import InferenceScalingEngine, warmup_length
from ryot.train.evaluation import evaluate
from ryot.train.trainer import Trainer
from tests.conftest import CONFIGS
from tests.sabotage import NoOpKernel

CPU = torch.device("cpu")


def with_optimizations(cfg, level=0, ratio=0.0, warmup=0, score="random"):
    o = cfg.optimizations
    return replace(
        cfg,
        optimizations=o.replace(
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
    assert m["flops_per_step"] < m["reference_flops_per_step"]
    assert m["kept_fraction_per_layer"] == {"1": 0.5, "2": 0.5}
    assert findings(result, "compression") == []


def test_evaluation_runs_the_full_model(smoke_config):
    cfg = with_optimizations(smoke_config, ratio=0.5)
    trainer = train(cfg, "compression")
    model, _, _ = trainer.build()
    dropper = model.token_dropper
    evaluate(model, trainer.val_data, trainer.device)
    assert dropper.kept_fraction == {}  # never called in eval mode


# -- sequence-length warmup ------------------------------------------------------------------


def test_warmup_schedule():
    lengths = [warmup_length(s, 10, 32, 128, 16) for s in range(12)]
    # Full length from the warmup's last step (step 9) on, never after the warmup.
    assert lengths[0] == 32 and lengths[9:] == [128, 128, 128]
    assert lengths == sorted(lengths) and all(n % 16 == 0 for n in lengths)


def test_warmup_rounds_up_exactly_onto_the_grid():
    # The ramp lands exactly on 64 and 96: rounding up must not overshoot by a step_size.
    assert [warmup_length(s, 4, 32, 128, 32) for s in range(5)] == [32, 64, 96, 128, 128]
    # Step 0 stays at min_len even off the step_size grid; later lengths are on it.
    assert [warmup_length(s, 3, 40, 128, 32) for s in range(3)] == [40, 96, 128]


def test_shipped_warmup_reaches_full_length_inside_the_run():
    cfg = load_config(CONFIGS / "stage3a.yaml")
    s, m = cfg.optimizations.inference_scaling, cfg.model
    if not s.warmup_steps:
        pytest.skip("the shipped configuration has no length warmup")
    lengths = [
        warmup_length(step, s.warmup_steps, s.min_seq_len, m.max_seq_len, s.step_size)
        for step in range(cfg.total_steps)
    ]
    assert lengths[0] == s.min_seq_len and lengths[-1] == m.max_seq_len
    full_from = lengths.index(m.max_seq_len)
    assert full_from <= min(s.warmup_steps, cfg.total_steps) - 1


def test_warmup_of_a_whole_run_ends_its_last_third_at_full_length():
    # The seed's settings: warmup 100 over a 100-step run, lengths 32..128 in steps of 32.
    lengths = [warmup_length(step, 100, 32, 128, 32) for step in range(100)]
    counts = {n: lengths.count(n) for n in sorted(set(lengths))}
    assert counts == {32: 1, 64: 33, 96: 33, 128: 33}


def _scaling_run(lengths, samples=16, max_len=128):
    return RunFacts(
        step_tokens=[n * samples for n in lengths],
        full_step_tokens=samples * max_len,
        samples_per_step=samples,
        max_seq_len=max_len,
        model=None,
        optimizer=None,
        probe=None,
    )


def test_scaling_evidence_comes_from_the_measured_lengths():
    # The settings promise 128 by step 100; the record says the run fed 32 and 64 only.
    engine = InferenceScalingEngine(CPU, 100, 32, 32, 128)
    engine.finish(_scaling_run([32] * 50 + [64] * 50))
    ev = engine.evidence
    assert ev.applied == [
        "sequence length 32 -> 64 measured over 100 steps (never full length 128)"
    ]
    assert ev.measurements["schedule"] == [[1, 32], [51, 64]]
    assert ev.measurements["tokens_fraction"] == 0.375
    assert [f["kind"] for f in ev.findings] == ["Shortcut"] and not ev.effective


def test_scaling_evidence_names_the_measured_first_full_step():
    engine = InferenceScalingEngine(CPU, 100, 32, 32, 128)
    engine.finish(_scaling_run([32, 64, 64, 128, 128]))
    assert engine.evidence.applied == [
        "sequence length 32 -> 128 measured over 5 steps (full length from step 4)"
    ]
    assert engine.evidence.findings == []


def test_scaling_at_full_length_throughout_has_no_effect():
    engine = InferenceScalingEngine(CPU, 100, 32, 32, 128)
    engine.finish(_scaling_run([128] * 3))
    assert [f["kind"] for f in engine.evidence.findings] == ["NoEffect"]


def test_scaling_feeds_fewer_tokens_and_reports_the_schedule(smoke_config):
    cfg = with_optimizations(smoke_config, warmup=6)
    result = train(cfg, "scaling").run()
    ev = result.evidence[0]
    m = ev["measurements"]
    assert result.step_tokens == m["tokens_per_step"]
    full = m["full_tokens_per_step"]
    assert result.step_tokens[0] < full == result.step_tokens[5] == result.step_tokens[-1]
    assert m["schedule"][0] == [1, 8] and m["schedule"][-1][1] == cfg.model.max_seq_len
    first_full = result.step_tokens.index(full) + 1
    assert ev["applied"] == [
        f"sequence length 8 -> {cfg.model.max_seq_len} measured over {cfg.total_steps} steps "
        f"(full length from step {first_full})"
    ]
    assert ev["findings"] == []


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


def test_kernel_level_3_compiles_once_across_warmup_lengths(smoke_config, monkeypatch):
    """Level 3 through Dynamo with its eager backend: the model the other optimizations changed
    is traced with a dynamic sequence length, once across the warmup's four lengths, and the
    compile is counted. The same run through Inductor (a cold compile is 85 s of a core on the
    2-core AMD EPYC) is the compile acceptance suite's: compiled/test_kernel_level_3.py."""
    monkeypatch.setattr(torch, "compile", functools.partial(torch.compile, backend="eager"))
    assert_level_3_compiles_once_across_warmup_lengths(smoke_config)


def assert_level_3_compiles_once_across_warmup_lengths(smoke_config) -> None:
    """Kernel level 3 on a 6-step length warmup, with whatever torch.compile backend is set:
    the compile is counted, and dynamic shapes keep it to fewer graphs than lengths (shared
    with the compile acceptance suite, compiled/, which runs it through Inductor)."""
    cfg = with_optimizations(smoke_config, level=3, warmup=6)
    result = train(cfg, "optimized").run()
    m = next(e for e in result.evidence if e["name"] == "kernel")["measurements"]
    assert m["frames_compiled"] >= 1
    assert m["compile_seconds"] > 0
    # Four distinct warmup lengths, but dynamic shapes: far fewer graphs and recompiles than
    # lengths (a static compile makes one graph per length; torch 2.13 leaves Dynamo's
    # "recompiles" counter at 0 even then, so the graphs are what tells them apart).
    lengths = len(set(result.step_tokens))
    assert lengths == 4
    assert m["frames_compiled"] < lengths
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


# -- each optimization's reference is the arm without that optimization alone ---------------


@pytest.fixture
def native_bf16(monkeypatch):
    """bf16 autocast on any CPU (emulated: slow but correct), so the full arm has it here too."""
    monkeypatch.setattr(kernel, "native_bf16", lambda device: (True, "faked for the test"))


def full_arm_config(cfg):
    """Every optimization on, without dropout as shipped: SDPA then takes its fused CPU kernel,
    whose FLOPs torch's counter does not see. Against the whole baseline, a no-op compressor
    beside the kernel optimizer would then show fewer FLOPs."""
    cfg = with_optimizations(cfg, level=2, ratio=0.5, warmup=6)
    return replace(cfg, model=replace(cfg.model, dropout=0.0))


NO_OPS = {
    "compression": lambda cfg: NoOpCompressor(CPU, cfg.optimizations.semantic_compressor.ratio),
    "kernel": lambda cfg: NoOpKernel(CPU, cfg.optimizations.kernel_optimizer.level),
    "scaling": lambda cfg: NoOpScaling(CPU, 6, 8, 8, cfg.model.max_seq_len),
}


@pytest.mark.parametrize("no_op", [None, *NO_OPS])
def test_no_op_inside_the_full_arm_is_caught_and_the_rest_are_not(smoke_config, native_bf16, no_op):
    cfg = full_arm_config(smoke_config)
    stack = [
        NO_OPS[o.name](cfg) if o.name == no_op else o for o in build_stack(cfg, "optimized", CPU)
    ]
    result = train(cfg, "optimized", stack=stack).run()
    kinds = {e["name"]: [f["kind"] for f in e["findings"]] for e in result.evidence}
    assert kinds == {name: ["NoEffect"] if name == no_op else [] for name in NO_OPS}
    kernel_m = next(e for e in result.evidence if e["name"] == "kernel")["measurements"]
    if no_op != "kernel":
        assert "bfloat16" in kernel_m["matmul_dtypes"]
        assert kernel_m["reference_matmul_dtypes"] == ["float32"]


def test_each_reference_undoes_one_optimization(smoke_config, native_bf16):
    cfg = full_arm_config(smoke_config)
    trainer = train(cfg, "optimized")
    model, _, _ = trainer.build()
    batch = trainer.train_data[:4]
    probe = StepProbe(model, batch[:, :-1], batch[:, 1:], trainer._autocast)
    arm, no_drop, no_kernels = probe.arm(), probe.without_token_dropping(), probe.without_kernels()
    # Dropping tokens cuts FLOPs at the same kernels and dtypes ...
    assert arm.flops < no_drop.flops
    assert (arm.attention_ops, arm.matmul_dtypes) == (no_drop.attention_ops, no_drop.matmul_dtypes)
    # ... and the kernel reference keeps the dropping (its gathers), with explicit fp32 attention.
    assert no_kernels.op_counts["gather"] == arm.op_counts["gather"] > no_drop.op_counts["gather"]
    assert no_kernels.matmul_dtypes == {"float32"} and "bfloat16" in arm.matmul_dtypes
    assert no_kernels.attention_ops != arm.attention_ops
    assert model.attention_impl == "sdpa" and model.token_dropper is not None  # untouched
    assert probe.arm() is arm  # computed once


# -- TF32: a process-wide switch, put back after the arm ----------------------------------


@pytest.fixture
def fake_cuda_kernel(monkeypatch):
    """A level-2 kernel optimizer that believes it runs on CUDA; TF32 flags start off."""
    monkeypatch.setattr(kernel, "native_bf16", lambda device: (False, "faked for the test"))
    real = kernel._tf32_flags()
    kernel._set_tf32(False, False)
    yield KernelOptimizer(torch.device("cuda"), 2)
    kernel._set_tf32(*real)  # whatever the code under test did, other tests see the real flags


def _tiny_model():
    cfg = ModelConfig(vocab_size=10, embed_dim=16, num_heads=2, num_layers=3, ff_dim=32,
                      max_seq_len=8, dropout=0.0)  # fmt: skip
    torch.manual_seed(0)
    return ScaledTransformerModel(cfg)


def test_tf32_is_restored_by_finish(fake_cuda_kernel):
    opt = fake_cuda_kernel
    model = opt.prepare_model(_tiny_model())
    assert kernel._tf32_flags() == (True, True) and "TF32 matmuls" in opt.evidence.applied
    batch = torch.randint(0, 10, (2, 9))
    probe = StepProbe(model, batch[:, :-1], batch[:, 1:], opt.autocast)
    optimizer = torch.optim.AdamW(model.parameters())
    opt.finish(RunFacts([], 0, 2, 8, model=model, optimizer=optimizer, probe=probe))
    assert kernel._tf32_flags() == (False, False)
    assert opt.evidence.measurements["tf32_matmuls_in_training"] is True


def test_tf32_is_restored_by_close_without_finish(fake_cuda_kernel):
    opt = fake_cuda_kernel
    opt.prepare_model(_tiny_model())
    opt.close()  # what the trainer does when a run ends before finish
    assert kernel._tf32_flags() == (False, False)
    torch.backends.cuda.matmul.allow_tf32 = True  # set by someone else after the arm ...
    opt.close()
    assert kernel._tf32_flags() == (True, False)  # ... and left alone: close is idempotent


def test_tf32_set_through_the_new_api_is_left_alone(fake_cuda_kernel, monkeypatch):
    def mixed_api():
        raise RuntimeError("mix of the legacy and new APIs")

    monkeypatch.setattr(kernel, "_tf32_flags", mixed_api)
    opt = fake_cuda_kernel
    opt.prepare_model(_tiny_model())
    opt.close()
    assert any(s["what"] == "TF32" for s in opt.evidence.skipped)
    assert "TF32 matmuls" not in opt.evidence.applied


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
    assert set(registry.arms()) == {"baseline", "optimized", "kernel", "compression", "scaling"}
