"""A torchrun job's world, backend and per-rank step skew."""

from __future__ import annotations

from typing import Any

from ryot.comparison.model import Comparison
from ryot.report.formatting import NA, fmt, fmt_ms, fmt_seconds, fmt_text


def distributed_context(c: Comparison) -> dict[str, Any] | None:
    """A torchrun job's world, backend and per-rank step skew (None for single processes), and
    the single-process baseline of the same config, when the run recorded one."""
    d = c.distributed
    if d is None:
        return None
    rows = [
        {
            "label": fmt_text(r.label),
            "arm": r.arm or "",
            "ranks": " / ".join(fmt_ms(x) for x in r.rank_median_step_s) or NA,
            "median": fmt_ms(r.median_skew_s),
            "max": fmt_ms(r.max_skew_s),
        }
        for r in d.runs
    ]
    single = d.single_process
    text = None
    if single:
        text = (
            f"Against the single-process baseline of the same config in this folder's previous "
            f"run ({fmt_text(single.source)}): stack clock {fmt_seconds(single.clock_s)}"
            f" with one process, {fmt_seconds(single.distributed_clock_s)} here; "
            f"validation loss {fmt(single.val_loss, '.4f')} there, "
            f"{fmt(single.distributed_val_loss, '.4f')} here."
        )
    return {
        "world_size": fmt_text(d.world_size),
        "backend": d.backend or NA,
        "rows": rows,
        "single": text,
    }
