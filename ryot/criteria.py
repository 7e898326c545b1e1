"""Acceptance criteria as data, and the verdict they add up to.

Each criterion is judged from measurements only. A failed *critical* criterion (a crash, a
divergence, an optimization that changed nothing) means the experiment itself is broken:
DEBUG. Any other failure: INVESTIGATE. All passed: GO.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from ryot.config import CriteriaConfig

GO, INVESTIGATE, DEBUG = "GO", "INVESTIGATE", "DEBUG"
DECISIONS = {
    GO: "PROCEED TO STAGE 3b",
    INVESTIGATE: "INVESTIGATE & RETRY",
    DEBUG: "DEBUG & ADJUST CONFIG",
}
EXIT_CODES = {GO: 0, INVESTIGATE: 1, DEBUG: 3}

# Criterion ids, in report order; each is one parametrized test in validation/.
CRITERIA = (
    "speedup",
    "loss_match",
    "throughput",
    "no_divergence",
    "memory",
    "encoding_safety",
    "optimizations_effective",
    "measurement_reliable",
)


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

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def message(self) -> str:
        """One line for a test failure or a console row: value, CI, threshold."""
        value = "n/a" if self.measured is None else f"{self.measured:.4g}{self.unit}"
        ci = ""
        if self.ci_low is not None and self.ci_high is not None:
            ci = f" (95% CI {self.ci_low:.4g}{self.unit} .. {self.ci_high:.4g}{self.unit})"
        return f"{self.name}: measured {value}{ci}; required {self.threshold}. {self.detail}"


def _pct(x: float | None) -> float | None:
    return None if x is None else 100.0 * x


def judge(measured: dict[str, Any], c: CriteriaConfig) -> list[CriterionResult]:
    """Criterion results from the protocol's measurements (see ryot.protocol.measurements)."""
    rows = []
    s = measured["speedup"]
    low = _pct(s["low"])
    rows.append(CriterionResult(
        "speedup", "Speedup (end-to-end time)", f"CI lower bound >= {c.min_speedup_percent:g}%",
        _pct(s["median"]), "%", low, _pct(s["high"]),
        passed=low is not None and low >= c.min_speedup_percent, critical=False,
        detail=f"1 - T_opt/T_base over {s['n']} interleaved pairs, {s['method']}.",
    ))  # fmt: skip
    d = measured["loss_delta"]
    worst = max((abs(v) for v in d["values"]), default=None)
    rows.append(CriterionResult(
        "loss_match", "Validation loss match", f"|delta| < {c.max_loss_delta:g} for every seed",
        d["median"], "", d["low"], d["high"],
        passed=worst is not None and worst < c.max_loss_delta, critical=False,
        detail=f"optimized - baseline validation loss; worst seed |delta| = {worst:.4f}."
        if worst is not None else "no validation loss pair.",
    ))  # fmt: skip
    t = measured["throughput"]
    low = _pct(t["low"])
    rows.append(CriterionResult(
        "throughput", "Throughput improvement (tokens/s)",
        f"CI lower bound >= {c.min_throughput_improvement_percent:g}%",
        _pct(t["median"]), "%", low, _pct(t["high"]),
        passed=low is not None and low >= c.min_throughput_improvement_percent, critical=False,
        detail="tokens actually fed per second of training, optimized / baseline - 1.",
    ))  # fmt: skip
    problems = measured["divergence"]
    rows.append(CriterionResult(
        "no_divergence", "No divergence or crash", "no NaN/Inf, no crash, loss falls",
        float(len(problems)), " problems", None, None,
        passed=not problems, critical=True,
        detail="; ".join(problems) if problems else "every run finished with a falling loss.",
    ))  # fmt: skip
    mem = measured["memory"]
    rows.append(CriterionResult(
        "memory", "Peak memory (optimized)", f"< {c.max_peak_memory_mb:g} MiB",
        mem["optimized"], " MiB", None, None,
        passed=mem["optimized"] is not None and mem["optimized"] < c.max_peak_memory_mb,
        critical=False,
        detail=f"baseline peak {mem['baseline']:.0f} MiB; {mem['method']}"
        + (f"; optimized peak RSS {mem['optimized_rss']:.0f} MiB (with allocator retention)"
           if mem.get("optimized_rss") is not None else "") + "."
        if mem["baseline"] is not None else mem["method"],
    ))  # fmt: skip
    enc = measured["encoding"]
    rows.append(CriterionResult(
        "encoding_safety", "Encoding safety", "every run survives a narrow console; UTF-8 files",
        float(len(enc["problems"])), " problems", None, None,
        passed=not enc["problems"], critical=True,
        detail="; ".join(enc["problems"]) if enc["problems"] else enc["summary"],
    ))  # fmt: skip
    noeffect = measured["no_effect"]
    rows.append(CriterionResult(
        "optimizations_effective", "Optimizations effective", "no NoEffect finding",
        float(len(noeffect)), " findings", None, None,
        passed=not noeffect, critical=True,
        detail="; ".join(noeffect) if noeffect else "each enabled optimization changed what runs.",
    ))  # fmt: skip
    noise = measured["noise"]
    value = _pct(noise["aa"])
    rows.append(CriterionResult(
        "measurement_reliable", "Measurement reliable (A/A noise)",
        f"<= {c.max_noise_percent:g}%", value, "%", None, None,
        passed=value is not None and value <= c.max_noise_percent, critical=False,
        detail=noise["detail"],
    ))  # fmt: skip
    return rows


def verdict(rows: list[CriterionResult]) -> str:
    if any(r.critical and not r.passed for r in rows):
        return DEBUG
    return GO if all(r.passed for r in rows) else INVESTIGATE


def scenario(speedup_percent: float | None, loss_delta: float | None) -> str:
    """The seed plan's scenario classes, from the measured speedup and loss delta."""
    if speedup_percent is None or loss_delta is None:
        return "worst-case"
    if speedup_percent >= 25 and abs(loss_delta) < 0.05:
        return "optimistic"
    if speedup_percent >= 20 and abs(loss_delta) < 0.1:
        return "conservative"
    return "worst-case"
