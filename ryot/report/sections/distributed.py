"""A torchrun job's world, backend and per-rank step skew."""

from __future__ import annotations

from typing import Any

from ryot.report.fields import as_dict, as_list
from ryot.report.formatting import NA, fmt, fmt_ms, fmt_seconds


def distributed_context(c: dict) -> dict[str, Any] | None:
    """A torchrun job's world, backend and per-rank step skew (None for single processes), and
    the single-process baseline of the same config, when the run recorded one."""
    d = as_dict(c.get("distributed"))
    if not d:
        return None
    rows = [
        {
            "label": str(r.get("label", NA)),
            "arm": str(r.get("arm", "")),
            "ranks": " / ".join(fmt_ms(x) for x in as_list(r.get("rank_median_step_s"))) or NA,
            "median": fmt_ms(r.get("median_skew_s")),
            "max": fmt_ms(r.get("max_skew_s")),
        }
        for r in as_list(d.get("runs"))
        if isinstance(r, dict)
    ]
    single = as_dict(d.get("single_process"))
    text = None
    if single:
        text = (
            f"Against the single-process baseline of the same config in this folder's previous "
            f"run ({single.get('source', NA)}): stack clock {fmt_seconds(single.get('clock_s'))}"
            f" with one process, {fmt_seconds(single.get('distributed_clock_s'))} here; "
            f"validation loss {fmt(single.get('val_loss'), '.4f')} there, "
            f"{fmt(single.get('distributed_val_loss'), '.4f')} here."
        )
    return {
        "world_size": d.get("world_size", NA),
        "backend": d.get("backend") or NA,
        "rows": rows,
        "single": text,
    }
