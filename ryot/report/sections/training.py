"""The per-arm training tables: each arm's last run, epoch by epoch."""

from __future__ import annotations

from typing import Any

from ryot.report.fields import arm_names, as_list, last_run
from ryot.report.formatting import NA, fmt, fmt_loss, fmt_seconds
from ryot.report.summary import epoch_numbers


def epoch_tables(c: dict) -> list[dict[str, Any]]:
    """Per arm, its last run's epochs and totals (fields.last_run picks the run)."""
    tables = []
    for arm in arm_names(c):
        run = last_run(c, arm)
        if run is None:
            tables.append({"arm": arm, "caption": "no completed run of this arm", "rows": []})
            continue
        res = run["result"]
        rows = [
            {
                "cells": epoch_numbers(e),
                "ok": e.get("status") == "ok",
                "status": str(e.get("status", NA)),
            }
            for e in as_list(res.get("epochs"))
            if isinstance(e, dict)
        ]
        tables.append(
            {
                "arm": arm,
                "caption": f"run {run.get('index', NA)}, seed {run.get('seed', NA)}, "
                f"{run.get('role', NA)}",
                "rows": rows,
                "total_time": fmt_seconds(res.get("total_time_s")),
                "setup_time": fmt_seconds(res.get("setup_time_s")),
                "val_loss": fmt_loss(res.get("val_loss")),
                "initial_val_loss": fmt_loss(res.get("initial_val_loss")),
                "peak_memory": fmt(res.get("peak_memory_mb"), ".1f", " MiB"),
                "divergence": res.get("divergence") if res.get("diverged") else None,
                # schema 3.0: the stack's own clock, the machine's stalls taken off
                "clock": fmt_seconds(res.get("clock_s")) if "clock_s" in res else None,
                "stalls": fmt_seconds(res.get("stall_s")),
            }
        )
    return tables
