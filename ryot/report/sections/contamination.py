"""Contaminated runs (re-run, never judged) and whether the machine was too busy."""

from __future__ import annotations

from typing import Any

from ryot.report.fields import as_list, measurement
from ryot.report.formatting import NA, fmt, fmt_frac_pct
from ryot.report.summary import contamination_lines


def contamination_context(c: dict) -> dict[str, Any]:
    """The contaminated runs (too much of their time contended: re-run, never judged) and,
    when a planned pair or the A/A had no clean run left, that the machine was too busy."""
    k = measurement(c, "contamination")
    rows = [
        {
            "label": str(r.get("label", NA)),
            "arm": str(r.get("arm", NA)),
            "role": str(r.get("role", NA)),
            "contended": fmt(r.get("contended_s"), ".2f"),
            "share": fmt_frac_pct(r.get("share"), signed=False),
            "reason": str(r.get("reason") or ""),
        }
        for r in as_list(k.get("runs"))
        if isinstance(r, dict)
    ]
    lines = contamination_lines(c)
    share = fmt_frac_pct(k.get("max_share"), signed=False).replace(".0%", "%")
    return {
        "contaminated": rows,
        "contaminated_note": (
            f"A run with more than {share} of its time contended (measurement."
            "max_contended_share) has its pair or A/A re-run, and is never judged."
        ),
        "too_busy": lines[1] if len(lines) > 1 else None,
    }
