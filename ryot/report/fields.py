"""The arms in the page's order: baseline, optimized, then the ablation arms as registered.

Everything else the report reads is an attribute of the typed comparison
(ryot.comparison.model), read once by Comparison.from_dict.
"""

from __future__ import annotations

from ryot.comparison.model import Comparison
from ryot.optim import registry


def arm_sort_key(arm: str) -> tuple[int, str]:
    """baseline, optimized, then the ablation arms in registration order, then any other."""
    order = registry.arm_order()
    return (order.index(arm) if arm in order else len(order), arm)


def arm_names(c: Comparison) -> list[str]:
    """Every arm of the runs, in the page's order (arm_sort_key)."""
    return sorted(c.arms, key=arm_sort_key)
