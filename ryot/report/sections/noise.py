"""The A/A noise table."""

from __future__ import annotations

from typing import Any

from ryot.report.fields import as_dict, get_path, is_num, measurement
from ryot.report.formatting import NA, fmt, fmt_frac_pct, fmt_int, fmt_seconds


def noise_context(c: dict) -> dict[str, Any] | None:
    """The A/A run against the first pair's baseline: per step (schema 3.0: median step-time ratio,
    the criterion) with the end-to-end figure beside it (one draw), or end to end (2.0)."""
    noise = as_dict(c.get("noise")) or measurement(c, "noise")
    if not noise:
        return None
    limit = get_path(c, "config", "criteria", "max_noise_percent")
    if is_num(noise.get("steps")) or "end_to_end" in noise:
        rows = [
            ("A/A noise per step (the criterion)", fmt_frac_pct(noise.get("aa"), signed=False)),
            ("Steps compared", fmt_int(noise.get("steps"))),
            (
                "End to end over the same steps (one draw, shown only)",
                fmt_frac_pct(noise.get("end_to_end"), signed=False),
            ),
        ]
    else:
        rows = [("A/A noise (end to end)", fmt_frac_pct(noise.get("aa"), signed=False))]
    base_s, aa_s = noise.get("baseline_s"), noise.get("aa_s")
    if is_num(base_s) or is_num(aa_s):  # schema 1.0 had no A/A run
        rows += [
            ("The first pair's baseline (same steps, setup included)", fmt_seconds(base_s)),
            ("The A/A run", fmt_seconds(aa_s)),
        ]
    rows.append(("Threshold", f"<= {fmt(limit, 'g')}%" if is_num(limit) else NA))
    return {"rows": rows, "detail": str(noise.get("detail") or "")}
