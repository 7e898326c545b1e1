"""ryot/report/ci_summary.py and session.report_to_ci: the job summary and the annotations."""

from __future__ import annotations

import io

from ryot import cli
from ryot.comparison.model import Comparison
from ryot.console import Console
from ryot.experiment.session import report_to_ci
from ryot.report.ci_summary import annotations, markdown
from tests.conftest import _investigate, in_process_runner, smoke_variant


def comparison() -> dict:
    row = dict(
        id="speedup",
        name="Speedup (end-to-end time)",
        threshold="CI lower bound >= 5%",
        measured=3.25,
        unit="%",
        ci_low=-1.5,
        ci_high=8.0,
        passed=False,
        critical=False,
        detail="over 3 pairs",
        summary="Speedup (end-to-end time): 3.25% (95% CI -1.5% .. 8%); required CI lower "
        "bound >= 5%",
    )
    memory = dict(
        row,
        id="memory",
        name="Peak memory (optimized)",
        threshold="< 2000 MiB",
        measured=24.8,
        unit=" MiB",
        ci_low=None,
        ci_high=None,
        passed=True,
    )
    return {  # a comparison.json of a judged job, the keys the summary reads (and every one
        # that a readable file has: ryot.comparison.upgrade.check)
        "schema_version": "3.0",
        "stage": "3a",
        "model": "ScaledTransformerModel",
        "created": "2025-01-02T03:04:05+00:00",
        "num_parameters": 1000,
        "baseline": None,
        "optimized": None,
        "comparison": None,
        "evidence": {},
        "ablation": {},
        "config_name": "smoke",
        "config_path": "configs/smoke.yaml",
        "command": "ryot stage3a --config configs/smoke.yaml",
        "config": {"measurement": {"confidence": 0.95}},
        "criteria": [row, memory],
        "verdict": {
            "status": "INVESTIGATE",
            "decision": "LOOK CLOSER",
            "scenario": "worst-case",
            "exit_code": 1,
            "reasons": [row["summary"]],
        },  # fmt: skip
        "environment": {
            "cpu": "AMD EPYC",
            "cpu_count": 2,
            "threads": 2,
            "device": "cpu",
            "python": "3.11.7",
            "torch": "2.13.0",
            "platform": "Linux",
        },  # fmt: skip
        "runs": [{}, {}, {}],
        "job_wall_s": 41.6,
    }


def typed(**changes) -> Comparison:
    """comparison(), with `changes`, as the typed comparison the summary reads."""
    return Comparison.from_dict({**comparison(), **changes})


def test_the_summary_has_the_verdict_the_criteria_with_their_cis_and_the_machine():
    md = markdown(typed())
    assert md.splitlines()[0] == "## Ryot Stage 3a: \u26a0\ufe0f INVESTIGATE \u2014 LOOK CLOSER"
    assert "| Criterion | Measured | 95% CI | Threshold | Result |" in md
    assert ("| Speedup (end-to-end time) | +3.2% | [-1.5%, +8.0%] | CI lower bound >= 5% | "
            "\u274c **FAIL** |") in md  # fmt: skip
    assert "| Peak memory (optimized) | 24.8 MiB | n/a | < 2000 MiB | \u2705 pass |" in md
    assert "- **Machine:** AMD EPYC (2 CPUs, 2 threads), device cpu; Python 3.11.7" in md
    assert "- **Job:** 3 runs in 42 s by the wall clock" in md
    assert "Why:\n- Speedup (end-to-end time): 3.25%" in md


def test_each_failed_criterion_is_one_error_annotation_with_workflow_escapes():
    (line,) = annotations(typed())
    assert line.startswith("::error title=Ryot Stage 3a criterion failed%3A Speedup (end-to-end ")
    assert "::Speedup (end-to-end time): 3.25%25 (95%25 CI" in line
    assert line.endswith(". over 3 pairs")


def test_report_to_ci_appends_the_summary_and_prints_annotations_only_in_github(tmp_path):
    summary = tmp_path / "summary.md"
    summary.write_text("earlier step\n", encoding="utf-8")
    out = io.StringIO()
    env = {"GITHUB_STEP_SUMMARY": str(summary), "GITHUB_ACTIONS": "true"}
    report_to_ci(typed(), Console(out), env)
    text = summary.read_text(encoding="utf-8")
    assert text.startswith("earlier step\n## Ryot Stage 3a: ")  # appended, not replaced
    assert out.getvalue().startswith("::error title=")
    out = io.StringIO()
    report_to_ci(typed(), Console(out), {})  # outside CI: nothing at all
    assert out.getvalue() == ""
    report_to_ci(typed(verdict=None), Console(out), env)  # one arm: no verdict
    assert summary.read_text(encoding="utf-8") == text and out.getvalue() == ""


def test_an_unwritable_summary_is_a_warning_not_an_error(tmp_path):
    out = io.StringIO()
    report_to_ci(typed(), Console(out), {"GITHUB_STEP_SUMMARY": str(tmp_path)})  # a folder
    assert "GITHUB_STEP_SUMMARY:" in out.getvalue()


def test_a_judged_cli_job_writes_the_summary_and_annotates_its_failures(
    tmp_path, monkeypatch, capsys
):
    summary = tmp_path / "summary.md"
    monkeypatch.setenv("GITHUB_STEP_SUMMARY", str(summary))
    monkeypatch.setenv("GITHUB_ACTIONS", "true")
    monkeypatch.setattr(cli, "make_runner", in_process_runner)
    config = smoke_variant(tmp_path, "investigate", _investigate)  # asks the smoke for +99%
    code = cli.main(["stage3a", "--config", str(config), "--out", str(tmp_path / "run"),
                     "--repeats", "2"])  # fmt: skip
    assert code == 1
    md = summary.read_text(encoding="utf-8")
    assert "## Ryot Stage 3a: \u26a0\ufe0f INVESTIGATE" in md
    assert "| Speedup (end-to-end time) | " in md and "\u274c **FAIL**" in md
    stdout = capsys.readouterr().out
    assert "::error title=Ryot Stage 3a criterion failed%3A Speedup (end-to-end time)::" in stdout
