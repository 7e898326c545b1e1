"""The ablation table: each ablation arm (one optimization alone) against the baseline."""

from __future__ import annotations

import statistics
from dataclasses import dataclass
from typing import Any

from ryot.judge.fields import Fields
from ryot.judge.measurements import throughput
from ryot.judge.runs import RunRecord, pair_results


@dataclass(frozen=True)
class AblationRun(Fields):
    """One ablation arm's run; its arm is the table's key."""

    total_time: float  # the run's stack clock (the seed's name for it)
    clock_s: float
    speedup_percent: float | None  # against the median clock of the baseline's clean pair runs
    val_loss: float | None
    loss_delta: float | None  # against the baseline of the same seed (pair 1's)
    throughput: float  # tokens fed per second of training steps


@dataclass(frozen=True)
class Ablation:
    runs: tuple[tuple[str, AblationRun], ...]  # (arm, run), in run order

    def to_dict(self) -> dict[str, Any]:
        return {arm: run.to_dict() for arm, run in self.runs}


def ablation(records: list[RunRecord]) -> Ablation:
    """Each ablation arm against the baseline of the same seed (repeat 0); empty without a
    clean baseline pair run."""
    base_times = [r.clock_s for r in pair_results(records, "baseline") if r is not None]
    base0 = next((r.result for r in records if r.job.arm == "baseline" and r.job.role == "pair"
                  and r.job.repeat == 0), None)  # fmt: skip
    runs: dict[str, AblationRun] = {}
    for rec in records:
        if rec.job.role != "ablation" or rec.result is None or not base_times:
            continue
        r = rec.result
        base_t = statistics.median(base_times)
        runs[rec.job.arm] = AblationRun(
            total_time=r.clock_s,
            clock_s=r.clock_s,
            speedup_percent=100.0 * (1 - r.clock_s / base_t) if base_t > 0 else None,
            val_loss=r.val_loss,
            loss_delta=(r.val_loss - base0.val_loss)
            if base0 and r.val_loss is not None and base0.val_loss is not None
            else None,
            throughput=throughput(r),
        )
    return Ablation(tuple(runs.items()))
