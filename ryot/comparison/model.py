"""comparison.json as frozen typed objects: `Comparison.from_dict(d)` reads any readable file
once (ryot.comparison.upgrade brings an older schema to today's shape first), and every reader
(the console, the report, ryot.judge.power) reads attributes, never string paths.

A readable file never makes reading raise: a missing or malformed value reads as None (an
empty tuple or mapping for a collection), so the report renders failed and older runs too.
What is not a comparison at all raises ValueError, in one line (see `check`).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

from ryot.comparison import rules
from ryot.comparison.measurements import Measurements, Noise, Stalls
from ryot.comparison.record import (
    JSON,
    NUMBER,
    TEXT,
    Kind,
    Record,
    flag,
    key,
    many,
    mapping,
    number,
    numbers,
    one,
    record,
    records,
    text,
    texts,
)
from ryot.comparison.runs import EvidenceItem, Run
from ryot.comparison.upgrade import READABLE_SCHEMAS, SCHEMA_VERSION, check, upgrade
from ryot.comparison.workload import Workload

__all__ = ["READABLE_SCHEMAS", "SCHEMA_VERSION", "Comparison"]


@dataclass(frozen=True)
class Bench(Record):
    """The validation split's reference losses: the unigram loss always; the Bayes floor (and
    the synthetic language's settings) only on the synthetic language, None on token data."""

    description: str | None = text()
    unigram_loss: float | None = number()
    bayes_floor: float | None = number()
    floor_per_position: tuple[float | None, ...] | None = numbers(absent=None)  # None: unknown
    unigram_per_position: tuple[float | None, ...] = numbers()
    num_topics: int | None = number()
    topic_boost: float | None = number()
    branching: int | None = number()
    zipf_exponent: float | None = number()


@dataclass(frozen=True)
class ArmSummary(Record):
    """The seed plan's per-arm fields: medians over the arm's clean pair runs. total_time, the
    seed's name, is the stack's own clock, clock_s (schema 2.0 and older: the wall clock, and
    clock_s None)."""

    total_time: float | None = number()
    clock_s: float | None = number()
    avg_epoch_time: float | None = number()
    final_loss: float | None = number()
    val_loss: float | None = number()
    losses: tuple[float | None, ...] = numbers()
    throughput: float | None = number()
    samples_per_s: float | None = number(omit=True)
    setup_time: float | None = number(omit=True)
    peak_memory_mb: float | None = number(omit=True)
    peak_rss_mb: float | None = number()
    runs: int | None = number(omit=True)


@dataclass(frozen=True)
class Change(Record):
    """The optimized arm's change on the baseline in one metric (ryot.comparison.rules.change):
    improvement, positive is better, in the metric's unit; relative, a fraction of the
    baseline's value. None: a value missing, or a baseline of 0."""

    improvement: float | None = number()
    relative: float | None = number()


@dataclass(frozen=True)
class Changes(Record):
    """The comparison table's changes, metric by metric (rules.CHANGE_METRICS)."""

    matched_loss_s: Change | None = record(Change)  # each arm's median time to matched loss
    total_time: Change | None = record(Change)
    clock_median_s: Change | None = record(Change)  # the judged pairs' median stack clocks
    avg_epoch_time: Change | None = record(Change)
    throughput: Change | None = record(Change)
    samples_per_s: Change | None = record(Change)
    peak_memory_mb: Change | None = record(Change)


@dataclass(frozen=True)
class SeedComparison(Record):
    """The seed plan's comparison block (percentages), with the speedup at equal quality, and
    the comparison table's numbers: each metric's change, the final training loss's delta."""

    speedup_percent: float | None = number()
    matched_loss_speedup_percent: float | None = number()
    throughput_improvement_percent: float | None = number()
    loss_delta: float | None = number()  # validation loss, the paired mean delta
    final_loss_delta: float | None = number()  # training loss, the medians' opt - base
    loss_convergence_match: bool | None = flag()
    loss_non_inferior: bool | None = flag()
    loss_equivalent: bool | None = flag()
    all_criteria_met: bool | None = flag()
    changes: Changes = record(Changes, empty=True)


@dataclass(frozen=True)
class Criterion(Record):
    id: str | None = text()
    name: str | None = text()
    threshold: str | None = text()
    measured: float | None = number()
    unit: str | None = text()
    ci_low: float | None = number()
    ci_high: float | None = number()
    passed: bool | None = flag()
    critical: bool | None = flag()
    detail: str | None = text()
    summary: str | None = text()  # "name: measured (CI); required threshold" (not in 1.0)


@dataclass(frozen=True)
class Verdict(Record):
    status: str | None = text()  # GO, INVESTIGATE, DEBUG
    decision: str | None = text()
    scenario: str | None = text()
    exit_code: int | None = number()
    reasons: tuple[str | None, ...] = texts()  # why not GO, in words


@dataclass(frozen=True)
class AblationRow(Record):
    """One ablation arm against the baseline; total_time is its run's stack clock, clock_s."""

    total_time: float | None = number()
    clock_s: float | None = number()
    speedup_percent: float | None = number()
    val_loss: float | None = number()
    loss_delta: float | None = number()
    throughput: float | None = number()


