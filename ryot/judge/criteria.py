"""Acceptance criteria as small objects, and the verdict they add up to.

Each criterion is one `Criterion`: an id, a name, whether it is critical, its threshold (from
the config's `criteria:` section) and how it reads the measurements. Judging it gives one
`CriterionResult` whose `summary` line is what the console, the pytest message and the report
all show. A failed *critical* criterion (a baseline that did not learn, a crash or divergence,
an optimization that changed nothing, a console crash) means the experiment itself is broken:
DEBUG. Any other failure: INVESTIGATE. All passed: GO. A machine too busy to judge (a planned
pair or the A/A with no clean run left: ryot.judge.contamination) is no fault of the stack:
INVESTIGATE, and a critical criterion it left with nothing to read fails as a non-critical one.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

from ryot.comparison import rules
from ryot.config import CriteriaConfig
from ryot.judge.measurements import Measurements, SeedLearning
from ryot.judge.stats import Estimate, finite, percent

GO, INVESTIGATE, DEBUG = "GO", "INVESTIGATE", "DEBUG"
DECISIONS = {
    GO: "PROCEED TO STAGE 3b",
    INVESTIGATE: "INVESTIGATE & RETRY",
    DEBUG: "DEBUG & ADJUST CONFIG",
}
EXIT_CODES = {GO: 0, INVESTIGATE: 1, DEBUG: 3}


@dataclass
class CriterionResult:
    id: str
    name: str
    threshold: str
    measured: float | None
    unit: str
    ci_low: float | None
    ci_high: float | None
    passed: bool
    critical: bool
    detail: str
    summary: str  # one line: measured value, CI, threshold; every renderer shows this

    def to_dict(self) -> dict:
        return asdict(self)

    def message(self) -> str:
        """A test failure's message: the summary line, then the detail."""
        return f"{self.summary}. {self.detail}"


@dataclass(frozen=True)
class Reading:
    """What one criterion read from the measurements, and whether it clears the threshold."""

    measured: float | None
    passed: bool
    detail: str
    ci: tuple[float, float] | None = None
    level: float | None = None  # confidence level of `ci`
    shown: str | None = None  # the measured value in words, where one number says too little
    # Nothing to read because the machine was too busy to judge: a failure, never a critical one
    too_busy: bool = False
    # Where what can be measured decides the rule (a Bayes floor unknown): the rule it was
    # judged by, and the unit of `measured`, instead of the criterion's own
    threshold: str | None = None
    unit: str | None = None


@dataclass(frozen=True)
class Criterion:
    id: str
    name: str
    critical: bool
    unit: str
    threshold: Callable[[CriteriaConfig], str]
    read: Callable[[Measurements, CriteriaConfig], Reading]

    def judge(self, m: Measurements, c: CriteriaConfig) -> CriterionResult:
        r = self.read(m, c)
        threshold = r.threshold or self.threshold(c)
        unit = self.unit if r.unit is None else r.unit
        value = r.shown or _fmt(r.measured, unit)
        ci = ""
        if r.ci is not None:
            level = f"{100 * r.level:g}% " if r.level is not None else ""
            ci = f" ({level}CI {_fmt(r.ci[0], unit)} .. {_fmt(r.ci[1], unit)})"
        low, high = r.ci or (None, None)
        return CriterionResult(
            id=self.id,
            name=self.name,
            threshold=threshold,
            measured=finite(r.measured),
            unit=unit,
            ci_low=finite(low),
            ci_high=finite(high),
            passed=r.passed,
            critical=self.critical and not r.too_busy,
            detail=r.detail,
            summary=f"{self.name}: {value}{ci}; required {threshold}",
        )


def _fmt(x: float | None, unit: str) -> str:
    if x is None or math.isnan(x):
        return "n/a"
    return f"{x:+.0f}{unit}" if math.isinf(x) else f"{x:.4g}{unit}"


def _pct(x: float | None) -> float | None:
    return None if x is None else 100.0 * x


