"""A torchrun job's world, its ranks' step-time skew, and the single-process baseline beside it."""

from __future__ import annotations

import json
import statistics
from dataclasses import dataclass
from pathlib import Path

from ryot.comparison.model import Comparison
from ryot.config import Config
from ryot.judge.fields import Fields
from ryot.judge.measurements import ArmSummary
from ryot.judge.runs import RunRecord


@dataclass(frozen=True)
class RunSkew(Fields):
    """One run's step-time skew between its ranks: per step, the slowest rank's own time less
    the fastest's."""

    label: str
    arm: str
    rank_median_step_s: tuple[float | None, ...]  # each rank's median step time
    median_skew_s: float
    max_skew_s: float


@dataclass(frozen=True)
class SingleProcess(Fields):
    """The baseline of an earlier single-process run of the same bench and training config,
    beside this torchrun job's."""

    source: str  # the earlier comparison.json
    clock_s: float | None  # its baseline's stack clock (None: a file before stall accounting)
    val_loss: float | None
    distributed_clock_s: float | None  # this job's
    distributed_val_loss: float | None


@dataclass(frozen=True)
class Distributed(Fields):
    world_size: int
    backend: str | None
    median_skew_s: float  # the median of the runs' median skews
    max_skew_s: float
    runs: tuple[RunSkew, ...]
    single_process: SingleProcess | None  # None without an earlier single-process run


def distributed(
    records: list[RunRecord], config: Config, baseline: ArmSummary | None, earlier: Path | None
) -> Distributed | None:
    """A torchrun job's world (size, backend) and each run's skew between its ranks, with the
    single-process reference read from `earlier`; None for single processes."""
    results = [(r, r.result) for r in records if r.result is not None and r.result.world_size > 1]
    if not results:
        return None
    runs = []
    for rec, res in results:
        per_step = [max(s) - min(s) for s in zip(*res.rank_step_times, strict=False)] or [0.0]
        runs.append(RunSkew(
            rec.job.label,
            rec.job.arm,
            tuple(statistics.median(ts) if ts else None for ts in res.rank_step_times),
            statistics.median(per_step),
            max(per_step),
        ))  # fmt: skip
    return Distributed(
        results[0][1].world_size,
        results[0][1].backend,
        statistics.median(r.median_skew_s for r in runs),
        max(r.max_skew_s for r in runs),
        tuple(runs),
        single_process_reference(earlier, config, baseline) if earlier is not None else None,
    )


def single_process_reference(
    path: Path, config: Config, baseline: ArmSummary | None
) -> SingleProcess | None:
    """The baseline of an earlier single-process run of the same bench and training config
    (the run folder's previous comparison.json, read as the typed comparison, any readable
    schema) beside this job's `baseline` summary; None without one."""
    try:
        earlier = Comparison.from_dict(json.loads(path.read_text(encoding="utf-8")))
    except (OSError, ValueError):  # unreadable, not JSON, or not a comparison
        return None
    ours = config.to_dict()
    same = all(earlier.config.section(k) == ours[k] for k in ("model", "data", "training"))
    runs = [r.result for r in earlier.runs if r.result is not None]
    base = earlier.baseline
    if not same or base is None or not runs or any((r.world_size or 1) != 1 for r in runs):
        return None
    return SingleProcess(
        str(path),
        base.clock_s,
        base.val_loss,
        baseline.clock_s if baseline else None,
        baseline.val_loss if baseline else None,
    )
