"""Paired statistics for baseline-vs-optimized runs measured B O, O B, ...

Each pair i is one baseline and one optimized run taken next to each other.
Confidence intervals come from a Student-t interval on the per-pair log ratios
log(opt/base), transformed back to a speedup or improvement. Why: with 3-5 pairs
a bootstrap or order-statistic interval cannot reach 95% coverage (with n=3 the
min..max interval of the median covers only 75%), while the t interval on log
ratios is exact for log-normal timing noise, widens honestly with few pairs,
and ratios of times are naturally multiplicative. The point estimate is the
centre of that same interval: the geometric mean of the ratios (the mean of the
differences for differences), so a point never sits outside its own interval.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from statistics import mean, median, stdev

from scipy.stats import t as student_t

from ryot.comparison.numbers import finite

_LOG_METHOD = "t on log ratios"
_DIFF_METHOD = "t on paired differences"


@dataclass(frozen=True)
class Estimate:
    """A point estimate with a confidence interval over n paired values."""

    point: float  # geometric mean of the ratios (ratio estimates) or mean (differences)
    low: float  # lower bound of the confidence interval
    high: float  # upper bound of the confidence interval
    level: float  # confidence level, e.g. 0.95
    n: int  # number of pairs
    method: str  # short human-readable name of the CI method, shown in reports
    values: tuple[float, ...]  # the per-pair values it was computed from

    @classmethod
    def empty(cls, level: float, why: str = "no complete pair") -> Estimate:
        """No pair to estimate from: every number unknown (None in JSON)."""
        return cls(math.nan, math.nan, math.nan, level, 0, why, ())

    def to_dict(self) -> dict:
        """Return a JSON-ready dict; NaN and infinities become None."""
        return {
            "point": finite(self.point),
            "low": finite(self.low),
            "high": finite(self.high),
            "level": finite(self.level),
            "n": self.n,
            "method": self.method,
            "values": [finite(v) for v in self.values],
        }


def percent(fraction: float | None) -> float | None:
    """A fraction as a JSON-ready percentage (None for unknown or infinite)."""
    return finite(None if fraction is None else 100.0 * fraction)


def speedups(base_times, opt_times) -> list[float]:
    """Per-pair time speedup 1 - opt/base (0.4 means 40% less time)."""
    base, opt = _paired_positive(base_times, opt_times, "base_times", "opt_times")
    return [1.0 - o / b for b, o in zip(base, opt, strict=True)]


def ratio_improvements(base_rates, opt_rates) -> list[float]:
    """Per-pair throughput improvement opt/base - 1 (0.4 means 40% more work/s)."""
    base, opt = _paired_positive(base_rates, opt_rates, "base_rates", "opt_rates")
    return [o / b - 1.0 for b, o in zip(base, opt, strict=True)]


def speedup_estimate(base_times, opt_times, level=0.95) -> Estimate:
    """1 - geomean(opt/base), with a t interval on log(opt/base) mapped to 1 - exp(x)."""
    base, opt = _paired_positive(base_times, opt_times, "base_times", "opt_times")
    return _speedup_from_logs(
        [1.0 - o / b for b, o in zip(base, opt, strict=True)],
        [math.log(o / b) for b, o in zip(base, opt, strict=True)],
        level,
    )


def improvement_estimate(base_rates, opt_rates, level=0.95) -> Estimate:
    """geomean(opt/base) - 1, with a t interval on log(opt/base) mapped to exp(x) - 1."""
    base, opt = _paired_positive(base_rates, opt_rates, "base_rates", "opt_rates")
    values = [o / b - 1.0 for b, o in zip(base, opt, strict=True)]
    logs = [math.log(o / b) for b, o in zip(base, opt, strict=True)]
    lo, hi = _t_interval(logs, level)
    return _estimate(values, _expm1(mean(logs)), _expm1(lo), _expm1(hi), level, _LOG_METHOD)


def difference_estimate(base_values, opt_values, level=0.95) -> Estimate:
    """Mean paired difference opt - base (e.g. loss delta), t interval on the differences."""
    base = _finite(base_values, "base_values")
    opt = _finite(opt_values, "opt_values")
    _check_lengths(base, opt, "base_values", "opt_values")
    values = [o - b for b, o in zip(base, opt, strict=True)]
    lo, hi = _t_interval(values, level)
    return _estimate(values, mean(values), lo, hi, level, _DIFF_METHOD)


def time_to_loss(clock_s, losses, loss: float) -> float:
    """The first time the curve's running minimum reaches `loss`, or math.inf if it never does.

    Monotone on purpose: the best loss so far is what the training has bought by that time,
    so a curve that dips below `loss` and rises again reached it at the dip, and a noisy
    evaluation cannot make an arm "lose" time it already spent. The crossing is interpolated
    linearly on the clock between the last running minimum above `loss` and the first at or
    below it; a curve that starts at or below `loss` reaches it at its first point's time.
    Points without a finite loss (None, NaN: a diverged evaluation) are skipped.
    """
    if not math.isfinite(loss):
        raise ValueError(f"loss = {loss!r} is not finite")
    clock = [float(c) for c in clock_s]
    if len(clock) != len(losses):
        raise ValueError(f"clock_s has {len(clock)} points but losses has {len(losses)}")
    for i, c in enumerate(clock):
        if not math.isfinite(c) or (i and c < clock[i - 1]):
            raise ValueError(f"clock_s[{i}] = {c!r}: the clock must be finite and non-decreasing")
    prev = None
    best = math.inf
    for c, v in zip(clock, losses, strict=True):
        if v is None or not math.isfinite(v):
            continue
        best = min(best, float(v))
        if best <= loss:
            if prev is None:
                return c
            c0, l0 = prev
            return c0 + (l0 - loss) / (l0 - best) * (c - c0)  # l0 > loss >= best
        prev = (c, best)
    return math.inf


def non_inferior(delta: Estimate, margin: float) -> bool:
    """Non-inferiority: the upper bound of the CI of (optimized - baseline) lies below `margin`.

    A stack that learns more (a negative delta) passes: "without hurting convergence" is
    one-sided. A missing or unbounded CI is not non-inferiority.
    """
    if not margin > 0:
        raise ValueError(f"margin must be positive, got {margin!r}")
    return math.isfinite(delta.high) and delta.high < margin


def tost_equivalent(delta: Estimate, margin: float) -> bool:
    """Equivalence by two one-sided tests: the delta's CI lies strictly inside (-margin, margin).

    With a two-sided `level` CI this is TOST at alpha = (1 - level) / 2 per side: stricter than
    the textbook 90% interval, never looser. A missing or unbounded CI is not equivalence.
    """
    if not margin > 0:
        raise ValueError(f"margin must be positive, got {margin!r}")
    lo, hi = delta.low, delta.high
    return math.isfinite(lo) and math.isfinite(hi) and -margin < lo and hi < margin


def aa_noise(base_steps, aa_steps) -> float:
    """A/A noise: |1 - median_j(t_aa[j] / t_base[j])| over the steps both runs took.

    Two runs of identical work (same seed, same batches), compared step by step: the median
    ratio is what the machine's noise does to a speedup, and one slow step (a stall, a page
    fault) cannot move a median. One end-to-end ratio would be one draw of that noise.
    """
    n = min(len(base_steps), len(aa_steps))
    # A step the stall monitor took whole off the clock (a 5 ms step on a machine whose CPU
    # counters tick every 10 ms, under load) has no time of its own to compare: it is left out,
    # as a step one run did not take would be. NaN and negative times are still errors.
    pairs = [(b, a) for b, a in zip(base_steps[:n], aa_steps[:n], strict=True) if b != 0 and a != 0]
    if not pairs and n:
        return math.inf  # nothing to compare: no evidence the machine is quiet
    if not pairs:
        _paired_positive([], [], "base_steps", "aa_steps")  # raises: no steps at all
    base, aa = _paired_positive(*map(list, zip(*pairs, strict=True)), "base_steps", "aa_steps")
    return abs(1.0 - median([a / b for b, a in zip(base, aa, strict=True)]))


def _speedup_from_logs(values, logs, level) -> Estimate:
    lo, hi = _t_interval(logs, level)
    # 1 - exp(x) is decreasing in x, so the upper log bound gives the lower speedup.
    return _estimate(values, -_expm1(mean(logs)), -_expm1(hi), -_expm1(lo), level, _LOG_METHOD)


def _expm1(x: float) -> float:
    """exp(x) - 1, infinite past float's range: with few, wildly different pairs the interval's
    bound on a log ratio can exceed 709 (found by a property test), and an unbounded interval
    is the honest answer there, not an OverflowError."""
    try:
        return math.expm1(x)
    except OverflowError:
        return math.inf


def _t_interval(xs: list[float], level: float) -> tuple[float, float]:
    """Student-t interval mean ± t * sd / sqrt(n); (-inf, inf) when n == 1."""
    if not 0.0 < level < 1.0:
        raise ValueError(f"level must be in (0, 1), got {level!r}")
    n = len(xs)
    if n < 2:
        # One pair says nothing about spread; an honest interval is unbounded.
        return -math.inf, math.inf
    m, sd = mean(xs), stdev(xs)
    half = float(student_t.ppf((1.0 + level) / 2.0, n - 1)) * sd / math.sqrt(n)
    return m - half, m + half


def _estimate(values, point, low, high, level, method) -> Estimate:
    """Assemble an Estimate, handling the n == 1 and zero-spread cases."""
    n = len(values)
    if n == 1:
        # Unbounded on purpose, even where the transform would clip it (1 - exp(-inf) = 1).
        low, high = -math.inf, math.inf
        method = f"{method} (n=1: no interval)"
        point = values[0]
    elif all(v == values[0] for v in values):
        # No spread: report the exact value instead of exp/log round-off.
        point = low = high = values[0]
    return Estimate(point, low, high, level, n, method, tuple(values))


def _paired_positive(base, opt, base_name, opt_name) -> tuple[list[float], list[float]]:
    """Validate two equally long, non-empty lists of positive finite numbers."""
    b, o = _positive(base, base_name), _positive(opt, opt_name)
    _check_lengths(b, o, base_name, opt_name)
    return b, o


def _check_lengths(base, opt, base_name, opt_name) -> None:
    if len(base) != len(opt):
        raise ValueError(f"{base_name} has {len(base)} values but {opt_name} has {len(opt)}")
    if not base:
        raise ValueError(f"{base_name} and {opt_name} are empty; need at least one pair")


def _finite(values, name) -> list[float]:
    out = [float(v) for v in values]
    for i, v in enumerate(out):
        if not math.isfinite(v):
            raise ValueError(f"{name}[{i}] = {v!r} is not finite")
    return out


def _positive(values, name) -> list[float]:
    # Times and rates enter logs and ratios, so zero, negative, inf and NaN are all errors.
    out = _finite(values, name)
    for i, v in enumerate(out):
        if v <= 0.0:
            raise ValueError(f"{name}[{i}] = {v!r} is not positive")
    return out
