"""Measure what one training step really executes: FLOPs, kernels and matmul dtypes.

The evidence that an optimization did something comes from here, from running the arm's model
on one batch, never from the optimization's own report. A no-op optimization therefore yields
the same fingerprint as the baseline and is caught.
"""

from __future__ import annotations

import contextlib
import copy
from collections import Counter
from dataclasses import dataclass, field

import torch
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils.flop_counter import FlopCounterMode

from ryot.model import ScaledTransformerModel, lm_loss

# aten ops that do the attention; which of them run tells the attention path apart.
ATTENTION_OPS = ("_softmax", "_scaled_dot_product", "_flash_attention", "_efficient_attention")
MATMUL_OPS = ("mm", "addmm", "bmm", "matmul", "linear")


@dataclass
class StepFingerprint:
    flops: int = 0
    tokens: int = 0
    attention_ops: set[str] = field(default_factory=set)
    matmul_dtypes: set[str] = field(default_factory=set)
    op_counts: Counter = field(default_factory=Counter)

    def to_dict(self) -> dict:
        return {
            "flops": self.flops,
            "tokens": self.tokens,
            "attention_ops": sorted(self.attention_ops),
            "matmul_dtypes": sorted(self.matmul_dtypes),
        }


class _OpRecorder(TorchDispatchMode):
    def __init__(self, fingerprint: StepFingerprint):
        super().__init__()
        self.fp = fingerprint

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        name = func.overloadpacket.__name__
        self.fp.op_counts[name] += 1
        if any(key in name for key in ATTENTION_OPS):
            self.fp.attention_ops.add(name)
        if name in MATMUL_OPS:
            first = out[0] if isinstance(out, (tuple, list)) else out
            if isinstance(first, torch.Tensor):
                self.fp.matmul_dtypes.add(str(first.dtype).removeprefix("torch."))
        return out


def fingerprint_step(
    model: ScaledTransformerModel,
    inputs: torch.Tensor,
    targets: torch.Tensor,
    autocast: contextlib.AbstractContextManager | None = None,
) -> StepFingerprint:
    """Forward and backward of one training step on a copy of `model` (left untouched)."""
    probe = copy.deepcopy(model)
    probe.train()
    fp = StepFingerprint(tokens=inputs.numel())
    counter = FlopCounterMode(display=False)
    rng = torch.get_rng_state()
    try:
        with counter, _OpRecorder(fp), autocast or contextlib.nullcontext():
            loss = lm_loss(probe(inputs), targets)
        with counter, _OpRecorder(fp):
            loss.backward()
    finally:
        torch.set_rng_state(rng)  # the probe must not shift the arm's random stream
    fp.flops = counter.get_total_flops()
    return fp


class StepProbe:
    """Fingerprints of one full-length training batch: as the arm runs it, and as the baseline
    would (same weights, explicit attention, fp32, no token dropping). Computed once, on demand.
    """

    def __init__(self, model, inputs, targets, autocast_factory):
        self.model = model
        self.inputs, self.targets = inputs, targets
        self.autocast_factory = autocast_factory
        self._arm: StepFingerprint | None = None
        self._reference: StepFingerprint | None = None

    def arm(self) -> StepFingerprint:
        if self._arm is None:
            self._arm = fingerprint_step(
                self.model, self.inputs, self.targets, self.autocast_factory()
            )
        return self._arm

    def reference(self) -> StepFingerprint:
        if self._reference is None:
            baseline = copy.deepcopy(self.model)
            baseline.token_dropper = None
            baseline.set_attention_impl("eager")
            self._reference = fingerprint_step(baseline, self.inputs, self.targets)
        return self._reference