def _ratio_reading(e: Estimate, threshold_pct: float, detail: str) -> Reading:
    """A ratio estimate (as %) judged by its CI lower bound: noise cannot pass for a speedup."""
    if e.n == 0:
        return Reading(None, False, f"{e.method}.")
    low = 100.0 * e.low
    return Reading(
        100.0 * e.point,
        math.isfinite(low) and low >= threshold_pct,
        detail,
        (low, 100.0 * e.high),
        e.level,
    )


# --- how each criterion reads the measurements ----------------------------------------------


def _baseline_learned(m: Measurements, c: CriteriaConfig) -> Reading:
    seeds, worst = m.learning.per_seed, m.learning.worst
    if (not seeds or worst is None) and m.contamination.too_busy:
        return Reading(
            None,
            False,
            f"not judged: {TOO_BUSY}, so no clean baseline pair run is left to show learning.",
            too_busy=True,
        )
    if not seeds or worst is None:
        return Reading(None, False, "no baseline pair run finished: nothing shows learning.")

    def at_least(x: float | None, bound: float) -> bool:
        return x is not None and x >= bound

    def ok(s) -> bool:
        # where the floor is unknown, what can be measured: the gain over the unigram loss
        learned = (
            at_least(s.context_learned, c.min_context_learned)
            if s.floor_known
            else at_least(s.gain_over_unigram, c.min_gain_over_unigram)
        )
        return at_least(s.drop, c.min_loss_drop) and learned

    drops = [s.drop for s in seeds if s.drop is not None]
    smallest = f"{min(drops):.3f} nats" if len(drops) == len(seeds) else "n/a"
    passed = all(ok(s) for s in seeds)
    if not m.learning.floor_known:
        return _floorless_learning(seeds, worst, smallest, passed, c)
    shown = (
        f"{_fmt(_pct(worst.context_learned), '%')} context learned (worst seed "
        f"{worst.seed}), smallest loss drop {smallest}"
    )
    per_seed = "; ".join(
        f"seed {s.seed}: loss {_fmt(s.initial_loss, '')} -> {_fmt(s.final_loss, '')}, "
        f"{_fmt(_pct(s.context_learned), '%')} of the gap from the unigram loss "
        f"{_fmt(s.unigram_loss, '')} to the Bayes floor {_fmt(s.bayes_floor, '')}"
        for s in seeds
    )
    return Reading(
        _pct(worst.context_learned), passed, f"baseline validation loss, {per_seed}.", shown=shown
    )


def _floorless_learning(
    seeds: tuple[SeedLearning, ...],
    worst: SeedLearning,
    smallest: str,
    passed: bool,
    c: CriteriaConfig,
) -> Reading:
    """Baseline learned where the Bayes floor is unknown (token data): judged by what can be
    measured, the loss drop and the gain of the final loss over the unigram loss."""
    shown = (
        f"{_fmt(worst.gain_over_unigram, ' nats')} gain over the unigram loss (worst seed "
        f"{worst.seed}), smallest loss drop {smallest}"
    )
    per_seed = "; ".join(
        f"seed {s.seed}: loss {_fmt(s.initial_loss, '')} -> {_fmt(s.final_loss, '')}, "
        f"{_fmt(s.gain_over_unigram, ' nats')} below the unigram loss {_fmt(s.unigram_loss, '')}"
        for s in seeds
    )
    return Reading(
        worst.gain_over_unigram,
        passed,
        f"{rules.FLOOR_UNKNOWN} (the data is not Ryot's synthetic language), so no share of "
        "the gap to it can be computed: what can be measured decides, the loss drop and the "
        "gain of the final validation loss over the unigram loss of the training tokens; "
        f"baseline validation loss, {per_seed}.",
        shown=shown,
        threshold=_floorless_threshold(c),
        unit=" nats",
    )


def _floorless_threshold(c: CriteriaConfig) -> str:
    return (
        f"loss drop >= {c.min_loss_drop:g} nats and gain over the unigram loss >= "
        f"{c.min_gain_over_unigram:g} nats, every baseline seed ({rules.FLOOR_UNKNOWN})"
    )


