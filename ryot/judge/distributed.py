"""A torchrun job's world, its ranks' step-time skew, and the single-process baseline beside it."""

from __future__ import annotations

import json
import statistics
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ryot.config import Config
from ryot.judge.fields import Fields
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
    clock_s: float | None  # its baseline's stack clock (baseline.total_time)
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
    records: list[RunRecord], config: Config, baseline: dict[str, Any] | None, earlier: Path | None
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
    path: Path, config: Config, baseline: dict[str, Any] | None
) -> SingleProcess | None:
    """The baseline of an earlier single-process run of the same bench and training config
    (the run folder's previous comparison.json) beside this job's `baseline` summary; None
    without one."""
    try:
        earlier = json.loads(path.read_text(encoding="utf-8"))
        runs = [r["result"] for r in earlier["runs"] if r.get("result")]
        base = earlier["baseline"]
        same = all(
            earlier["config"][k] == config.to_dict()[k] for k in ("model", "data", "training")
        )
    except (OSError, ValueError, KeyError, TypeError):
        return None
    if not same or not base or not runs or any(r.get("world_size", 1) != 1 for r in runs):
        return None
    here = baseline or {}
    return SingleProcess(
        str(path),
        base.get("total_time"),
        base.get("val_loss"),
        here.get("total_time"),
        here.get("val_loss"),
    )
