"""Contaminated runs (re-run, never judged) and whether the machine was too busy."""

from __future__ import annotations

from typing import Any

from ryot.comparison.measurements import Contamination
from ryot.comparison.model import Comparison
from ryot.report.formatting import fmt, fmt_frac_pct, fmt_text
from ryot.report.summary import contamination_lines


def contamination_context(c: Comparison) -> dict[str, Any]:
    """The contaminated runs (too much of their time contended: re-run, never judged) and,
    when a planned pair or the A/A had no clean run left, that the machine was too busy."""
    k = (c.measurements and c.measurements.contamination) or Contamination()
    rows = [
        {
            "label": fmt_text(r.label),
            "arm": fmt_text(r.arm),
            "role": fmt_text(r.role),
            "contended": fmt(r.contended_s, ".2f"),
            "share": fmt_frac_pct(r.share, signed=False),
            "reason": r.reason or "",
        }
        for r in k.runs
    ]
    lines = contamination_lines(c)
    share = fmt_frac_pct(k.max_share, signed=False).replace(".0%", "%")
    return {
        "contaminated": rows,
        "contaminated_note": (
            f"A run with more than {share} of its time contended (measurement."
            "max_contended_share) has its pair or A/A re-run, and is never judged."
        ),
        "too_busy": lines[1] if len(lines) > 1 else None,
    }