def _matched_loss_speedup(m: Measurements, c: CriteriaConfig) -> Reading:
    e = m.matched_loss.estimate
    if e.n == 0:
        return Reading(None, False, f"{e.method}.")
    times = "; ".join(
        f"seed {p.seed}: L* {p.loss:.4f} in {p.baseline_s:.2f} s / {p.optimized_s:.2f} s"
        for p in m.matched_loss.pairs
    )
    detail = (
        f"1 - T_opt(L*)/T_base(L*) over {e.n} pairs, {e.method}; L* is each pair's worse final "
        f"validation loss, reached by both arms; time to L* (baseline / optimized) on each "
        f"arm's own clock, setup included, machine stalls off: {times}."
    )
    return _ratio_reading(e, c.min_speedup_percent, detail)


def _loss_match(m: Measurements, c: CriteriaConfig) -> Reading:
    d, e = m.loss_delta, m.loss_delta.estimate
    if e.n == 0:
        return Reading(None, False, f"no validation loss pair: {e.method}.")
    spread = (
        f"{d.baseline_spread:.4f}" if d.baseline_spread is not None else "n/a (fewer than 2 seeds)"
    )
    equivalence = "equivalent (TOST)" if d.equivalent else "equivalence (TOST) not shown"
    detail = (
        f"optimized - baseline validation loss over {e.n} pairs, {e.method}; non-inferior "
        f"when the CI's upper bound is below +{c.max_loss_delta:g}, so a stack that learns "
        f"more passes; within +/-{c.max_loss_delta:g}: {equivalence}; baseline seed-to-seed "
        f"spread (stdev) {spread}."
    )
    if not d.non_inferior and e.point < c.max_loss_delta:
        detail += " The point is inside the margin, the CI is not: non-inferiority is not shown."
    return Reading(e.point, d.non_inferior, detail, (e.low, e.high), e.level)


def _speedup(m: Measurements, c: CriteriaConfig) -> Reading:
    e = m.speedup
    return _ratio_reading(
        e,
        c.min_speedup_percent,
        f"1 - T_opt/T_base end to end (equal steps, machine stalls off the clock) over {e.n} "
        f"interleaved pairs, {e.method}.",
    )


def _throughput(m: Measurements, c: CriteriaConfig) -> Reading:
    return _ratio_reading(
        m.throughput,
        c.min_throughput_improvement_percent,
        "tokens actually fed per second of training, optimized / baseline - 1, "
        f"{m.throughput.method}.",
    )


def _no_divergence(m: Measurements, c: CriteriaConfig) -> Reading:
    p = m.divergence
    return Reading(
        float(len(p)), not p, "; ".join(p) if p else "every run finished with a falling loss."
    )


def _memory(m: Measurements, c: CriteriaConfig) -> Reading:
    mem = m.memory
    detail = mem.method
    if mem.baseline is not None:
        detail = f"baseline peak {mem.baseline:.0f} MiB; {mem.method}"
        if mem.optimized_rss is not None:
            detail += f"; optimized peak RSS {mem.optimized_rss:.0f} MiB (with allocator retention)"
    ok = mem.optimized is not None and mem.optimized < c.max_peak_memory_mb
    return Reading(mem.optimized, ok, detail + ".")


def _encoding(m: Measurements, c: CriteriaConfig) -> Reading:
    p = m.encoding.problems
    return Reading(float(len(p)), not p, "; ".join(p) if p else m.encoding.summary)


def _effective(m: Measurements, c: CriteriaConfig) -> Reading:
    p = m.no_effect
    return Reading(
        float(len(p)), not p, "; ".join(p) if p else "each enabled optimization changed what runs."
    )


def _noise(m: Measurements, c: CriteriaConfig) -> Reading:
    value = _pct(m.noise.aa)
    return Reading(value, value is not None and value <= c.max_noise_percent, m.noise.detail)


