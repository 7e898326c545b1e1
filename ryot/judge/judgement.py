"""One job judged: every number comparison.json carries beyond the raw runs, computed here
once, as typed results. ryot.experiment assembles comparison.json from `Judgement.to_dict()`
and the job's context; the console and the report only format what it holds.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ryot.comparison import rules
from ryot.config import Config
from ryot.judge import criteria as crit
from ryot.judge.ablation import Ablation, ablation
from ryot.judge.break_even import BreakEven, compile_break_even
from ryot.judge.distributed import Distributed, distributed
from ryot.judge.fields import Fields
from ryot.judge.measurements import ArmSummary, Measurements, Stalls, stalls, summarize_arm
from ryot.judge.runs import RunRecord, last_runs, pair_results
from ryot.judge.stats import finite, percent
from ryot.judge.step_times import StepTimeSummary, step_time_summary


@dataclass(frozen=True)
class SeedComparison(Fields):
    """The seed plan's comparison block, with the speedup at equal quality beside it, and the
    comparison table's numbers: the optimized arm's change on the baseline, metric by metric
    (ryot.comparison.rules.changes), and its final training loss against the baseline's."""

    matched_loss_speedup_percent: float | None
    speedup_percent: float | None
    throughput_improvement_percent: float | None
    loss_delta: float | None  # validation loss, the paired mean delta
    final_loss_delta: float | None  # training loss: the medians' optimized - baseline
    loss_non_inferior: bool
    loss_equivalent: bool
    loss_convergence_match: bool
    all_criteria_met: bool
    changes: dict[str, dict[str, float | None]]  # metric -> improvement, relative

    @classmethod
    def of(
        cls,
        m: Measurements,
        rows: list[crit.CriterionResult],
        status: str,
        baseline: ArmSummary | None,
        optimized: ArmSummary | None,
    ) -> SeedComparison:
        loss_row = next((r for r in rows if r.id == "loss_match"), None)
        summaries = {arm: s.to_dict() if s else None for arm, s in
                     (("baseline", baseline), ("optimized", optimized))}  # fmt: skip
        return cls(
            percent(m.matched_loss.estimate.point),
            percent(m.speedup.point),
            percent(m.throughput.point),
            finite(m.loss_delta.estimate.point),
            rules.difference(baseline and baseline.final_loss, optimized and optimized.final_loss),
            m.loss_delta.non_inferior,
            m.loss_delta.equivalent,
            bool(loss_row and loss_row.passed),
            status == crit.GO,
            rules.changes({**summaries, "measurements": m.to_dict()}),
        )


@dataclass(frozen=True)
class Judgement:
    """Everything judged of one job. A single-arm job has no measurements, criteria or verdict;
    every job has its arms' runs, evidence, stalls, ablation and compile break-even."""

    baseline: ArmSummary | None  # the seed plan's per-arm summary
    optimized: ArmSummary | None
    measured: Measurements | None  # a paired job's
    rows: tuple[crit.CriterionResult, ...]
    verdict: crit.Verdict | None  # a paired job's
    last_runs: dict[str, RunRecord]  # the run that stands for each arm (ryot.comparison.rules)
    ablation: Ablation
    distributed: Distributed | None  # a torchrun job's
    stalls: Stalls  # every run's, paired or not
    compile_break_even: tuple[BreakEven, ...]
    step_time_summary: StepTimeSummary  # each arm's, every run but the warm-up

    @property
    def evidence(self) -> dict[str, list[dict[str, Any]]]:
        """Each arm's evidence, from the run that stands for it."""
        return {arm: rec.result.evidence for arm, rec in self.last_runs.items()}

    def to_dict(self) -> dict[str, Any]:
        """comparison.json's judged part (schema: ryot/report/comparison.schema.json)."""
        m, v = self.measured, self.verdict
        paired = m is not None and v is not None
        return {
            "baseline": self.baseline.to_dict() if self.baseline else None,
            "optimized": self.optimized.to_dict() if self.optimized else None,
            "comparison": SeedComparison.of(
                m, list(self.rows), v.status, self.baseline, self.optimized
            ).to_dict()
            if paired
            else None,
            "measurements": m.to_dict() if m is not None else None,
            "criteria": [r.to_dict() for r in self.rows],
            "verdict": v.to_dict() if paired else None,
            "evidence": self.evidence,
            "last_runs": {arm: rec.job.index for arm, rec in self.last_runs.items()},
            "ablation": self.ablation.to_dict(),
            "distributed": self.distributed.to_dict() if self.distributed else None,
            "stalls": self.stalls.to_dict(),
            "compile_break_even": [b.to_dict() for b in self.compile_break_even],
            "step_time_summary": self.step_time_summary.to_dict(),
        }


def judge_job(
    config: Config,
    records: list[RunRecord],
    measured: Measurements | None,
    rows: list[crit.CriterionResult],
    verdict: str | None,
    earlier: Path | None = None,
) -> Judgement:
    """The job's judgement from its runs and, for a paired job, its measurements, criteria and
    verdict (ryot.judge.measurements.measure, criteria.judge, criteria.verdict). `earlier`:
    the comparison.json this run replaces, whose single-process baseline a torchrun job is
    compared with."""
    last = last_runs(records, config.measurement.max_contended_share)
    evidence = {arm: rec.result.evidence for arm, rec in last.items()}
    baseline = summarize_arm(pair_results(records, "baseline"))
    paired = measured is not None and verdict is not None
    return Judgement(
        baseline=baseline,
        optimized=summarize_arm(pair_results(records, "optimized")),
        measured=measured,
        rows=tuple(rows),
        verdict=crit.Verdict.of(verdict, rows, measured, evidence) if paired else None,
        last_runs=last,
        ablation=ablation(records),
        distributed=distributed(records, config, baseline, earlier),
        stalls=stalls(records),
        compile_break_even=compile_break_even(records, evidence),
        step_time_summary=step_time_summary(records),
    )
