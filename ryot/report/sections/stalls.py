"""Machine stalls taken off each run's clock, with the contaminated runs beside."""

from __future__ import annotations

from typing import Any

from ryot.comparison.model import Comparison
from ryot.report.formatting import fmt, fmt_int, fmt_seconds, fmt_text
from ryot.report.sections.contamination import contamination_context


def stalls_context(c: Comparison) -> dict[str, Any] | None:
    """Machine stalls (SIGSTOP, whole-process preemption, steal) taken off each run's clock:
    the total, the runs that had any, and the rule that decides what a stall is; None for a
    file before stall accounting."""
    stalls = c.stalls  # every job's, a single-arm job's too
    if stalls is None:
        return None
    runs = stalls.runs
    stalled = [r for r in runs if r.stall_s is not None and r.stall_s > 0]
    rows = [
        {
            "label": fmt_text(r.label),
            "arm": fmt_text(r.arm),
            "role": fmt_text(r.role),
            "stall": fmt(r.stall_s, ".3f"),
            "steps": fmt_int(r.stalled_steps),
            "largest": fmt(r.largest_s, ".3f"),
            "queue": fmt(r.run_queue_wait_s, ".3f"),
            "switches": fmt_int(r.involuntary_switches),
        }
        for r in stalled
    ]
    if stalled:
        summary = (
            f"{fmt_seconds(stalls.total_s)} taken off the clocks of {len(stalled)} of "
            f"{len(runs)} runs"
        )
    else:
        summary = f"none seen in {len(runs)} run{'' if len(runs) == 1 else 's'}"
    reported = None
    if stalls.run_queue_wait_s is not None or stalls.involuntary_switches is not None:
        reported = (
            f"Reported only, left on the clock: run-queue wait "
            f"{fmt_seconds(stalls.run_queue_wait_s or 0)} and "
            f"{fmt_int(stalls.involuntary_switches or 0)} involuntary context switches over "
            f"{len(runs)} runs (threads ready to run but waiting for a CPU)."
        )
    return {
        "summary": summary,
        "rows": rows,
        "rule": stalls.rule or "",
        "reported": reported,
        **contamination_context(c),
    }
