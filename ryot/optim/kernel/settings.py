"""KernelOptimizer's config section, `optimizations.kernel_optimizer`."""

from __future__ import annotations

from dataclasses import dataclass

from ryot.config import checked


@dataclass(frozen=True)
class KernelOptimizerConfig:
    level: int = checked(0, (lambda v: 0 <= v <= 3, "must be 0, 1, 2 or 3"))  # 0: off
