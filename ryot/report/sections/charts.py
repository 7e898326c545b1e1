"""The charts section: the SVG charts and the matched-pairs table under the curve."""

from __future__ import annotations

from typing import Any

from ryot.comparison.model import Comparison
from ryot.report.charts import (
    ablation_chart,
    curve_chart,
    loss_chart,
    position_chart,
    speedup_chart,
    step_time_chart,
)
from ryot.report.formatting import fmt_frac_pct, fmt_loss, fmt_seconds, fmt_text


def charts_context(c: Comparison) -> dict[str, Any]:
    """The charts (SVG, or None when there is nothing to draw) and their captions."""
    return {
        "curve": curve_chart(c),
        "positions": position_chart(c),
        "loss": loss_chart(c),
        "step_times": step_time_chart(c),
        "speedup": speedup_chart(c),
        "ablation": ablation_chart(c),
        "ablation_note": "ablation enabled, but no ablation run finished"
        if c.config.measurement.ablation
        else "ablation not run (measurement.ablation: false)",
        "aa_detail": (c.noise and c.noise.detail) or "",
        "matched": matched_pairs(c),
        "positions_caption": "Validation loss per position (last paired run of each arm) "
        + (
            f"against the unigram loss ({c.floor_unknown})"
            if c.floor_unknown
            else "against the Bayes floor"
        ),
        "curve_caption": "Validation loss against training time: each paired run, "
        + (
            "the target, each arm's time to target"
            if c.at_target
            else "each pair's matched loss L*, each arm's time to it"
        ),
    }


def matched_pairs(c: Comparison) -> list[dict[str, str]] | None:
    """Each pair's two final losses, its matched loss L* (the worse of them), each arm's time to
    L* and the pair's speedup at equal quality (the judge's); None for a file judged at one
    target (schema 2.0)."""
    matched = c.measurements and c.measurements.matched_loss
    if c.at_target or not matched:
        return None
    rows = [
        {
            "repeat": fmt_text(p.repeat),
            "seed": fmt_text(p.seed),
            "baseline_final": fmt_loss(p.baseline_final),
            "optimized_final": fmt_loss(p.optimized_final),
            "loss": fmt_loss(p.loss),
            "baseline_s": fmt_seconds(p.baseline_s),
            "optimized_s": fmt_seconds(p.optimized_s),
            "speedup": fmt_frac_pct(p.speedup),
        }
        for p in matched.pairs
    ]
    return rows or None
