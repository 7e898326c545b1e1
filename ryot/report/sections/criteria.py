"""The success criteria table, each row with its pytest test and outcome."""

from __future__ import annotations

from typing import Any

from ryot.report.fields import as_list, estimate, get_path, is_num
from ryot.report.formatting import NA, fmt, fmt_criterion_value, to_percent

CRITERION_TEST = "validation/test_stage3a.py::test_criterion[{id}]"
NOT_UNDER_PYTEST = "not run under pytest"


def criterion_summary(row: dict) -> str:
    """The row's one-line summary (measured value, CI, threshold), without its leading name."""
    summary, name = row.get("summary"), str(row.get("name", ""))
    if not isinstance(summary, str):
        return ""
    return summary[len(name) + 1 :].strip() if name and summary.startswith(f"{name}:") else summary


def _criterion_test(tests: Any, criterion_id: str) -> tuple[str, str]:
    nodeid = CRITERION_TEST.format(id=criterion_id)
    if not isinstance(tests, dict):
        return nodeid, NOT_UNDER_PYTEST
    if nodeid in tests:
        return nodeid, str(tests[nodeid])
    for key, outcome in tests.items():
        if str(key).endswith(nodeid.split("/", 1)[1]):
            return str(key), str(outcome)
    return nodeid, "not collected"


TEST_CSS = {"passed": "pass", "failed": "fail", "error": "fail"}


def _criterion_row(r: dict, tests: Any) -> dict[str, Any]:
    cid, unit = str(r.get("id", "")), str(r.get("unit", ""))
    ci = NA
    if is_num(r.get("ci_low")) and is_num(r.get("ci_high")):
        low = fmt_criterion_value(r["ci_low"], unit, cid)
        ci = f"[{low}, {fmt_criterion_value(r['ci_high'], unit, cid)}]"
    nodeid, outcome = _criterion_test(tests, cid)
    return {
        "id": cid,
        "name": str(r.get("name", cid)),
        "threshold": str(r.get("threshold", NA)),
        "measured": fmt_criterion_value(r.get("measured"), unit, cid),
        "ci": ci,
        "passed": bool(r.get("passed")),
        "critical": bool(r.get("critical")),
        "detail": str(r.get("detail", "")),
        "summary": criterion_summary(r),
        "test_id": nodeid,
        "test_outcome": outcome,
        "test_css": TEST_CSS.get(outcome, "muted"),
    }


def criteria_context(c: dict) -> dict[str, Any]:
    """The criteria rows, the CI level's label and the pytest outcomes recorded."""
    tests = c.get("tests")
    rows = [_criterion_row(r, tests) for r in as_list(c.get("criteria")) if isinstance(r, dict)]
    level = estimate(c, "time_to_target").get("level") or estimate(c, "speedup").get("level")
    if not is_num(level):
        level = get_path(c, "config", "measurement", "confidence")
    summary, other_tests = None, []
    if isinstance(tests, dict):
        counts: dict[str, int] = {}
        for outcome in tests.values():
            counts[str(outcome)] = counts.get(str(outcome), 0) + 1
        summary = ", ".join(f"{n} {k}" for k, n in sorted(counts.items())) or "no tests"
        shown = {r["test_id"] for r in rows}
        other_tests = [
            (str(k), str(v), TEST_CSS.get(str(v), "muted"))
            for k, v in tests.items()
            if k not in shown
        ]
    return {
        "rows": rows,
        "ci_label": f"{fmt(to_percent(level), '.0f')}% CI",
        "tests_summary": summary,
        "other_tests": other_tests,
    }
