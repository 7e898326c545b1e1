"""The report renders whatever finite number a field holds: every number of a synthetic
comparison (schema 4.0) set to the largest float, one at a time (a fuzz once found a step time
of 1e308 crashing the charts with an OverflowError: 1000 * 1e308 ms is infinite, and so was an
axis)."""

from __future__ import annotations

import copy

import pytest

from ryot.report.html import render_report
from tests.test_report import synthetic_comparison


def numeric_paths(value, path=()):
    if isinstance(value, dict):
        for key, item in value.items():
            yield from numeric_paths(item, (*path, key))
    elif isinstance(value, list):
        for i, item in enumerate(value[:2]):  # the first two items reach every shape
            yield from numeric_paths(item, (*path, i))
    elif isinstance(value, (int, float)) and not isinstance(value, bool):
        yield path


# The numbers schemas 3.0 and 4.0 added (matched losses, per-step A/A noise, machine stalls,
# each run's stall-free clock, each arm's): the synthetic comparison holds each, so the fuzz
# reaches each.
NEW_IN_3_0 = [
    *(("measurements", "matched_loss", "pairs", 0, k) for k in
      ("loss", "baseline_final", "optimized_final", "baseline_s", "optimized_s")),
    *(("measurements", "noise", k) for k in ("steps", "end_to_end")),
    ("stalls", "total_s"),
    *(("stalls", "runs", 1, k) for k in
      ("stall_s", "stalled_steps", "largest_s", "run_queue_wait_s", "involuntary_switches")),
    *(("runs", 1, "result", k) for k in
      ("setup_stall_s", "stack_build_s", "stall_s", "clock_s", "run_queue_wait_s",
       "involuntary_switches")),
    ("runs", 1, "result", "step_stalls", 0),
    *((arm, "clock_s") for arm in ("baseline", "optimized")),
]  # fmt: skip


@pytest.mark.parametrize("extreme", [1e308, -1e308])
def test_every_number_at_floats_limit_still_renders(extreme):
    base = synthetic_comparison()
    base["runs"] = base["runs"][:2]
    paths = list(numeric_paths(base))
    assert len(paths) > 150
    assert not [p for p in NEW_IN_3_0 if p not in paths]
    for path in paths:
        mutated = copy.deepcopy(base)
        node = mutated
        for key in path[:-1]:
            node = node[key]
        node[path[-1]] = extreme
        assert "</html>" in render_report(mutated, [base]), path