TOO_BUSY = "the machine was too busy to judge"


def _seconds(x: float | None) -> str:
    return "n/a" if finite(x) is None else f"{x:.2f} s"


def _runs_text(m: Measurements) -> str:
    """Each contaminated run with its contended seconds and share, in words."""
    return "; ".join(
        f"{r.label}: {_seconds(r.contended_s)} contended "
        f"({'n/a' if finite(r.share) is None else f'{100 * r.share:.1f}%'})"
        for r in m.contamination.runs
    )


def _machine_quiet(m: Measurements, c: CriteriaConfig) -> Reading:
    k = m.contamination
    bound = (
        f"more than {100 * k.max_share:g}% of a run's time contended "
        "(measurement.max_contended_share)"
    )
    if not k.runs:
        return Reading(0.0, True, f"no run had {bound}.", shown="no run contaminated")
    runs = _runs_text(m)
    if not k.too_busy:
        return Reading(
            float(len(k.runs)),
            True,
            f"{len(k.runs)} run(s) had {bound}; each was re-run ({k.reruns} re-run(s), at most "
            f"{k.max_reruns}) and never judged: {runs}.",
            shown=f"{len(k.runs)} contaminated run(s), re-run clean",
        )
    return Reading(
        float(len(k.runs)),
        False,
        f"{' and '.join(k.busy)} had no clean run left after {k.reruns} re-run(s) (at most "
        f"{k.max_reruns}, measurement.max_reruns); a run with {bound} is never judged. "
        f"Contaminated: {runs}. Re-run on a quieter machine.",
        shown=(
            f"{TOO_BUSY}: {' and '.join(k.busy)} left without a clean run; "
            f"{_seconds(k.contended_s)} contended in {len(k.runs)} contaminated run(s) "
            f"({runs})"
        ),
    )


ALL = (
    Criterion("baseline_learned", "Baseline learned", True, "%",
              lambda c: f"loss drop >= {c.min_loss_drop:g} nats and context learned >= "
                        f"{100 * c.min_context_learned:g}%, every baseline seed",
              _baseline_learned),
    Criterion("matched_loss_speedup", "Speedup at equal quality (time to matched loss)", False,
              "%", lambda c: f"CI lower bound >= {c.min_speedup_percent:g}%",
              _matched_loss_speedup),
    Criterion("loss_match", "Validation loss non-inferior", False, "",
              lambda c: f"CI upper bound < +{c.max_loss_delta:g}", _loss_match),
    Criterion("speedup", "Speedup (end-to-end time)", False, "%",
              lambda c: f"CI lower bound >= {c.min_speedup_percent:g}%", _speedup),
    Criterion("throughput", "Throughput improvement (tokens/s)", False, "%",
              lambda c: f"CI lower bound >= {c.min_throughput_improvement_percent:g}%",
              _throughput),
    Criterion("no_divergence", "No divergence or crash", True, " problems",
              lambda c: "no NaN/Inf, no crash, training time > 0, loss falls", _no_divergence),
    Criterion("memory", "Peak memory (optimized)", False, " MiB",
              lambda c: f"< {c.max_peak_memory_mb:g} MiB", _memory),
    Criterion("encoding_safety", "Encoding safety", True, " problems",
              lambda c: "every run survives a narrow console; UTF-8 files", _encoding),
    Criterion("optimizations_effective", "Optimizations effective", True, " findings",
              lambda c: "no NoEffect finding", _effective),
    Criterion("measurement_reliable", "Measurement reliable (A/A noise, per step)", False, "%",
              lambda c: f"<= {c.max_noise_percent:g}%", _noise),
    # The bound is measurement.max_contended_share, fixed before any run; not a criteria key.
    Criterion("machine_quiet", "Machine quiet enough to judge", False, " contaminated runs",
              lambda c: "every pair and the A/A judged on clean runs, within the re-runs "
                        "allowed (measurement.max_contended_share, max_reruns)",
              _machine_quiet),
)  # fmt: skip

