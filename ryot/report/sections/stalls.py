"""Machine stalls taken off each run's clock, with the contaminated runs beside."""

from __future__ import annotations

from typing import Any

from ryot.report.fields import as_dict, as_list, is_num, measurement
from ryot.report.formatting import NA, fmt, fmt_int, fmt_seconds
from ryot.report.sections.contamination import contamination_context


def _stall_runs(c: dict) -> tuple[list[dict], str, Any] | None:
    """(runs, rule, total) from measurements.stalls, else from each run's result (a single-arm
    run has no measurements); None before schema 3.0 (stalls were not recorded)."""
    stalls = measurement(c, "stalls")
    if stalls:
        runs = [r for r in as_list(stalls.get("runs")) if isinstance(r, dict)]
        return runs, str(stalls.get("rule") or ""), stalls.get("total_s")
    runs = []
    for r in as_list(c.get("runs")):
        res = as_dict(as_dict(r).get("result"))
        if "stall_s" not in res:
            continue
        each = (res.get("setup_stall_s"), *as_list(res.get("step_stalls")))
        stalled = [s for s in each if is_num(s) and s > 0]
        runs.append(
            {
                "label": f"run {r.get('index', NA)} ({r.get('arm', NA)}, {r.get('role', NA)})",
                "arm": r.get("arm"),
                "role": r.get("role"),
                "stall_s": res.get("stall_s"),
                "stalled_steps": len(stalled),
                "largest_s": max(stalled, default=0.0),
                "run_queue_wait_s": res.get("run_queue_wait_s"),
                "involuntary_switches": res.get("involuntary_switches"),
            }
        )
    if not runs:
        return None
    return runs, "", sum(r["stall_s"] for r in runs if is_num(r["stall_s"]))


def stalls_context(c: dict) -> dict[str, Any] | None:
    """Machine stalls (SIGSTOP, whole-process preemption, steal) taken off each run's clock:
    the total, the runs that had any, and the rule that decides what a stall is."""
    found = _stall_runs(c)
    if found is None:
        return None
    runs, rule, total = found
    stalled = [r for r in runs if is_num(r.get("stall_s")) and r["stall_s"] > 0]
    rows = [
        {
            "label": str(r.get("label", NA)),
            "arm": str(r.get("arm", NA)),
            "role": str(r.get("role", NA)),
            "stall": fmt(r.get("stall_s"), ".3f"),
            "steps": fmt_int(r.get("stalled_steps")),
            "largest": fmt(r.get("largest_s"), ".3f"),
            "queue": fmt(r.get("run_queue_wait_s"), ".3f"),
            "switches": fmt_int(r.get("involuntary_switches")),
        }
        for r in stalled
    ]
    if stalled:
        summary = f"{fmt_seconds(total)} taken off the clocks of {len(stalled)} of {len(runs)} runs"
    else:
        summary = f"none seen in {len(runs)} run{'' if len(runs) == 1 else 's'}"
    queue = [r["run_queue_wait_s"] for r in runs if is_num(r.get("run_queue_wait_s"))]
    switches = [r["involuntary_switches"] for r in runs if is_num(r.get("involuntary_switches"))]
    reported = None
    if queue or switches:
        reported = (
            f"Reported only, left on the clock: run-queue wait {fmt_seconds(sum(queue))} and "
            f"{fmt_int(sum(switches))} involuntary context switches over {len(runs)} runs "
            "(threads ready to run but waiting for a CPU)."
        )
    return {
        "summary": summary,
        "rows": rows,
        "rule": rule,
        "reported": reported,
        **contamination_context(c),
    }