@dataclass(frozen=True)
class Environment(Record):
    python: str | None = text()
    torch: str | None = text()
    platform: str | None = text()
    device: str | None = text()
    cpu: str | None = text()
    # the CPU features that decide bf16 speed; None: not recorded (2.0), () none of them
    cpu_flags: tuple[str | None, ...] | None = texts(absent=None, omit=True)
    gpu: str | None = text()
    cpu_count: int | None = number()
    threads: int | None = number()


@dataclass(frozen=True)
class DistributedRun(Record):
    label: str | None = text()
    arm: str | None = text()
    rank_median_step_s: tuple[float | None, ...] = numbers()
    median_skew_s: float | None = number()
    max_skew_s: float | None = number()


@dataclass(frozen=True)
class SingleProcess(Record):
    """The baseline of the earlier single-process run this torchrun job replaced."""

    source: str | None = text()
    clock_s: float | None = number()
    val_loss: float | None = number()
    distributed_clock_s: float | None = number()
    distributed_val_loss: float | None = number()


@dataclass(frozen=True)
class Distributed(Record):
    """A torchrun job's world and each run's step-time skew between its ranks."""

    world_size: int | None = number()
    backend: str | None = text()
    median_skew_s: float | None = number()
    max_skew_s: float | None = number()
    runs: tuple[DistributedRun, ...] = records(DistributedRun)
    single_process: SingleProcess | None = record(SingleProcess, omit=True)


@dataclass(frozen=True)
class BreakEven(Record):
    """When an arm's compile time is paid back by the time it saves per full-length step;
    steps None: never at this step time, or a number it needs is None."""

    arm: str | None = text()
    optimization: str | None = text()
    compile_s: float | None = number()
    baseline_step_s: float | None = number()
    arm_step_s: float | None = number()
    baseline_steps: int | None = number()
    arm_steps: int | None = number()
    full_tokens: int | None = number()
    steps: int | None = number()


@dataclass(frozen=True)
class StepTimes(Record):
    """An arm's step times (wall clock) over every run but the warm-up, as a box plot's
    numbers: how many, the smallest, the quartiles, the largest."""

    steps: int | None = number()
    min_s: float | None = number()
    q1_s: float | None = number()
    median_s: float | None = number()
    q3_s: float | None = number()
    max_s: float | None = number()


@dataclass(frozen=True)
class BenchStats(Record):
    min: float | None = number()
    max: float | None = number()
    mean: float | None = number()
    median: float | None = number()
    stddev: float | None = number()
    rounds: int | None = number()


@dataclass(frozen=True)
class Benchmark(Record):
    """One pytest-benchmark benchmark of the suite."""

    name: str | None = text()
    group: str | None = text()
    extra_info: dict[str, Any] = mapping(absent={})
    stats: BenchStats = record(BenchStats, empty=True)


@dataclass(frozen=True)
class CriteriaSettings(Record):
    """The config's criteria section, as far as a reader needs it."""

    min_speedup_percent: float | None = number()
    max_loss_delta: float | None = number()
    max_noise_percent: float | None = number()
    min_loss_drop: float | None = number()
    min_context_learned: float | None = number()
    min_gain_over_unigram: float | None = number()  # where the Bayes floor is unknown


@dataclass(frozen=True)
class MeasurementSettings(Record):
    """The config's measurement section, as far as a reader needs it."""

    repeats: int | None = number()
    confidence: float | None = number()
    ablation: bool | None = flag()
    max_contended_share: float | None = number()
    max_reruns: int | None = number()
    extra_repeats: int | None = number()


MEASURED_SECTIONS = ("model", "data", "training", "optimizations", "measurement")


@dataclass(frozen=True)
class RunConfig:
    """The run's config: `raw` is the file's mapping as written (the page shows it as YAML;
    the history compares its sections); the typed sections are read from it."""

    raw: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def from_dict(cls, d: Any) -> RunConfig:
        return cls(JSON.load(d) if isinstance(d, dict) else {})

    def to_dict(self) -> dict[str, Any]:
        return JSON.dump(self.raw)

    def section(self, name: str) -> dict[str, Any]:
        value = self.raw.get(name)
        return value if isinstance(value, dict) else {}

    @property
    def criteria(self) -> CriteriaSettings:
        return CriteriaSettings.from_dict(self.raw.get("criteria"))

    @property
    def measurement(self) -> MeasurementSettings:
        return MeasurementSettings.from_dict(self.raw.get("measurement"))

    @property
    def setup(self) -> dict[str, Any] | None:
        """The sections that decide what a run measures (criteria only judge it, serving is
        Stage 3b): two runs answer the same question when theirs are equal; None without a
        config."""
        if not self.raw:
            return None
        return {k: self.raw.get(k) for k in MEASURED_SECTIONS}

    @property
    def training_seed(self) -> Any:
        return self.section("training").get("seed")

    @property
    def training_threads(self) -> Any:
        return self.section("training").get("threads")

    @property
    def data_seed(self) -> Any:
        return self.section("data").get("seed")


