"""The banner: the verdict, why (the failed criteria and the judge's other reasons), and
what was run where. Its headline figures come from headline.py."""

from __future__ import annotations

from typing import Any

from ryot.report.fields import arm_names, as_dict, as_list, is_num
from ryot.report.formatting import NA, fmt_created, fmt_criterion_value, fmt_int
from ryot.report.sections.criteria import criterion_summary
from ryot.report.sections.headline import key_numbers
from ryot.report.summary import headline_figures

STATUS_CLASS = {"GO": "go", "INVESTIGATE": "investigate", "DEBUG": "debug"}


def status_css(status: Any) -> str:
    """The CSS class of a verdict status (GO, INVESTIGATE, DEBUG); "none" otherwise."""
    return STATUS_CLASS.get(status, "none") if isinstance(status, str) else "none"


def _reason(row: dict) -> str:
    """One failed criterion in words: the row's own summary (measured value, CI, threshold) when
    it has one, as the console and pytest print it; else built from its fields (schema 1.0)."""
    cid, unit = str(row.get("id", "")), str(row.get("unit", ""))
    name = f"{row.get('name', cid)}{' (critical)' if row.get('critical') else ''}"
    if criterion_summary(row):
        return f"{name}: {criterion_summary(row)}"
    text = f"{name}: measured {fmt_criterion_value(row.get('measured'), unit, cid)}"
    if is_num(row.get("ci_low")) and is_num(row.get("ci_high")):
        text += (
            f" (CI [{fmt_criterion_value(row['ci_low'], unit, cid)}, "
            f"{fmt_criterion_value(row['ci_high'], unit, cid)}])"
        )
    return f"{text}, needs {row.get('threshold', NA)}"


def _more_reasons(verdict: dict | None, failed: list[dict]) -> list[str]:
    """verdict.reasons (schema 3.0) beyond the failed criteria listed already: what the
    optimized arm skipped (bf16 without native support, ...), in the judge's words."""
    shown = {r.get("summary") for r in failed} | {_reason(r) for r in failed}
    reasons = as_list(as_dict(verdict).get("reasons"))
    return [r for r in reasons if isinstance(r, str) and r not in shown]


def banner_context(c: dict) -> dict[str, Any]:
    """The verdict and why, the headline figures, and what was run on what."""
    env = as_dict(c.get("environment"))
    verdict = c.get("verdict") if isinstance(c.get("verdict"), dict) else None
    rows = [r for r in as_list(c.get("criteria")) if isinstance(r, dict)]
    failed = [r for r in rows if not r.get("passed")]
    if failed:
        why = f"{len(failed)} of {len(rows)} criteria failed:"
    else:
        why = f"All {len(rows)} criteria passed." if rows else None
    hardware = str(env.get("gpu") or env.get("cpu") or NA)
    if env.get("gpu") and env.get("cpu"):
        hardware += f" (CPU {env['cpu']})"
    banner = {
        "why": why,
        "reasons": [_reason(r) for r in sorted(failed, key=lambda r: not r.get("critical"))],
        "more_reasons": _more_reasons(verdict, failed),
        "primary": headline_figures(c),
        "headline": key_numbers(c, rows, failed),
        "created": fmt_created(c.get("created")),
        "device": str(env.get("device") or NA),
        "hardware": hardware,
        "config_name": str(c.get("config_name", NA)),
        "model": str(c.get("model", NA)),
        "num_parameters": fmt_int(c.get("num_parameters")),
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
        "status": str(verdict.get("status", NA)),
        "css": status_css(verdict.get("status")),
        "decision": str(verdict.get("decision", NA)),
        "scenario": str(verdict.get("scenario", NA)),
        "exit_code": str(verdict.get("exit_code", NA)),
        "no_verdict": None,
    }
