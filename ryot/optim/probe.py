"""Measure what one training step really executes: FLOPs, kernels and matmul dtypes.

The evidence that an optimization did something comes from here, from running the arm's model
on one batch, never from the optimization's own report. A no-op optimization therefore yields
the same fingerprint as its reference (the arm without it) and is caught.
"""

from __future__ import annotations

import contextlib
import copy
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field

import torch
from torch import nn
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils.flop_counter import FlopCounterMode

from ryot.bench.model import ScaledTransformerModel, lm_loss
from ryot.optim.compression.blocks import stop_dropping
from ryot.optim.kernel.attention import set_sdpa

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
    model: nn.Module,
    inputs: torch.Tensor,
    targets: torch.Tensor,
    autocast: contextlib.AbstractContextManager | None = None,
) -> StepFingerprint:
    """Forward and backward of one training step on a copy of `model` (left untouched)."""
    return _measure(copy.deepcopy(model), inputs, targets, autocast)


def _measure(
    probe: nn.Module,
    inputs: torch.Tensor,
    targets: torch.Tensor,
    autocast: contextlib.AbstractContextManager | None,
) -> StepFingerprint:
    """Forward and backward of one training step on `probe`, a throwaway copy."""
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


def _drop_no_tokens(model: nn.Module) -> None:
    """Undo the compressor as it was applied: Ryot's model's dropper, a team's block wrappers."""
    if isinstance(model, ScaledTransformerModel):
        model.token_dropper = None
    stop_dropping(model)


def _eager_attention(model: nn.Module) -> None:
    """Explicit attention in every module the kernel optimizer recognises (Ryot's: "eager",
    nanoGPT's: flash = False); a model with none runs its own attention as it is."""
    set_sdpa(model, False)


class StepProbe:
    """Fingerprints of one full-length training batch: as the arm runs it, and each
    optimization's reference, which is the same arm with that one optimization undone.

    A reference that undid more (the whole baseline) would credit one optimization with
    another's effect: torch's FLOP counter does not count SDPA's fused CPU kernel, so against
    the baseline a no-op compressor beside the kernel optimizer would show fewer FLOPs.
    Each fingerprint is one forward and backward on a deep copy of the model, computed once,
    on demand. Every fingerprint starts from the same random state, so a random token dropper
    keeps the same tokens in the arm and in a reference that keeps it.
    """

    def __init__(self, model, inputs, targets, autocast_factory):
        self.model = model
        self.inputs, self.targets = inputs, targets
        self.autocast_factory = autocast_factory
        self._fingerprints: dict[str, StepFingerprint] = {}
        # Seconds spent fingerprinting: Ryot's instrument, on throwaway copies whose loss no
        # evaluation reads, so the trainer times it apart like an evaluation.
        self.seconds = 0.0

    def arm(self) -> StepFingerprint:
        return self._fingerprint("arm", None, same_autocast=True)

    def without_token_dropping(self) -> StepFingerprint:
        """The compressor's reference: the arm's attention and autocast, every token kept."""
        return self._fingerprint("without token dropping", _drop_no_tokens, same_autocast=True)

    def without_kernels(self) -> StepFingerprint:
        """The kernel optimizer's reference: the arm's token dropping, explicit attention, and
        no autocast (fp32)."""
        return self._fingerprint("without kernels", _eager_attention, same_autocast=False)

    def _fingerprint(
        self, key: str, edit: Callable[[nn.Module], None] | None, same_autocast: bool
    ) -> StepFingerprint:
        if key not in self._fingerprints:
            began = time.perf_counter()
            probe = copy.deepcopy(self.model)
            if edit is not None:
                edit(probe)
            autocast = self.autocast_factory() if same_autocast else None
            self._fingerprints[key] = _measure(probe, self.inputs, self.targets, autocast)
            self.seconds += time.perf_counter() - began
        return self._fingerprints[key]
