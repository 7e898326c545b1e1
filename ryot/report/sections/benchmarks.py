"""The pytest-benchmark statistics table."""

from __future__ import annotations

import json

from ryot.report.fields import as_dict
from ryot.report.formatting import NA, fmt_duration, fmt_int


def benchmarks_context(c: dict) -> list[dict[str, str]] | None:
    """Each pytest-benchmark result's statistics; None when the run recorded none."""
    bench = c.get("benchmarks")
    if not isinstance(bench, list):
        return None
    rows = []
    for b in bench:
        if not isinstance(b, dict):
            continue
        s = as_dict(b.get("stats"))
        extra = as_dict(b.get("extra_info"))
        rows.append(
            {
                "name": str(b.get("name", NA)),
                "group": str(b.get("group") or ""),
                "extra": ", ".join(
                    f"{k}={json.dumps(v, ensure_ascii=False)}" for k, v in extra.items()
                ),
                **{k: fmt_duration(s.get(k)) for k in ("min", "max", "mean", "median", "stddev")},
                "rounds": fmt_int(s.get("rounds")),
            }
        )
    return rows
