"""Stage 3b statistics and criteria, with exact numbers."""

from __future__ import annotations

import math

from ryot.config import ServingConfig
from ryot.serve.loadstats import judge_load, percentile, summarize


def test_percentile_interpolates_between_closest_ranks():
    values = [10.0, 20.0, 30.0, 40.0, 50.0]
    assert percentile(values, 50) == 30.0
    assert percentile(values, 99) == 49.6
    assert percentile(values, 0) == 10.0 and percentile(values, 100) == 50.0
    assert percentile([7.0], 99) == 7.0
    assert math.isnan(percentile([], 50))


def test_summary_counts_errors_and_tokens_per_second():
    s = summarize([0.1, 0.2, 0.3], errors=1, concurrency=4, wall_s=2.0, new_tokens=300,
                  batch_rows=[3, 3, 1])  # fmt: skip
    assert (s.requests, s.errors, s.tokens_per_s) == (4, 1, 150.0)
    assert math.isclose(s.p50_ms, 200.0) and math.isclose(s.mean_batch_rows, 7 / 3)


def test_judge_load_each_criterion_can_fail():
    serving = ServingConfig(max_p50_latency_ms=100, max_p99_latency_ms=200, min_tokens_per_s=1000,
                            min_batching_gain=4)  # fmt: skip
    sequential = summarize([0.05] * 4, 0, 1, 1.0, 300, [1] * 4)  # 300 tokens/s
    good = summarize([0.05] * 99 + [0.15], 0, 32, 1.0, 1200, [32] * 100)
    assert all(c.passed for c in judge_load(good, sequential, serving))
    bad = summarize([0.3] * 100, 2, 32, 1.0, 900, [32] * 100)  # 3x, slow, 2 errors
    verdict = {c.name: c for c in judge_load(bad, sequential, serving)}
    assert not any(c.passed for c in verdict.values()), verdict
    assert verdict["batching_gain"].value == 3.0
    assert verdict["no_errors_under_load"].detail == "2 of 106 requests failed"


def test_no_sequential_throughput_is_no_gain_not_a_pass():
    serving = ServingConfig()
    nothing = summarize([], 4, 1, 1.0, 0, [])
    load = summarize([0.1], 0, 32, 1.0, 500, [1])
    gain = {c.name: c for c in judge_load(load, nothing, serving)}["batching_gain"]
    assert not gain.passed and math.isnan(gain.value)
