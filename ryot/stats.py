"""Paired statistics for baseline-vs-optimized runs measured B O B O ...

Each pair i is one baseline and one optimized run taken next to each other.
Confidence intervals come from a Student-t interval on the per-pair log ratios
log(opt/base), transformed back to a speedup or improvement. Why: with 3-5 pairs
a bootstrap or order-statistic interval cannot reach 95% coverage (with n=3 the
min..max interval of the median covers only 75%), while the t interval on log
ratios is exact for log-normal timing noise, widens honestly with few pairs,
and ratios of times are naturally multiplicative.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from itertools import pairwise
from statistics import mean, median, stdev

from scipy.stats import t as student_t

_LOG_METHOD = "t on log ratios"
_DIFF_METHOD = "t on paired differences"


@dataclass(frozen=True)
class Estimate:
    """A point estimate with a confidence interval over n paired values."""

    median: float  # point estimate: median of the per-pair values
    low: float  # lower bound of the confidence interval
    high: float  # upper bound of the confidence interval
    level: float  # confidence level, e.g. 0.95
    n: int  # number of pairs
    method: str  # short human-readable name of the CI method, shown in reports
    values: tuple[float, ...]  # the per-pair values it was computed from

    def to_dict(self) -> dict:
        """Return a JSON-ready dict; NaN and infinities become None."""
        return {
            "median": _json_float(self.median),
            "low": _json_float(self.low),
            "high": _json_float(self.high),
            "level": _json_float(self.level),
            "n": self.n,
            "method": self.method,
            "values": [_json_float(v) for v in self.values],
        }


def speedups(base_times, opt_times) -> list[float]:
    """Per-pair time speedup 1 - opt/base (0.4 means 40% less time)."""
    base, opt = _paired_positive(base_times, opt_times, "base_times", "opt_times")
    return [1.0 - o / b for b, o in zip(base, opt, strict=True)]


def ratio_improvements(base_rates, opt_rates) -> list[float]:
    """Per-pair throughput improvement opt/base - 1 (0.4 means 40% more work/s)."""
    base, opt = _paired_positive(base_rates, opt_rates, "base_rates", "opt_rates")
    return [o / b - 1.0 for b, o in zip(base, opt, strict=True)]


def speedup_estimate(base_times, opt_times, level=0.95) -> Estimate:
    """Median per-pair speedup with a t interval on log(opt/base) mapped to 1 - exp(x)."""
    base, opt = _paired_positive(base_times, opt_times, "base_times", "opt_times")
    values = [1.0 - o / b for b, o in zip(base, opt, strict=True)]
    lo, hi = _t_interval([math.log(o / b) for b, o in zip(base, opt, strict=True)], level)
    # 1 - exp(x) is decreasing in x, so the upper log bound gives the lower speedup.
    return _estimate(values, 1.0 - math.exp(hi), 1.0 - math.exp(lo), level, _LOG_METHOD)


def improvement_estimate(base_rates, opt_rates, level=0.95) -> Estimate:
    """Median per-pair improvement with a t interval on log(opt/base) mapped to exp(x) - 1."""
    base, opt = _paired_positive(base_rates, opt_rates, "base_rates", "opt_rates")
    values = [o / b - 1.0 for b, o in zip(base, opt, strict=True)]
    lo, hi = _t_interval([math.log(o / b) for b, o in zip(base, opt, strict=True)], level)
    return _estimate(values, math.expm1(lo), math.expm1(hi), level, _LOG_METHOD)


def difference_estimate(base_values, opt_values, level=0.95) -> Estimate:
    """Median paired difference opt - base (e.g. loss delta), t interval on the differences."""
    base = _finite(base_values, "base_values")
    opt = _finite(opt_values, "opt_values")
    _check_lengths(base, opt, "base_values", "opt_values")
    values = [o - b for b, o in zip(base, opt, strict=True)]
    lo, hi = _t_interval(values, level)
    return _estimate(values, lo, hi, level, _DIFF_METHOD)


def aa_noise(times) -> float:
    """A/A noise floor: largest |1 - t[i+1]/t[i]| over consecutive runs of the same arm.

    This is the relative time difference between two identical runs, i.e. how
    big a "speedup" pure noise produces on this machine. 0.0 for fewer than 2 runs.
    """
    ts = _positive(times, "times")
    return max((abs(1.0 - b / a) for a, b in pairwise(ts)), default=0.0)


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


def _estimate(values, low, high, level, method) -> Estimate:
    """Assemble an Estimate, handling the n == 1 and zero-spread cases."""
    n = len(values)
    point = median(values)
    if n == 1:
        # Unbounded on purpose, even where the transform would clip it (1 - exp(-inf) = 1).
        low, high = -math.inf, math.inf
        method = f"{method} (n=1: no interval)"
    elif all(v == values[0] for v in values):
        # No spread: report the exact point instead of exp/log round-off.
        low = high = point
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


def _json_float(x: float) -> float | None:
    return float(x) if math.isfinite(x) else None
