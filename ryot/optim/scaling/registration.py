"""InferenceScalingEngine's entry in the registry: its arm, config section, colour, and its
evidence (the tokens each step was measured to feed, the length schedule) in words."""

from __future__ import annotations

import statistics
from types import ModuleType
from typing import Any

from ryot.optim.registry import Registration, Rows
from ryot.optim.scaling import InferenceScalingEngine
from ryot.optim.scaling.settings import InferenceScalingConfig


def evidence_rows(m: dict[str, Any], numbers: ModuleType) -> Rows:
    rows = []
    if "tokens_per_step" in m:
        tokens = [t for t in numbers.as_list(m.pop("tokens_per_step")) if numbers.is_num(t)]
        if tokens:
            summary = (
                f"{len(tokens)} steps: min {numbers.fmt_int(min(tokens))}, median "
                f"{numbers.fmt_int(statistics.median(tokens))}, "
                f"max {numbers.fmt_int(max(tokens))}, total {numbers.fmt_int(sum(tokens))}"
            )
            rows.append(("Tokens per step", summary))
    if "full_tokens_per_step" in m:
        rows.append(("Full tokens per step", numbers.fmt_int(m.pop("full_tokens_per_step"))))
    if "tokens_fraction" in m:
        rows.append(("Tokens fed (fraction of full)", numbers.fmt(m.pop("tokens_fraction"), ".4f")))
    if "schedule" in m:
        changes = [
            s for s in numbers.as_list(m.pop("schedule")) if isinstance(s, list) and len(s) == 2
        ]
        text = "; ".join(f"from step {step}: length {length}" for step, length in changes)
        rows.append(("Length schedule", text or "(none)"))
    return rows


REGISTRATION = Registration(
    name="scaling",
    seed_name="InferenceScalingEngine",
    cls=InferenceScalingEngine,
    build=lambda s, config, device: InferenceScalingEngine(
        device, s.warmup_steps, s.min_seq_len, s.step_size, config.model.max_seq_len
    ),
    section="inference_scaling",
    settings=InferenceScalingConfig,
    color="#d9480f",
    evidence_rows=evidence_rows,
    switch="warmup_steps",
)