CONFIG = Kind(RunConfig.from_dict, RunConfig.to_dict)


@dataclass(frozen=True)
class Comparison(Record):
    """One Stage 3a job's comparison.json, upgraded to today's shape (SCHEMA_VERSION).

    `at_target` (not a key of the file): every pair was judged at one target loss
    (measurements.target), as schemas 1.0 and 2.0 did; today each pair is judged at its own
    matched loss L*. The report words the two differently. `schema_version` stays the file's.
    """

    schema_version: str | None = text()
    stage: str | None = text()
    model: str | None = text()  # the model's name (workload.model.name)
    created: str | None = text()
    config_name: str | None = text()
    config_path: str | None = text(omit=True)
    command: str | None = text(omit=True)
    num_parameters: int | None = number()
    bayes_floor: float | None = number()
    unigram_loss: float | None = number()
    bench: Bench | None = record(Bench)
    workload: Workload | None = record(Workload)
    baseline: ArmSummary | None = record(ArmSummary)
    optimized: ArmSummary | None = record(ArmSummary)
    comparison: SeedComparison | None = record(SeedComparison)
    measurements: Measurements | None = record(Measurements)
    criteria: tuple[Criterion, ...] = records(Criterion)
    verdict: Verdict | None = record(Verdict)
    evidence: dict[str, tuple[EvidenceItem, ...]] = mapping(many(EvidenceItem), absent={})
    last_runs: dict[str, int | None] = mapping(NUMBER, absent={})  # arm -> runs[].index
    ablation: dict[str, AblationRow] = mapping(one(AblationRow, empty=True), absent={})
    environment: Environment = record(Environment, empty=True)
    distributed: Distributed | None = record(Distributed)
    stalls: Stalls | None = record(Stalls, omit=True)  # every job's, single-arm ones too
    compile_break_even: tuple[BreakEven, ...] = records(BreakEven)
    step_time_summary: dict[str, StepTimes] = mapping(one(StepTimes, empty=True), absent={})
    config: RunConfig = key(CONFIG, default=RunConfig())
    runs: tuple[Run, ...] = records(Run)
    benchmarks: tuple[Benchmark, ...] | None = records(Benchmark, absent=None)
    tests: dict[str, str | None] | None = mapping(TEXT)  # node id -> outcome
    job_wall_s: float | None = number(omit=True)
    at_target: bool = False

    @classmethod
    def from_dict(cls, d: Any) -> Comparison:
        """The typed comparison of a comparison.json's content: ValueError (one line) for what
        is not a readable comparison (`check`), else never an error."""
        check(d)
        data, legacy = upgrade(d)
        c = super().from_dict(data)
        m = c.measurements
        if legacy.aa_end_to_end and m is not None:
            m = dataclasses.replace(m, noise=_end_to_end(m.noise))
            c = dataclasses.replace(c, measurements=m)
        return dataclasses.replace(c, at_target=legacy.at_target)

    @property
    def floor_unknown(self) -> str | None:
        """Where the run's data has no known Bayes floor (token files), the words every reader
        says so in ("Bayes floor unknown (token data)"); None where the floor is known, or
        the file does not say what data it ran on."""
        data = self.workload.data if self.workload else None
        if data is None or data.source is None or data.floor_known:
            return None
        return data.floor_unknown_text

    @property
    def noise(self) -> Noise | None:
        """The A/A noise (measurements.noise); None without measurements."""
        return self.measurements.noise if self.measurements else None

    # --- the runs, as the page and the console show them ------------------------------------

    @property
    def result_runs(self) -> list[Run]:
        """Runs with a result, any role but the warm-up (the job's first run, discarded:
        never judged, never an arm's run on the page)."""
        return [r for r in self.runs if r.result is not None and r.role != "warmup"]

    def arm_runs(self, arm: str) -> list[Run]:
        """The arm's runs with a result, the warm-up's excepted, in run order."""
        return [r for r in self.result_runs if r.arm == arm]

    @property
    def arms(self) -> list[str]:
        """Every arm of the runs, in the order of their first run."""
        return list(dict.fromkeys(r.arm for r in self.runs if r.arm is not None))

    def run(self, index: int | None) -> Run | None:
        return next((r for r in self.runs if index is not None and r.index == index), None)

    def last_run(self, arm: str) -> Run | None:
        """The run that stands for the arm (ryot.comparison.rules.last_run): its last
        full-length run in a judged pair, never the warm-up or the A/A run; None without one."""
        run = self.run(self.last_runs.get(arm))
        return run if run is not None and run.result is not None else None

    def pair_runs(self, arm: str) -> list[Run]:
        """The arm's runs with a result in the pairs the judge read: each repeat's judged
        attempt (ryot.comparison.rules.judged_attempts)."""
        judged = rules.judged_attempts(s for r in self.runs if (s := r.shape) is not None)
        return [
            r
            for r in self.arm_runs(arm)
            if r.role == "pair" and (s := r.shape) and judged.get(s.repeat) == s.attempt
        ]


def _end_to_end(noise: Noise | None) -> Noise | None:
    return noise and dataclasses.replace(noise, per_step=False)
