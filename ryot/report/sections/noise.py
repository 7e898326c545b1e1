"""The A/A noise table."""

from __future__ import annotations

from typing import Any

from ryot.comparison.model import Comparison
from ryot.report.formatting import NA, fmt, fmt_frac_pct, fmt_int, fmt_seconds


def noise_context(c: Comparison) -> dict[str, Any] | None:
    """The A/A run against the first pair's baseline: per step (the median step-time ratio, the
    criterion) with the end-to-end figure beside it (one draw), or end to end (schema 2.0)."""
    noise = c.noise
    if noise is None:
        return None
    limit = c.config.criteria.max_noise_percent
    if noise.per_step:
        rows = [
            ("A/A noise per step (the criterion)", fmt_frac_pct(noise.aa, signed=False)),
            ("Steps compared", fmt_int(noise.steps)),
            (
                "End to end over the same steps (one draw, shown only)",
                fmt_frac_pct(noise.end_to_end, signed=False),
            ),
        ]
    else:
        rows = [("A/A noise (end to end)", fmt_frac_pct(noise.aa, signed=False))]
    if noise.baseline_s is not None or noise.aa_s is not None:  # schema 1.0 had no A/A run
        base, aa = fmt_seconds(noise.baseline_s), fmt_seconds(noise.aa_s)
        rows += [
            ("The first pair's baseline (same steps, setup included)", base),
            ("The A/A run", aa),
        ]
    rows.append(("Threshold", f"<= {fmt(limit, 'g')}%" if limit is not None else NA))
    return {"rows": rows, "detail": noise.detail or ""}
