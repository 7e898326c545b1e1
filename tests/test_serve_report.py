"""The report's Stage 3b section, from a stage3b.json of the shape `pytest serving/` writes."""

from __future__ import annotations

import json

from ryot.report.stage3b import read_stage3b, stage3b_context

STAGE3B = {
    "status": "FAIL",
    "run_dir": "reports/x",
    "run_verdict": "INVESTIGATE",
    "allow_no_go": True,
    "health": {"parameters": 10511360, "device": "cpu",
               "checkpoint": {"path": "reports/x/checkpoints/optimized.pt", "sha256": "ab" * 32}},
    "serving": {"source": "configs/stage3a.yaml"},
    "criteria": {
        "p50_latency": {"passed": True, "detail": "p50 12.0 ms"},
        "batching_gain": {"passed": False, "detail": "3.10x; required >= 4x"},
    },
    "load": {"sequential": {"concurrency": 1, "tokens_per_s": 163.4, "p50_ms": 403.31},
             "concurrent": {"concurrency": 32, "tokens_per_s": 890.2, "p50_ms": 2316.2}},
    "bad_input": {"negative_id": {"status": 422}, "malformed_json": {"status": 500}},
    "tests": {"a": "passed", "b": "failed"},
    "duration_s": 61.26,
}  # fmt: skip


def test_context_formats_every_number_from_the_json():
    s3 = stage3b_context(STAGE3B)
    assert s3["status"] == "FAIL" and not s3["passed"]
    rows = {r["name"]: r for r in s3["criteria"]}
    assert rows["p50 latency"]["passed"] and rows["p50 latency"]["measured"]
    assert not rows["Batching gain (concurrent / sequential)"]["passed"]
    assert not rows["No errors under load"]["measured"]
    load = {label: (seq, con) for label, seq, con in s3["load"]}
    assert load["Generated tokens/s"] == ("163", "890")
    assert load["p50 latency"] == ("403.3 ms", "2316.2 ms")
    assert load["Errors"] == ("n/a", "n/a")
    assert s3["bad_input"] == "1 of 2 bad-input classes answered 4xx"
    assert s3["tests"] == "1 of 2 tests passed" and s3["duration"] == "61.3 s"
    assert dict(s3["served"])["Run verdict"] == "INVESTIGATE (served with --allow-no-go)"


def test_no_file_no_section_and_a_broken_file_says_so(tmp_path):
    assert read_stage3b(tmp_path) is None and stage3b_context(None) is None
    (tmp_path / "stage3b.json").write_text("{", encoding="utf-8")
    assert "JSONDecodeError" in stage3b_context(read_stage3b(tmp_path))["unreadable"]
    (tmp_path / "stage3b.json").write_text(json.dumps(STAGE3B), encoding="utf-8")
    assert read_stage3b(tmp_path) == STAGE3B


def test_report_has_the_section_only_with_stage3b(tmp_path):
    from ryot.report.html import read_comparison, render_report
    from tests.conftest import ROOT

    comparison = read_comparison(
        ROOT / "reports" / "examples" / "cpu-2core-epyc-no-avx512" / "comparison.json"
    )
    assert 'id="stage3b"' not in render_report(comparison)
    html = render_report(comparison, stage3b=STAGE3B)
    assert 'id="stage3b"' in html and "3.10x; required &gt;= 4x" in html
