"""The charts section: the SVG charts and the matched-pairs table under the curve."""

from __future__ import annotations

from typing import Any

from ryot.report.charts import (
    ablation_chart,
    curve_chart,
    loss_chart,
    position_chart,
    speedup_chart,
    step_time_chart,
)
from ryot.report.fields import get_path, is_num, judged_at_target, ttt_pairs
from ryot.report.formatting import NA, fmt_frac_pct, fmt_loss, fmt_seconds


def charts_context(c: dict) -> dict[str, Any]:
    """The charts (SVG, or None when there is nothing to draw) and their captions."""
    ablation_off = not get_path(c, "config", "measurement", "ablation")
    return {
        "curve": curve_chart(c),
        "positions": position_chart(c),
        "loss": loss_chart(c),
        "step_times": step_time_chart(c),
        "speedup": speedup_chart(c),
        "ablation": ablation_chart(c),
        "ablation_note": "ablation not run (measurement.ablation: false)"
        if ablation_off
        else "ablation enabled, but no ablation run finished",
        "aa_detail": str(get_path(c, "noise", "detail") or ""),
        "matched": matched_pairs(c),
        "curve_caption": "Validation loss against training time: each paired run, "
        + (
            "the target, each arm's time to target"
            if judged_at_target(c)
            else "each pair's matched loss L*, each arm's time to it"
        ),
    }


def matched_pairs(c: dict) -> list[dict[str, str]] | None:
    """Schema 3.0: each pair's two final losses, its matched loss L* (the worse of them), each
    arm's time to L* and the pair's speedup at equal quality; None for a target (2.0) run."""
    if judged_at_target(c):
        return None
    rows = []
    for p in ttt_pairs(c):
        base, opt = p.get("baseline_s"), p.get("optimized_s")
        speedup = 1.0 - opt / base if is_num(base) and is_num(opt) and base > 0 else None
        rows.append(
            {
                "repeat": str(p.get("repeat", NA)),
                "seed": str(p.get("seed", NA)),
                "baseline_final": fmt_loss(p.get("baseline_final")),
                "optimized_final": fmt_loss(p.get("optimized_final")),
                "loss": fmt_loss(p.get("loss")),
                "baseline_s": fmt_seconds(base),
                "optimized_s": fmt_seconds(opt),
                "speedup": fmt_frac_pct(speedup),
            }
        )
    return rows or None
