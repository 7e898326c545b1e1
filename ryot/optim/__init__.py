"""The optimization stack and the arms built from it."""

from __future__ import annotations

import torch

from ryot.config import Config
from ryot.optim.base import Evidence, Optimization
from ryot.optim.compression import SemanticCompressor
from ryot.optim.kernel import KernelOptimizer
from ryot.optim.scaling import InferenceScalingEngine

# Arm name -> the optimizations it enables. "kernel", "compression" and "scaling" are the
# ablation arms: one optimization alone, to show what each contributes.
ARMS: dict[str, tuple[str, ...]] = {
    "baseline": (),
    "optimized": ("compression", "scaling", "kernel"),
    "kernel": ("kernel",),
    "compression": ("compression",),
    "scaling": ("scaling",),
}


def build_stack(config: Config, arm: str, device: torch.device) -> list[Optimization]:
    """The optimizations of `arm`, in application order.

    The token dropper is installed before the kernel optimizer so that torch.compile (level 3)
    traces the model with it.
    """
    if arm not in ARMS:
        raise ValueError(f"unknown arm {arm!r} (choose from {', '.join(ARMS)})")
    o = config.optimizations
    enabled = ARMS[arm]
    stack: list[Optimization] = []
    if "compression" in enabled:
        c = o.semantic_compressor
        stack.append(SemanticCompressor(device, c.ratio, c.score))
    if "scaling" in enabled:
        s = o.inference_scaling
        stack.append(
            InferenceScalingEngine(
                device, s.warmup_steps, s.min_seq_len, s.step_size, config.model.max_seq_len
            )
        )
    if "kernel" in enabled:
        stack.append(KernelOptimizer(device, o.kernel_optimizer.level))
    return stack


__all__ = [
    "ARMS",
    "Evidence",
    "InferenceScalingEngine",
    "KernelOptimizer",
    "Optimization",
    "SemanticCompressor",
    "build_stack",
]
