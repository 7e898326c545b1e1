"""Rules over a job's runs that the judge applies when it writes comparison.json, and that a
reader applies again, the same way, to a file written before the judge recorded their outcome:
pure functions of a minimal shape of each run (`RunShape`).

In comparison.json a run's shape is its `runs[]` item: index, arm, role, repeat, attempt;
clean = no `contamination` reason; has_result = a `result`; full_length = its role is neither
"warmup" nor "aa" (only those stop early, ryot.experiment.plan).
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from ryot.comparison.numbers import is_num

PAIRED_ARMS = ("baseline", "optimized")
# The warm-up (discarded) and the A/A run (noise) time a prefix of a run: never an arm's run.
SHORT_ROLES = ("warmup", "aa")


@dataclass(frozen=True)
class RunShape:
    """What the rules read of one run."""

    index: int  # runs[].index: the run's 1-based place in the run order
    arm: str
    role: str  # "warmup", "aa", "pair" or "ablation"
    repeat: int  # 0-based pair index
    attempt: int  # 0: the first try; 1, 2, ...: re-runs of a contaminated run
    clean: bool  # not contaminated: its numbers may be judged
    full_length: bool  # trained every planned epoch
    has_result: bool


def judged_attempts(runs: Iterable[RunShape]) -> dict[int, int]:
    """Each repeat's judged attempt: the last one whose baseline and optimized pair runs are
    both there and every pair run of it is clean. A repeat without one is left out (the machine
    was too busy for it)."""
    tries: dict[int, dict[int, list[RunShape]]] = {}
    for run in runs:
        if run.role == "pair":
            tries.setdefault(run.repeat, {}).setdefault(run.attempt, []).append(run)
    judged = {}
    for repeat, attempts in tries.items():
        complete = [
            attempt
            for attempt, pair in attempts.items()
            if set(PAIRED_ARMS) <= {r.arm for r in pair} and all(r.clean for r in pair)
        ]
        if complete:
            judged[repeat] = max(complete)
    return judged


def last_run(runs: Sequence[RunShape], arm: str) -> int | None:
    """The index of the run that stands for `arm` (its training tables, its evidence, the bold
    line of its loss curve): its last full-length run with a result in a judged pair; without
    one (a single-arm job, an ablation arm, a machine too busy to judge), its last full-length
    clean run, else its last full-length run. Never the warm-up or the A/A run. None when the
    arm has no full-length run with a result."""
    own = [
        r
        for r in runs
        if r.arm == arm and r.has_result and r.full_length and r.role not in SHORT_ROLES
    ]
    judged = judged_attempts(runs)
    paired = [r for r in own if r.role == "pair" and judged.get(r.repeat) == r.attempt]
    clean = [r for r in own if r.clean]
    pick = paired or clean or own
    return max(r.index for r in pick) if pick else None


# --- numbers the judge writes, derived the same way for a file written before it did ---------


def pair_speedup(baseline_s: Any, optimized_s: Any) -> float | None:
    """One pair's speedup at equal quality, 1 - optimized_s / baseline_s; None unless both are
    numbers and baseline_s > 0 (a time never reached has no finite speedup)."""
    if not (is_num(baseline_s) and is_num(optimized_s)) or baseline_s <= 0:
        return None
    return 1.0 - optimized_s / baseline_s


def median(values: Iterable[Any]) -> float | None:
    """The median of the numbers among `values`; None without one."""
    numbers = [v for v in values if is_num(v)]
    return statistics.median(numbers) if numbers else None


def median_time(seconds: Iterable[Any]) -> float | None:
    """The median of times to a loss, where a time never reached (not a number) counts as
    infinite; None without a time, or when the median itself was never reached."""
    values = [v if is_num(v) else math.inf for v in seconds]
    mid = statistics.median(values) if values else None
    return mid if mid is not None and math.isfinite(mid) else None


def stalled_steps(setup_stall_s: Any, step_stalls: Iterable[Any]) -> tuple[int, float]:
    """A run's stalled steps (its setup counts as one) and its largest stall, in seconds."""
    stalled = [s for s in (setup_stall_s, *step_stalls) if is_num(s) and s > 0]
    return len(stalled), max(stalled, default=0.0)


def steps_at(runs: Iterable[tuple[Sequence[Any], Sequence[Any]]], tokens: Any) -> list[float]:
    """The step times, over runs given as (step_times, step_tokens), of the steps that fed
    exactly `tokens`: steps of equal length, whose times compare."""
    return [
        t
        for times, fed in runs
        for t, k in zip(times, fed, strict=False)  # a malformed file's lengths may differ
        if is_num(t) and is_num(tokens) and k == tokens
    ]


def break_even_steps(compile_s: Any, baseline_step_s: Any, arm_step_s: Any) -> int | None:
    """After how many steps compiling pays for itself: compile_s / (the time it saves per
    step), rounded up; None when the arm's step is no faster, or a number is missing."""
    if not (is_num(compile_s) and is_num(baseline_step_s) and is_num(arm_step_s)):
        return None
    saved = baseline_step_s - arm_step_s
    steps = compile_s / saved if saved > 0 else math.inf
    return math.ceil(steps) if math.isfinite(steps) else None


