"""Each arm's step times as a box plot's numbers: how many steps, the smallest, the quartiles
and the largest, over every run of the arm but the warm-up, by each step's wall time. The
arithmetic is ryot.comparison.rules', which a reader of an older file applies too."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ryot.comparison import rules
from ryot.judge.fields import Fields
from ryot.judge.runs import RunRecord


@dataclass(frozen=True)
class StepTimes(Fields):
    steps: int
    min_s: float
    q1_s: float
    median_s: float
    q3_s: float
    max_s: float


@dataclass(frozen=True)
class StepTimeSummary:
    arms: tuple[tuple[str, StepTimes], ...]  # (arm, its steps), arms in run order

    def to_dict(self) -> dict[str, Any]:
        return {arm: steps.to_dict() for arm, steps in self.arms}


def step_time_summary(records: list[RunRecord]) -> StepTimeSummary:
    """Each arm's step times over its runs with a result but the warm-up (an arm without a
    measured step is left out)."""
    arms = []
    for arm in dict.fromkeys(r.job.arm for r in records):
        seconds = [t for r in records if r.job.arm == arm and r.job.role != "warmup"
                   and r.result is not None for t in r.result.step_times]  # fmt: skip
        summary = rules.step_time_summary(seconds)
        if summary is not None:
            arms.append((arm, StepTimes(**summary)))
    return StepTimeSummary(tuple(arms))
