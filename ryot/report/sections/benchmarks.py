"""The pytest-benchmark statistics table."""

from __future__ import annotations

import json

from ryot.comparison.model import Comparison
from ryot.report.formatting import fmt_duration, fmt_int, fmt_text


def benchmarks_context(c: Comparison) -> list[dict[str, str]] | None:
    """Each pytest-benchmark result's statistics; None when the run recorded none."""
    if c.benchmarks is None:
        return None
    rows = []
    for b in c.benchmarks:
        s = b.stats
        rows.append(
            {
                "name": fmt_text(b.name),
                "group": b.group or "",
                "extra": ", ".join(
                    f"{k}={json.dumps(v, ensure_ascii=False)}" for k, v in b.extra_info.items()
                ),
                "min": fmt_duration(s.min),
                "max": fmt_duration(s.max),
                "mean": fmt_duration(s.mean),
                "median": fmt_duration(s.median),
                "stddev": fmt_duration(s.stddev),
                "rounds": fmt_int(s.rounds),
            }
        )
    return rows
