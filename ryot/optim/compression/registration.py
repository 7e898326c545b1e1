"""SemanticCompressor's entry in the registry: its arm, config section, colour, and its evidence
(FLOPs per step against the reference, the kept fraction per layer) in words."""

from __future__ import annotations

from types import ModuleType
from typing import Any

from ryot.optim.compression import SemanticCompressor
from ryot.optim.compression.settings import SemanticCompressorConfig
from ryot.optim.registry import Registration, Rows


def evidence_rows(m: dict[str, Any], numbers: ModuleType) -> Rows:
    rows = []
    # The reference is the arm without this optimization (schema 1.0: the baseline).
    old = "baseline_flops_per_step" in m
    ref_name = "baseline" if old else "reference"
    if "flops_per_step" in m or "reference_flops_per_step" in m or old:
        arm = m.pop("flops_per_step", None)
        ref = m.pop("reference_flops_per_step", m.pop("baseline_flops_per_step", None))
        rows.append(
            ("FLOPs per step", f"{numbers.fmt_int(arm)} vs {ref_name} {numbers.fmt_int(ref)}")
        )
    if "flops_ratio" in m:
        rows.append((f"FLOPs ratio (arm / {ref_name})", numbers.fmt(m.pop("flops_ratio"), ".4f")))
    if "kept_fraction_per_layer" in m:
        kept = numbers.as_dict(m.pop("kept_fraction_per_layer"))
        text = ", ".join(f"layer {k}: {numbers.fmt(v, '.4f')}" for k, v in kept.items())
        rows.append(("Kept fraction per layer", text or "(none)"))
    return rows


REGISTRATION = Registration(
    name="compression",
    seed_name="SemanticCompressor",
    cls=SemanticCompressor,
    build=lambda s, config, device: SemanticCompressor(device, s.ratio, s.score),
    section="semantic_compressor",
    settings=SemanticCompressorConfig,
    color="#0c8f6e",
    evidence_rows=evidence_rows,
    switch="ratio",
)
