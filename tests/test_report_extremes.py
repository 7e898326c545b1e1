"""The report renders whatever finite number a field holds: every number of a synthetic
comparison set to the largest float, one at a time (a fuzz once found a step time of 1e308
crashing the charts with an OverflowError: 1000 * 1e308 ms is infinite, and so was an axis)."""

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


@pytest.mark.parametrize("extreme", [1e308, -1e308])
def test_every_number_at_floats_limit_still_renders(extreme):
    base = synthetic_comparison()
    base["runs"] = base["runs"][:2]
    paths = list(numeric_paths(base))
    assert len(paths) > 150
    for path in paths:
        mutated = copy.deepcopy(base)
        node = mutated
        for key in path[:-1]:
            node = node[key]
        node[path[-1]] = extreme
        assert "</html>" in render_report(mutated, [base]), path
