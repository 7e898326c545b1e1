""".ci/accept_verdict.py: CI accepts an honest INVESTIGATE, and nothing broken."""

from __future__ import annotations

import importlib.util
import json

import pytest

from tests.conftest import ROOT

_spec = importlib.util.spec_from_file_location("accept_verdict", ROOT / ".ci" / "accept_verdict.py")
accept_verdict = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(accept_verdict)

TEST = "validation/test_stage3a.py::test_criterion[{}]"
AT_QUALITY = "matched_loss_speedup"


def write_run(tmp_path, status="INVESTIGATE", failed=(AT_QUALITY,), extra=None, report=True):
    criteria = [
        {"id": "baseline_learned", "critical": True, "passed": "baseline_learned" not in failed},
        {"id": AT_QUALITY, "critical": False, "passed": AT_QUALITY not in failed},
        {"id": "speedup", "critical": False, "passed": "speedup" not in failed},
    ]
    tests = {TEST.format(c["id"]): "passed" if c["passed"] else "failed" for c in criteria}
    tests["validation/test_stage3a.py::test_training_step_time[baseline]"] = "passed"
    tests.update(extra or {})
    data = {"verdict": {"status": status}, "criteria": criteria, "tests": tests}
    (tmp_path / "comparison.json").write_text(json.dumps(data), encoding="utf-8")
    if report:
        (tmp_path / "report.html").write_text("<html></html>", encoding="utf-8")
    return tmp_path


def test_an_honest_investigate_is_accepted(tmp_path):
    assert accept_verdict.main(write_run(tmp_path)) == 0


@pytest.mark.parametrize(
    "kwargs",
    [
        {"status": "DEBUG", "failed": ("baseline_learned",)},
        {"failed": ("baseline_learned", "speedup")},  # a critical criterion failed
        {"extra": {"validation/test_stage3a.py::test_training_step_time[optimized]": "failed"}},
        {"report": False},
        {"status": "GO", "failed": ()},  # GO exits 0 and never reaches the gate
    ],
    ids=["DEBUG", "critical criterion", "benchmark failed", "no report", "not exit 1"],
)
def test_anything_else_fails_ci(tmp_path, kwargs):
    assert accept_verdict.main(write_run(tmp_path, **kwargs)) == 1


def test_a_missing_comparison_fails_ci(tmp_path):
    assert accept_verdict.main(tmp_path) == 1
