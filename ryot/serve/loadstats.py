"""Stage 3b numbers from raw load measurements, and the criteria judged on them.

Pure functions on plain numbers: the suite measures, this module summarizes and judges, and its
unit tests pin every figure exactly.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass

from ryot.config import ServingConfig


def percentile(values: Sequence[float], q: float) -> float:
    """The q-th percentile (0..100), linear between closest ranks (numpy's default)."""
    if not values:
        return math.nan
    ordered = sorted(values)
    rank = (len(ordered) - 1) * q / 100
    low = math.floor(rank)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


@dataclass(frozen=True)
class LoadSummary:
    """One load phase: how many requests, how they went, how fast."""

    requests: int
    errors: int  # transport failures and non-200 answers
    concurrency: int
    wall_s: float
    new_tokens: int
    p50_ms: float
    p99_ms: float
    tokens_per_s: float
    mean_batch_rows: float  # what the server reported decoding each request with


def summarize(
    latencies_s: Sequence[float],
    errors: int,
    concurrency: int,
    wall_s: float,
    new_tokens: int,
    batch_rows: Sequence[int],
) -> LoadSummary:
    ms = [s * 1000 for s in latencies_s]
    return LoadSummary(
        requests=len(latencies_s) + errors,
        errors=errors,
        concurrency=concurrency,
        wall_s=wall_s,
        new_tokens=new_tokens,
        p50_ms=percentile(ms, 50),
        p99_ms=percentile(ms, 99),
        tokens_per_s=new_tokens / wall_s if wall_s > 0 else math.nan,
        mean_batch_rows=sum(batch_rows) / len(batch_rows) if batch_rows else math.nan,
    )


@dataclass(frozen=True)
class Criterion:
    name: str
    passed: bool
    value: float | None
    threshold: float | None
    detail: str

    def to_dict(self) -> dict:
        return asdict(self)


def _ok(value: float, limit: float, below: bool) -> bool:
    return math.isfinite(value) and (value <= limit if below else value >= limit)


def judge_load(
    concurrent: LoadSummary, sequential: LoadSummary, serving: ServingConfig
) -> list[Criterion]:
    """The load criteria: no errors, p50, p99, tokens/s, batching gain."""
    errors = concurrent.errors + sequential.errors
    gain = (
        concurrent.tokens_per_s / sequential.tokens_per_s
        if sequential.tokens_per_s > 0
        else math.nan
    )
    return [
        Criterion(
            "no_errors_under_load",
            errors == 0,
            float(errors),
            0.0,
            f"{errors} of {concurrent.requests + sequential.requests} requests failed",
        ),
        Criterion(
            "p50_latency",
            _ok(concurrent.p50_ms, serving.max_p50_latency_ms, below=True),
            concurrent.p50_ms,
            serving.max_p50_latency_ms,
            f"p50 {concurrent.p50_ms:.1f} ms at concurrency {concurrent.concurrency}; "
            f"required <= {serving.max_p50_latency_ms:g} ms",
        ),
        Criterion(
            "p99_latency",
            _ok(concurrent.p99_ms, serving.max_p99_latency_ms, below=True),
            concurrent.p99_ms,
            serving.max_p99_latency_ms,
            f"p99 {concurrent.p99_ms:.1f} ms at concurrency {concurrent.concurrency}; "
            f"required <= {serving.max_p99_latency_ms:g} ms",
        ),
        Criterion(
            "tokens_per_second",
            _ok(concurrent.tokens_per_s, serving.min_tokens_per_s, below=False),
            concurrent.tokens_per_s,
            serving.min_tokens_per_s,
            f"{concurrent.tokens_per_s:.0f} generated tokens/s at concurrency "
            f"{concurrent.concurrency}; required >= {serving.min_tokens_per_s:g}",
        ),
        Criterion(
            "batching_gain",
            _ok(gain, serving.min_batching_gain, below=False),
            gain,
            serving.min_batching_gain,
            f"{gain:.2f}x the tokens/s of sequential requests ({concurrent.tokens_per_s:.0f} vs "
            f"{sequential.tokens_per_s:.0f}); required >= {serving.min_batching_gain:g}x",
        ),
    ]
