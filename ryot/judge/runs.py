"""What the judge reads of each run: its place in the plan (RunJob) and what came of it
(RunRecord). The experiment makes them; the judge and comparison.json read them."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ryot.comparison.rules import RunShape, last_run
from ryot.config import Config
from ryot.judge.contamination import contamination
from ryot.train.results import ArmResult


@dataclass
class RunJob:
    index: int  # 1-based position in the plan
    arm: str
    repeat: int  # 0-based pair index; ablation runs use 0
    config: Config  # with this run's seed
    # "warmup" (discarded: the job's first run), "pair", "aa" (baseline again, pair 0's seed)
    # or "ablation"
    role: str
    stop_after_epoch: int | None = None  # the A/A and warm-up runs time a prefix of the run only
    attempt: int = 0  # 1, 2, ...: a re-run of a contaminated run (ryot.judge.contamination)

    @property
    def label(self) -> str:
        again = f", re-run {self.attempt}" if self.attempt else ""
        return f"run {self.index} ({self.arm}, {self.role} {self.repeat + 1}{again})"


@dataclass
class RunRecord:
    job: RunJob
    result: ArmResult | None
    exit_code: int
    encoding: str
    wall_s: float
    error: str = ""
    stderr_tail: str = ""
    # Why this run cannot be judged (too much of its time contended), or None; set by the
    # experiment as the run ends, from ryot.judge.contamination's fixed bound.
    contamination: str | None = None

    def unclean(self, max_share: float) -> str | None:
        """Why this run is never judged (its record's reason, or its contended share over the
        bound), else None."""
        return self.contamination or contamination(self.result, max_share)

    def shape(self, clean: bool) -> RunShape:
        """What ryot.comparison.rules reads of this run."""
        j = self.job
        return RunShape(j.index, j.arm, j.role, j.repeat, j.attempt, clean,
                        j.stop_after_epoch is None, self.result is not None)  # fmt: skip

    def to_dict(self) -> dict[str, Any]:
        return {
            "index": self.job.index,
            "arm": self.job.arm,
            "repeat": self.job.repeat,
            "role": self.job.role,
            "seed": self.job.config.training.seed,
            "exit_code": self.exit_code,
            "console_encoding": self.encoding,
            "wall_s": self.wall_s,
            "error": self.error,
            "attempt": self.job.attempt,
            "contamination": self.contamination,
            "result": self.result.to_dict() if self.result else None,
        }


def last_runs(records: list[RunRecord], max_share: float) -> dict[str, RunRecord]:
    """The run that stands for each arm (ryot.comparison.rules.last_run), arms in run order;
    an arm without one is left out."""
    shapes = [r.shape(r.unclean(max_share) is None) for r in records]
    by_index = {r.job.index: r for r in records}
    picks = {arm: last_run(shapes, arm) for arm in dict.fromkeys(r.job.arm for r in records)}
    return {arm: by_index[index] for arm, index in picks.items() if index is not None}


def pair_results(records: list[RunRecord], arm: str) -> list[ArmResult | None]:
    """The arm's clean pair runs: a contaminated run's time is never a summary's (none at all
    when the machine was too busy to judge)."""
    return [r.result for r in records
            if r.job.arm == arm and r.job.role == "pair" and not r.contamination]  # fmt: skip
