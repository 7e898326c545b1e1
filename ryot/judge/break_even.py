"""When an arm's compile time is paid back by the time it saves per step.

Compiling pays for itself after compile_s / (time saved per step) steps. Only steps of equal
length compare: a length warmup makes an arm's early steps shorter (and cheaper) for reasons
that have nothing to do with compiling, so both medians are of full-length steps (a step that
fed as many tokens as the most any baseline step fed), over every run of the arm but the
warm-up, by each step's wall time. The arithmetic is ryot.comparison.rules', which a reader of
a file written before the judge recorded it applies too.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ryot.comparison import rules
from ryot.comparison.numbers import finite
from ryot.judge.fields import Fields
from ryot.judge.runs import RunRecord

COMPILE_KEY = "compile_seconds"  # an evidence item's measurement of its compile time


@dataclass(frozen=True)
class BreakEven(Fields):
    arm: str
    optimization: str  # the evidence item's name
    compile_s: float | None  # its measurements.compile_seconds; None: not a number
    baseline_step_s: float | None  # median full-length step of the baseline; None: no such step
    arm_step_s: float | None  # the arm's; None: no step of the arm ran at full length
    baseline_steps: int  # full-length steps each median is of
    arm_steps: int
    full_tokens: int | None  # tokens of a full-length step; None: no baseline step
    # compile_s / (baseline_step_s - arm_step_s), rounded up; None: never paid back at this step
    # time (the arm's step is no faster), or one of the numbers above is None
    steps: int | None


def _steps_at(records: list[RunRecord], arm: str, tokens: int | None) -> list[float]:
    """The step times of the arm's runs (all but the warm-up) that fed exactly `tokens`."""
    runs = [r.result for r in records if r.job.arm == arm and r.job.role != "warmup"]
    return rules.steps_at(((r.step_times, r.step_tokens) for r in runs if r is not None), tokens)


def compile_break_even(
    records: list[RunRecord], evidence: dict[str, list[dict[str, Any]]]
) -> tuple[BreakEven, ...]:
    """One row per evidence item (of the run that stands for each arm) that measured its
    compile seconds, in evidence order."""
    tokens = [
        k
        for rec in records
        if rec.job.arm == "baseline" and rec.job.role != "warmup" and rec.result is not None
        for k in rec.result.step_tokens
    ]
    full = int(max(tokens)) if tokens else None
    base_steps = _steps_at(records, "baseline", full)
    base = rules.median(base_steps)
    rows = []
    for arm, items in evidence.items():
        for item in items:
            if COMPILE_KEY not in item.get("measurements", {}):
                continue
            secs = finite(item["measurements"][COMPILE_KEY])
            arm_steps = _steps_at(records, arm, full)
            opt = rules.median(arm_steps)
            steps = rules.break_even_steps(secs, base, opt)
            rows.append(BreakEven(arm, str(item.get("name")), secs, base, opt, len(base_steps),
                                  len(arm_steps), full, steps))  # fmt: skip
    return tuple(rows)
