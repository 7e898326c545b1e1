"""KernelOptimizer's entry in the registry: its arm, config section, colour, and its evidence
(the attention ops and matmul dtypes measured in the arm against the reference, torch.compile's
counters) in words."""

from __future__ import annotations

from types import ModuleType
from typing import Any

from ryot.optim.kernel import KernelOptimizer
from ryot.optim.kernel.settings import KernelOptimizerConfig
from ryot.optim.registry import Registration, Rows


def evidence_rows(m: dict[str, Any], numbers: ModuleType) -> Rows:
    rows = []
    for key, label in (("attention_ops", "Attention ops"), ("matmul_dtypes", "Matmul dtypes")):
        ref_key = f"reference_{key}"
        if key not in m and ref_key not in m:
            continue
        arm, ref = m.pop(key, None), m.pop(ref_key, None)
        rows.append((label, numbers.fmt_list(arm) + (" (same as reference)" if arm == ref else "")))
        rows.append((f"{label} (reference)", numbers.fmt_list(ref)))
        if isinstance(arm, list) and isinstance(ref, list) and arm != ref:
            added = ", ".join(str(x) for x in arm if x not in ref)
            removed = ", ".join(str(x) for x in ref if x not in arm)
            parts = [f"added {added}" if added else "", f"removed {removed}" if removed else ""]
            rows.append((f"{label}: change", "; ".join(p for p in parts if p) or "reordered"))
    if "optimizer_fused" in m:
        rows.append(("Fused optimizer", "yes" if m.pop("optimizer_fused") else "no"))
    # Level 3. When compiling pays for itself compares runs: the report adds it from their steps.
    for key, label in (
        ("frames_compiled", "Compiled graphs"),
        ("recompiles", "Recompiles"),
        ("graph_breaks", "Graph breaks"),
    ):
        if key in m:
            rows.append((label, numbers.fmt_int(m.pop(key))))
    if "compile_seconds" in m:
        rows.append(("Compile time", numbers.fmt_seconds(m.pop("compile_seconds"))))
    return rows


REGISTRATION = Registration(
    name="kernel",
    seed_name="KernelOptimizer",
    cls=KernelOptimizer,
    build=lambda s, config, device: KernelOptimizer(device, s.level),
    section="kernel_optimizer",
    settings=KernelOptimizerConfig,
    color="#7048e8",
    evidence_rows=evidence_rows,
    switch="level",
    applied_last=True,  # torch.compile (level 3) traces the model the others changed
)
