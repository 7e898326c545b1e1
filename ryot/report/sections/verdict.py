"""The banner: the verdict, why (the failed criteria and the judge's other reasons), and
what was run where. Its headline figures come from headline.py."""

from __future__ import annotations

from typing import Any

from ryot.comparison.model import Comparison, Criterion, Verdict
from ryot.report.fields import arm_names
from ryot.report.formatting import NA, fmt_created, fmt_criterion_value, fmt_int, fmt_text
from ryot.report.sections.criteria import criterion_summary
from ryot.report.sections.headline import key_numbers
from ryot.report.summary import headline_figures

STATUS_CLASS = {"GO": "go", "INVESTIGATE": "investigate", "DEBUG": "debug"}


def status_css(status: Any) -> str:
    """The CSS class of a verdict status (GO, INVESTIGATE, DEBUG); "none" otherwise."""
    return STATUS_CLASS.get(status, "none") if isinstance(status, str) else "none"


def _reason(row: Criterion) -> str:
    """One failed criterion in words: the row's own summary (measured value, CI, threshold) when
    it has one, as the console and pytest print it; else built from its fields (schema 1.0)."""
    cid, unit = row.id or "", row.unit or ""
    name = f"{cid if row.name is None else row.name}{' (critical)' if row.critical else ''}"
    if criterion_summary(row):
        return f"{name}: {criterion_summary(row)}"
    text = f"{name}: measured {fmt_criterion_value(row.measured, unit, cid)}"
    if row.ci_low is not None and row.ci_high is not None:
        text += (
            f" (CI [{fmt_criterion_value(row.ci_low, unit, cid)}, "
            f"{fmt_criterion_value(row.ci_high, unit, cid)}])"
        )
    return f"{text}, needs {fmt_text(row.threshold)}"


def _more_reasons(verdict: Verdict | None, failed: list[Criterion]) -> list[str]:
    """verdict.reasons (schema 3.0) beyond the failed criteria listed already: what the
    optimized arm skipped (bf16 without native support, ...), in the judge's words."""
    shown = {r.summary for r in failed} | {_reason(r) for r in failed}
    reasons = verdict.reasons if verdict else ()
    return [r for r in reasons if r is not None and r not in shown]


def banner_context(c: Comparison) -> dict[str, Any]:
    """The verdict and why, the headline figures, and what was run on what."""
    env, verdict, rows = c.environment, c.verdict, list(c.criteria)
    failed = [r for r in rows if not r.passed]
    if failed:
        why = f"{len(failed)} of {len(rows)} criteria failed:"
    else:
        why = f"All {len(rows)} criteria passed." if rows else None
    hardware = str(env.gpu or env.cpu or NA)
    if env.gpu and env.cpu:
        hardware += f" (CPU {env.cpu})"
    banner = {
        "why": why,
        "reasons": [_reason(r) for r in sorted(failed, key=lambda r: not r.critical)],
        "more_reasons": _more_reasons(verdict, failed),
        "primary": headline_figures(c),
        "headline": key_numbers(c, rows, failed),
        "created": fmt_created(c.created),
        "device": str(env.device or NA),
        "hardware": hardware,
        "config_name": fmt_text(c.config_name),
        "model": fmt_text(c.model),
        "num_parameters": fmt_int(c.num_parameters),
    }
    if verdict is None:
        arms = ", ".join(arm_names(c)) or "no runs"
        return {
            **banner,
            "status": "NO VERDICT",
            "css": "none",
            "decision": None,
            "scenario": None,
            "exit_code": None,
            "no_verdict": f"No verdict: this was a single-arm run ({arms}), so there is no "
            "baseline/optimized pair to judge.",
        }
    return {
        **banner,
        "status": fmt_text(verdict.status),
        "css": status_css(verdict.status),
        "decision": fmt_text(verdict.decision),
        "scenario": fmt_text(verdict.scenario),
        "exit_code": fmt_text(verdict.exit_code),
        "no_verdict": None,
    }