def total(values: Iterable[Any]) -> float | None:
    """The sum of the numbers among `values`; None without one (nothing was measured)."""
    numbers = [v for v in values if is_num(v)]
    return sum(numbers) if numbers else None


def quartiles(values: Sequence[float]) -> tuple[float, float, float]:
    """The lower quartile, the median and the upper quartile of `values` (at least one number),
    interpolated between the values themselves (statistics' "inclusive" method)."""
    if len(values) < 2:
        return values[0], values[0], values[0]
    q1, q2, q3 = statistics.quantiles(values, n=4, method="inclusive")
    return q1, q2, q3


def step_time_summary(seconds: Iterable[Any]) -> dict[str, Any] | None:
    """A box plot's numbers of step times: how many, the smallest, the quartiles, the largest
    (of the numbers among `seconds`); None without one."""
    steps = sorted(s for s in seconds if is_num(s))
    if not steps:
        return None
    q1, median, q3 = quartiles(steps)
    return {"steps": len(steps), "min_s": steps[0], "q1_s": q1, "median_s": median, "q3_s": q3,
            "max_s": steps[-1]}  # fmt: skip


# --- the comparison table: the optimized arm against the baseline, metric by metric --------

# Each metric the table shows with the optimized arm's change (comparison.changes), where the
# two arms' values are in comparison.json, and whether lower is better (a time, memory) or
# higher (a rate).
CHANGE_METRICS: dict[str, tuple[tuple[str, ...], tuple[str, ...], bool]] = {
    # each arm's median time to the pairs' matched loss
    "matched_loss_s": (("measurements", "matched_loss", "median_baseline_s"),
                       ("measurements", "matched_loss", "median_optimized_s"), True),
    "total_time": (("baseline", "total_time"), ("optimized", "total_time"), True),
    # each arm's median stack clock over its runs in the judged pairs
    "clock_median_s": (("measurements", "clock", "baseline_median_s"),
                       ("measurements", "clock", "optimized_median_s"), True),
    "avg_epoch_time": (("baseline", "avg_epoch_time"), ("optimized", "avg_epoch_time"), True),
    "throughput": (("baseline", "throughput"), ("optimized", "throughput"), False),
    "samples_per_s": (("baseline", "samples_per_s"), ("optimized", "samples_per_s"), False),
    "peak_memory_mb": (("baseline", "peak_memory_mb"), ("optimized", "peak_memory_mb"), True),
}  # fmt: skip


def change(baseline: Any, optimized: Any, lower_is_better: bool) -> tuple[Any, Any]:
    """The optimized arm's improvement on the baseline, positive is better (baseline - optimized
    where lower is better, else optimized - baseline), and that as a fraction of the baseline;
    (None, None) unless both are numbers and the baseline is not 0."""
    if not (is_num(baseline) and is_num(optimized)) or baseline == 0:
        return None, None
    diff = baseline - optimized if lower_is_better else optimized - baseline
    return diff, diff / baseline


def changes(comparison: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    """comparison.changes of a comparison.json's content (its arm summaries and measurements
    in today's shape): each CHANGE_METRICS metric's `change` as {"improvement", "relative"}."""

    def at(path: tuple[str, ...]) -> Any:
        value: Any = comparison
        for key in path:
            value = value.get(key) if isinstance(value, Mapping) else None
        return value

    out = {}
    for metric, (base, opt, lower) in CHANGE_METRICS.items():
        improvement, relative = change(at(base), at(opt), lower)
        out[metric] = {"improvement": improvement, "relative": relative}
    return out


def difference(baseline: Any, optimized: Any) -> float | None:
    """optimized - baseline (a loss: positive is worse); None unless both are numbers."""
    return optimized - baseline if is_num(baseline) and is_num(optimized) else None


# --- how much a baseline learned -------------------------------------------------------------

# Where the data is not Ryot's synthetic language (token files), no one knows the best loss a
# model could reach: every reader says so in these words, and no share of it is computed.
FLOOR_UNKNOWN = "Bayes floor unknown"


def gain_over_unigram(unigram_loss: Any, final_loss: Any) -> float | None:
    """unigram - final: what the model learned beyond token frequencies, in nats (measurable
    on any data); None unless both are numbers."""
    return difference(final_loss, unigram_loss)


def context_learned(unigram_loss: Any, bayes_floor: Any, final_loss: Any) -> float | None:
    """(unigram - final) / (unigram - floor): the share of what context can buy that the model
    learned; None without a floor, or where the language has no context to learn."""
    gain = gain_over_unigram(unigram_loss, final_loss)
    if gain is None or not is_num(bayes_floor) or not unigram_loss > bayes_floor:
        return None
    return gain / (unigram_loss - bayes_floor)
