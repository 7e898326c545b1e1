"""The built-in optimizations on models Ryot does not own: applied where they can be, skipped
with a reason where the evidence can say so, and a usage error before any run where an
optimization the config turns on cannot apply (ryot.optim.applicability)."""

from __future__ import annotations

import contextlib
import copy
import math
from dataclasses import dataclass

import pytest
import torch
import torch.nn.functional as F
from torch import nn

import ryot.optim  # noqa: F401  (registers the built-ins' config sections)
from ryot.bench.model import ScaledTransformerModel, lm_loss
from ryot.config import config_from_dict
from ryot.optim import registry
from ryot.optim.applicability import inapplicable
from ryot.optim.base import Optimization, RunFacts
from ryot.optim.compression import SemanticCompressor
from ryot.optim.compression.blocks import TokenDroppingBlock, find_blocks
from ryot.optim.kernel import KernelOptimizer
from ryot.optim.probe import StepProbe
from ryot.optim.scaling import InferenceScalingEngine
from tests.workloads import tiny_gpt

CPU = torch.device("cpu")
VOCAB, LENGTH = 16, 12


# -- a nanoGPT-shaped model: transformer.h, and attention chosen by a boolean `flash` ---------


class NanoAttention(nn.Module):
    def __init__(self, width: int, heads: int, max_len: int, flash: bool):
        super().__init__()
        self.n_head = heads
        self.c_attn = nn.Linear(width, 3 * width)
        self.c_proj = nn.Linear(width, width)
        self.flash = flash
        mask = torch.tril(torch.ones(max_len, max_len)).view(1, 1, max_len, max_len)
        self.register_buffer("bias", mask)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        B, T, C = x.size()
        q, k, v = (
            t.view(B, T, self.n_head, C // self.n_head).transpose(1, 2)  # (B, nh, T, hs)
            for t in self.c_attn(x).split(C, dim=2)
        )
        if self.flash:
            y = F.scaled_dot_product_attention(q, k, v, is_causal=True)
        else:
            att = (q @ k.transpose(-2, -1)) * (1.0 / math.sqrt(k.size(-1)))
            att = att.masked_fill(self.bias[:, :, :T, :T] == 0, float("-inf"))
            y = F.softmax(att, dim=-1) @ v
        return self.c_proj(y.transpose(1, 2).contiguous().view(B, T, C))


class NanoBlock(nn.Module):
    def __init__(self, width: int, heads: int, max_len: int, flash: bool):
        super().__init__()
        self.ln_1, self.ln_2 = nn.LayerNorm(width), nn.LayerNorm(width)
        self.attn = NanoAttention(width, heads, max_len, flash)
        self.mlp = nn.Sequential(
            nn.Linear(width, 4 * width), nn.GELU(), nn.Linear(4 * width, width)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.attn(self.ln_1(x))
        return x + self.mlp(self.ln_2(x))


class NanoGPT(nn.Module):
    def __init__(self, vocab_size: int, max_seq_len: int, layers: int, flash: bool):
        super().__init__()
        width = 32
        self.transformer = nn.ModuleDict(
            dict(
                wte=nn.Embedding(vocab_size, width),
                wpe=nn.Embedding(max_seq_len, width),
                h=nn.ModuleList(NanoBlock(width, 2, max_seq_len, flash) for _ in range(layers)),
                ln_f=nn.LayerNorm(width),
            )
        )
        self.lm_head = nn.Linear(width, vocab_size, bias=False)

    def forward(self, idx: torch.Tensor) -> torch.Tensor:
        t = self.transformer
        x = t.wte(idx) + t.wpe(torch.arange(idx.shape[1], device=idx.device))
        for block in t.h:
            x = block(x)
        return self.lm_head(t.ln_f(x))


def nano_gpt(vocab_size: int, max_seq_len: int, layers: int = 4, flash: bool = False):
    """The factory a config names (tests.test_foreign_optim:nano_gpt)."""
    return NanoGPT(vocab_size, max_seq_len, layers, flash)


MODELS = {
    "tiny_gpt": lambda: tiny_gpt.build(VOCAB, LENGTH, layers=4),
    "nano_gpt": lambda: nano_gpt(VOCAB, LENGTH),
}


def _seeded(make):
    torch.manual_seed(0)
    return make()


def _batch(rows: int = 4, length: int = LENGTH) -> tuple[torch.Tensor, torch.Tensor]:
    gen = torch.Generator().manual_seed(1)
    batch = torch.randint(0, VOCAB, (rows, length + 1), generator=gen)
    return batch[:, :-1], batch[:, 1:]


def _facts(model, opt: Optimization, step_tokens=(), optimizer_options=None) -> RunFacts:
    """What the trainer hands finish(): the optimizer as built, a probe of one batch."""
    options = opt.optimizer_options() if optimizer_options is None else optimizer_options
    inputs, targets = _batch()
    return RunFacts(
        step_tokens=list(step_tokens),
        full_step_tokens=4 * LENGTH,
        samples_per_step=4,
        max_seq_len=LENGTH,
        model=model,
        optimizer=torch.optim.AdamW(model.parameters(), **options),
        probe=StepProbe(model, inputs, targets, opt.autocast),
    )


# -- kernel optimizer ------------------------------------------------------------------------


def test_kernel_on_an_unrecognised_attention_skips_it_and_fuses_adamw():
    model = _seeded(MODELS["tiny_gpt"])
    opt = KernelOptimizer(CPU, 1)
    assert opt.cannot_apply(model) is None  # fused AdamW and bf16 apply to any model
    model = opt.prepare_model(model)
    ev = opt.evidence
    assert ev.skipped == [
        {
            "what": "scaled_dot_product_attention",
            "why": "no attention module Ryot recognises (Ryot's CausalSelfAttention, or a module "
            "with a boolean `flash` attribute as in nanoGPT)",
        }
    ]
    assert ev.applied == ["fused AdamW"]
    opt.finish(_facts(model, opt))
    m = ev.measurements
    assert m["optimizer_fused"] is True
    assert m["attention_ops"] == m["reference_attention_ops"]  # its own softmax, both sides
    assert ev.findings == []


def test_kernel_switches_nanogpt_flash_and_the_probe_sees_it():
    model = _seeded(MODELS["nano_gpt"])
    opt = KernelOptimizer(CPU, 1)
    model = opt.prepare_model(model)
    attention = [m for m in model.modules() if isinstance(m, NanoAttention)]
    assert [a.flash for a in attention] == [True] * 4
    assert (
        "scaled_dot_product_attention (4 of 4 attention modules switched)" in opt.evidence.applied
    )
    opt.finish(_facts(model, opt))
    m = opt.evidence.measurements
    assert m["attention_ops"] != m["reference_attention_ops"]
    assert any("scaled_dot_product" in op for op in m["attention_ops"])
    assert "_softmax" in m["reference_attention_ops"]  # the reference ran flash = False
    assert all(a.flash for a in attention)  # the probe undid it on its copy only
    assert opt.evidence.findings == []


def test_a_model_that_chose_sdpa_itself_earns_the_kernel_nothing():
    model = _seeded(lambda: nano_gpt(VOCAB, LENGTH, flash=True))
    opt = KernelOptimizer(CPU, 1)
    model = opt.prepare_model(model)
    assert opt.evidence.skipped == [
        {
            "what": "scaled_dot_product_attention",
            "why": "all 4 attention modules already use it (the model's own choice)",
        }
    ]
    # Without the fused optimizer nothing is left of it: the reference's explicit attention
    # differs from the arm, but the difference is the model's.
    opt.finish(_facts(model, opt, optimizer_options={}))
    m = opt.evidence.measurements
    assert m["attention_ops"] != m["reference_attention_ops"]
    assert [f["kind"] for f in opt.evidence.findings] == ["NoEffect"]


# -- semantic compressor ---------------------------------------------------------------------


@pytest.mark.parametrize("name", MODELS)
def test_compression_wraps_the_middle_blocks_of_a_team_model(name):
    model = _seeded(MODELS[name])
    unwrapped = copy.deepcopy(model)
    before = dict(model.named_parameters())
    opt = SemanticCompressor(CPU, 0.5)
    assert opt.cannot_apply(model) is None
    model = opt.prepare_model(model)
    where, blocks = find_blocks(model)
    assert [isinstance(b, TokenDroppingBlock) for b in blocks] == [False, True, True, False]
    assert opt.evidence.applied == [
        f"token dropping in blocks 1..2 of 0..3 of {where} (random score)"
    ]
    # The optimizer still updates the tensors the trainer looked up by their old names.
    assert {id(p) for p in model.parameters()} == {id(p) for p in before.values()}
    inputs, targets = _batch()

    model.train()
    model(inputs)
    assert opt.dropper.kept_fraction == {1: [0.5], 2: [0.5]}

    model.eval()
    with torch.no_grad():
        torch.testing.assert_close(model(inputs), unwrapped.eval()(inputs), rtol=0, atol=0)
    assert opt.dropper.kept_fraction == {1: [0.5], 2: [0.5]}  # eval mode: every token

    model.train()
    opt.finish(_facts(model, opt))
    m = opt.evidence.measurements
    assert m["flops_per_step"] < m["reference_flops_per_step"]
    assert m["kept_fraction_per_layer"] == {"1": 0.5, "2": 0.5}
    assert opt.evidence.findings == []
    assert all(b.dropper is opt.dropper for b in blocks[1:3])  # the probe's copy was undone


def test_the_probe_reference_runs_every_token_through_the_wrappers():
    model = _seeded(MODELS["nano_gpt"])
    opt = SemanticCompressor(CPU, 0.5)
    model = opt.prepare_model(model)
    inputs, targets = _batch()
    probe = StepProbe(model, inputs, targets, contextlib.nullcontext)
    unwrapped = StepProbe(_seeded(MODELS["nano_gpt"]), inputs, targets, contextlib.nullcontext)
    assert probe.without_token_dropping().flops == unwrapped.arm().flops
    assert probe.arm().flops < unwrapped.arm().flops


def test_ryot_model_still_uses_its_token_dropper():
    torch.manual_seed(0)
    cfg = config_from_dict({"model": {"vocab_size": VOCAB, "max_seq_len": LENGTH,
                                      "embed_dim": 16, "num_heads": 2, "num_layers": 3,
                                      "ff_dim": 32}})  # fmt: skip
    model = ScaledTransformerModel(cfg.model)
    opt = SemanticCompressor(CPU, 0.5)
    model = opt.prepare_model(model)
    assert model.token_dropper is opt.dropper
    assert not any(isinstance(m, TokenDroppingBlock) for m in model.modules())


# -- inference scaling -----------------------------------------------------------------------


def test_length_warmup_trains_a_team_model():
    model = _seeded(MODELS["tiny_gpt"])
    opt = InferenceScalingEngine(CPU, warmup_steps=3, min_seq_len=4, step_size=4, max_seq_len=12)
    assert opt.cannot_apply(copy.deepcopy(model)) is None
    optimizer = torch.optim.AdamW(model.parameters())
    inputs, targets = _batch()
    fed = []
    for step in range(4):
        x, y = opt.transform_batch(step, inputs, targets)
        lm_loss(model(x), y).backward()
        optimizer.step()
        optimizer.zero_grad()
        fed.append(x.numel())
    assert fed == [16, 32, 48, 48]
    opt.finish(_facts(model, opt, step_tokens=fed))
    assert opt.evidence.measurements["schedule"] == [[1, 4], [2, 8], [3, 12]]
    assert opt.evidence.findings == []


# -- inapplicable: a usage error before any run ----------------------------------------------


def _config(factory: str | None, optimizations: dict, **model) -> object:
    section = {"vocab_size": VOCAB, "max_seq_len": LENGTH, **model}
    if factory:
        section["factory"] = factory
    return config_from_dict({"model": section, "optimizations": optimizations})


ALL_ON = {
    "kernel_optimizer": {"level": 2},
    "semantic_compressor": {"ratio": 0.25},
    "inference_scaling": {"warmup_steps": 2, "min_seq_len": 8, "step_size": 4},
}


@contextlib.contextmanager
def process_state_unchanged():
    """Every process-wide switch an optimization could touch reads the same after the block."""

    def read():
        return (
            torch.backends.cuda.matmul.allow_tf32,
            torch.backends.cudnn.allow_tf32,
            torch.is_grad_enabled(),
            torch.get_num_threads(),
            torch.get_rng_state(),
        )

    before = read()
    yield
    after = read()
    assert after[:4] == before[:4]
    assert torch.equal(after[4], before[4])


@pytest.mark.parametrize(
    "factory, make",
    [
        ("tests.workloads.tiny_gpt:build", lambda: tiny_gpt.build(VOCAB, LENGTH, layers=4)),
        ("tests.test_foreign_optim:nano_gpt", lambda: nano_gpt(VOCAB, LENGTH)),
        ("tests.workloads.tiny_gpt:no_blocks", lambda: tiny_gpt.no_blocks(VOCAB, LENGTH)),
    ],
)
def test_what_applies_is_not_a_usage_error(factory, make):
    optimizations = dict(ALL_ON)
    if factory.endswith("no_blocks"):
        optimizations["semantic_compressor"] = {"ratio": 0.0}  # nothing to drop tokens in
    model = _seeded(make)
    model.train()
    state = copy.deepcopy(model.state_dict())
    with process_state_unchanged():
        assert inapplicable(_config(factory, optimizations), model, CPU) is None
    assert model.training  # asked on copies: the model is as it was
    assert all(torch.equal(v, state[k]) for k, v in model.state_dict().items())


def test_ryot_model_with_three_layers_is_not_a_usage_error():
    cfg = _config(None, ALL_ON, num_layers=3, embed_dim=16, num_heads=2, ff_dim=32)
    assert inapplicable(cfg, ScaledTransformerModel(cfg.model), CPU) is None


def test_compression_without_the_block_protocol():
    cfg, model = (
        _config("tests.workloads.tiny_gpt:no_blocks", ALL_ON),
        tiny_gpt.no_blocks(VOCAB, LENGTH),
    )
    with process_state_unchanged():
        why = inapplicable(cfg, model, CPU)
    assert why == (
        "optimizations.semantic_compressor.ratio = 0.25 cannot apply: the model has no "
        "ModuleList of (B, T, C) blocks at model.blocks or model.transformer.h"
    )


def test_compression_on_too_few_team_blocks():
    cfg = _config("tests.test_foreign_optim:nano_gpt", ALL_ON)
    why = inapplicable(cfg, nano_gpt(VOCAB, LENGTH, layers=2), CPU)
    assert why == (
        "optimizations.semantic_compressor.ratio = 0.25 cannot apply: model.transformer.h holds "
        "2 blocks: token dropping needs 3 or more (the first and the last keep every token)"
    )


def test_compression_on_ryot_model_with_two_layers():
    cfg = _config(None, ALL_ON, num_layers=2, embed_dim=16, num_heads=2, ff_dim=32)
    why = inapplicable(cfg, ScaledTransformerModel(cfg.model), CPU)
    assert why == (
        "optimizations.semantic_compressor.ratio = 0.25 cannot apply: model.num_layers = 2: "
        "token dropping needs 3 or more layers (the first and the last keep every token)"
    )


def test_length_warmup_on_a_model_that_takes_only_its_full_length():
    optimizations = {**ALL_ON, "semantic_compressor": {"ratio": 0.0}}
    cfg = _config("tests.workloads.tiny_gpt:full_length_only", optimizations)
    model = tiny_gpt.full_length_only(VOCAB, LENGTH)
    with process_state_unchanged():
        why = inapplicable(cfg, model, CPU)
    assert why == (
        "optimizations.inference_scaling.warmup_steps = 2 cannot apply: the model's forward of "
        "8 tokens raised ValueError: expected 12 tokens"
    )
    assert model.training


def test_a_registration_without_a_switch_names_its_section():
    @dataclass(frozen=True)
    class PickyConfig:
        on: bool = True

    class Picky(Optimization):
        name = "picky"

        @property
        def enabled(self) -> bool:
            return True

        def cannot_apply(self, model):
            return "it wants a model of its own"

    registration = registry.Registration(
        name="picky", seed_name="Picky", cls=Picky, build=lambda s, c, d: Picky(d),
        section="picky_section", settings=PickyConfig, color="#000000",
    )  # fmt: skip
    with registry.registered(registration):
        cfg = _config("tests.workloads.tiny_gpt:build", {})
        why = inapplicable(cfg, tiny_gpt.build(VOCAB, LENGTH), CPU)
    assert why == "optimizations.picky_section cannot apply: it wants a model of its own"
