"""The success criteria table, each row with its pytest test and outcome."""

from __future__ import annotations

from typing import Any

from ryot.comparison.model import Comparison, Criterion
from ryot.report.formatting import NA, fmt, fmt_criterion_value, fmt_text, is_num, to_percent

CRITERION_TEST = "validation/test_stage3a.py::test_criterion[{id}]"
NOT_UNDER_PYTEST = "not run under pytest"


def criterion_summary(row: Criterion) -> str:
    """The row's one-line summary (measured value, CI, threshold), without its leading name."""
    summary, name = row.summary, row.name or ""
    if summary is None:
        return ""
    return summary[len(name) + 1 :].strip() if name and summary.startswith(f"{name}:") else summary


def _criterion_test(tests: dict[str, str | None] | None, criterion_id: str) -> tuple[str, str]:
    nodeid = CRITERION_TEST.format(id=criterion_id)
    if tests is None:
        return nodeid, NOT_UNDER_PYTEST
    if nodeid in tests:
        return nodeid, str(tests[nodeid])
    for key, outcome in tests.items():
        if key.endswith(nodeid.split("/", 1)[1]):
            return key, str(outcome)
    return nodeid, "not collected"


TEST_CSS = {"passed": "pass", "failed": "fail", "error": "fail"}


def _criterion_row(r: Criterion, tests: dict[str, str | None] | None) -> dict[str, Any]:
    cid, unit = r.id or "", r.unit or ""
    ci = NA
    if r.ci_low is not None and r.ci_high is not None:
        low = fmt_criterion_value(r.ci_low, unit, cid)
        ci = f"[{low}, {fmt_criterion_value(r.ci_high, unit, cid)}]"
    nodeid, outcome = _criterion_test(tests, cid)
    return {
        "id": cid,
        "name": cid if r.name is None else r.name,
        "threshold": fmt_text(r.threshold),
        "measured": fmt_criterion_value(r.measured, unit, cid),
        "ci": ci,
        "passed": bool(r.passed),
        "critical": bool(r.critical),
        "detail": r.detail or "",
        "summary": criterion_summary(r),
        "test_id": nodeid,
        "test_outcome": outcome,
        "test_css": TEST_CSS.get(outcome, "muted"),
    }


def criteria_context(c: Comparison) -> dict[str, Any]:
    """The criteria rows, the CI level's label and the pytest outcomes recorded."""
    tests = c.tests
    rows = [_criterion_row(r, tests) for r in c.criteria]
    m = c.measurements
    level = (m and m.matched_loss and m.matched_loss.level) or (m and m.speedup and m.speedup.level)
    if not is_num(level):
        level = c.config.measurement.confidence
    summary, other_tests = None, []
    if tests is not None:
        counts: dict[str, int] = {}
        for outcome in tests.values():
            counts[str(outcome)] = counts.get(str(outcome), 0) + 1
        summary = ", ".join(f"{n} {k}" for k, n in sorted(counts.items())) or "no tests"
        shown = {r["test_id"] for r in rows}
        other_tests = [
            (k, str(v), TEST_CSS.get(str(v), "muted")) for k, v in tests.items() if k not in shown
        ]
    return {
        "rows": rows,
        "ci_label": f"{fmt(to_percent(level), '.0f')}% CI",
        "tests_summary": summary,
        "other_tests": other_tests,
    }