# Criterion ids, in report order; each is one parametrized test in validation/.
CRITERIA = tuple(c.id for c in ALL)


def judge(measured: Measurements, c: CriteriaConfig) -> list[CriterionResult]:
    """One result per criterion, in report order (see ryot.judge.measurements.measure)."""
    return [criterion.judge(measured, c) for criterion in ALL]


def verdict(rows: list[CriterionResult]) -> str:
    if any(r.critical and not r.passed for r in rows):
        return DEBUG
    return GO if all(r.passed for r in rows) else INVESTIGATE


@dataclass(frozen=True)
class Verdict:
    """A paired job's verdict, its seed-plan scenario, and why it is not GO in words."""

    status: str  # GO, INVESTIGATE or DEBUG
    scenario: str
    reasons: tuple[str, ...]  # empty for GO

    @classmethod
    def of(
        cls, status: str, rows: list[CriterionResult], m: Measurements, evidence: dict[str, list]
    ) -> Verdict:
        """`status` (verdict(rows)) with its scenario and reasons."""
        at_quality = percent(m.matched_loss.estimate.point)
        return cls(
            status,
            scenario(at_quality, m.loss_delta.estimate.point),
            tuple(verdict_reasons(rows, evidence)),
        )

    @property
    def decision(self) -> str:
        return DECISIONS[self.status]

    @property
    def exit_code(self) -> int:
        return EXIT_CODES[self.status]

    def to_dict(self) -> dict[str, Any]:
        return {
            "status": self.status,
            "decision": self.decision,
            "scenario": self.scenario,
            "exit_code": self.exit_code,
            "reasons": list(self.reasons),
        }


def verdict_reasons(rows: list[CriterionResult], evidence: dict[str, list]) -> list[str]:
    """Why the verdict is not GO, in words: each failed criterion, then what the optimized arm
    measured it could not apply (on a CPU without native bf16, the kernel's bf16 autocast)."""
    reasons = [r.summary for r in rows if not r.passed]
    if reasons:
        for ev in evidence.get("optimized", []):
            if ev.get("enabled"):
                reasons += [f"{ev['name']} skipped {s['what']}: {s['why']}" for s in ev["skipped"]]
    return reasons


def undecided(measured: Measurements, c: CriteriaConfig) -> list[str]:
    """The failing criteria one more pair could still turn, when it could turn the verdict:
    every failing criterion is judged by a CI that holds its threshold (a speed's lower bound
    below it and upper bound above it; the loss delta's upper bound at or past the margin and
    lower bound inside it). None when the verdict is GO, when a criterion failed for good (its
    whole CI on the wrong side, or no CI: noise, memory, a critical failure), or when the
    machine was too busy to judge: more pairs cannot turn those."""
    failed = [r for r in judge(measured, c) if not r.passed]
    if not failed or measured.contamination.too_busy:
        return []

    def holds(e: Estimate, threshold: float) -> bool:
        return e.n >= 2 and e.low < threshold <= e.high

    speed = c.min_speedup_percent / 100
    open_ = {
        "matched_loss_speedup": holds(measured.matched_loss.estimate, speed),
        "speedup": holds(measured.speedup, speed),
        "throughput": holds(measured.throughput, c.min_throughput_improvement_percent / 100),
        "loss_match": holds(measured.loss_delta.estimate, c.max_loss_delta),
    }
    if not all(open_.get(r.id, False) for r in failed):
        return []
    return [r.id for r in failed]


def scenario(speedup_percent: float | None, loss_delta: float | None) -> str:
    """The seed plan's scenario classes, from the speedup at equal quality and the loss delta."""
    if finite(speedup_percent) is None or finite(loss_delta) is None:
        return "worst-case"
    if speedup_percent >= 25 and abs(loss_delta) < 0.05:
        return "optimistic"
    if speedup_percent >= 20 and abs(loss_delta) < 0.1:
        return "conservative"
    return "worst-case"
