"""The per-arm training tables: the run that stands for each arm, epoch by epoch."""

from __future__ import annotations

from typing import Any

from ryot.comparison.model import Comparison
from ryot.report.fields import arm_names
from ryot.report.formatting import fmt, fmt_loss, fmt_seconds, fmt_text
from ryot.report.summary import epoch_numbers


def epoch_tables(c: Comparison) -> list[dict[str, Any]]:
    """Per arm, the epochs and totals of the run that stands for it (the judge's last_runs:
    its last full-length run in a judged pair, never the warm-up or the A/A run)."""
    tables = []
    for arm in arm_names(c):
        run = c.last_run(arm)
        if run is None or run.result is None:
            tables.append({"arm": arm, "caption": "no completed run of this arm", "rows": []})
            continue
        res = run.result
        rows = [
            {"cells": epoch_numbers(e), "ok": e.status == "ok", "status": fmt_text(e.status)}
            for e in res.epochs
        ]
        tables.append(
            {
                "arm": arm,
                "caption": f"run {fmt_text(run.index)}, seed {fmt_text(run.seed)}, "
                f"{fmt_text(run.role)}",
                "rows": rows,
                "total_time": fmt_seconds(res.wall_time_s),
                "setup_time": fmt_seconds(res.setup_time_s),
                "val_loss": fmt_loss(res.val_loss),
                "initial_val_loss": fmt_loss(res.initial_val_loss),
                "peak_memory": fmt(res.peak_memory_mb, ".1f", " MiB"),
                "divergence": res.divergence if res.diverged else None,
                # the stack's own clock, the machine's stalls taken off (None: a file before
                # stall accounting, whose total time is the wall clock's)
                "clock": fmt_seconds(res.clock_s) if res.clock_s is not None else None,
                "stalls": fmt_seconds(res.stall_s),
            }
        )
    return tables
