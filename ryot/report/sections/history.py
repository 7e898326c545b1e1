"""The history: earlier runs of the same config and this one, as a chart and a table.

Only runs of the same workload (model and data: ryot.comparison.workload) are comparable: an
earlier run on other data (other token files, another source) or another model is left off the
chart and the table, and listed under them with what differs."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from ryot.comparison.measurements import Estimate
from ryot.comparison.model import Comparison
from ryot.report.charts import history_chart
from ryot.report.formatting import fmt_created, fmt_loss_delta, fmt_pct, fmt_text, to_percent
from ryot.report.sections.verdict import status_css


@dataclass(frozen=True)
class Earlier:
    """An earlier run in the history: its comparison, and where it was read from (its
    comparison.json's path relative to this run's folder, shown as a link; None: unknown)."""

    comparison: Comparison
    source: str | None = None


def _history_point(c: Comparison, current: bool, source: str | None) -> dict[str, Any]:
    m, seed = c.measurements, c.comparison
    at_quality_est = (m and m.matched_loss) or Estimate()
    speed = (m and m.speedup) or Estimate()
    loss = (m and m.loss_delta) or Estimate()
    status = c.verdict.status if c.verdict else None
    e2e = seed.speedup_percent if seed else None
    at_quality = seed.matched_loss_speedup_percent if seed else None
    return {
        "created": fmt_created(c.created),
        "config": fmt_text(c.config_name),
        "schema": fmt_text(c.schema_version),
        "status": str(status) if status else "no verdict",
        "css": status_css(status),
        "ttt": at_quality if at_quality is not None else to_percent(at_quality_est.point),
        "ttt_low": to_percent(at_quality_est.low),
        "ttt_high": to_percent(at_quality_est.high),
        "speedup": e2e if e2e is not None else to_percent(speed.point),
        "speedup_low": to_percent(speed.low),
        "speedup_high": to_percent(speed.high),
        "loss_delta": seed.loss_delta if seed else None,
        "loss_delta_low": loss.low,
        "loss_delta_high": loss.high,
        "aa": to_percent(c.noise and c.noise.aa),
        "current": current,
        "source": source or None,
    }


def _differences(c: Comparison, earlier: Comparison) -> list[str]:
    """Why an earlier run is not comparable with this one (empty: it is): another workload."""
    if c.workload is None or earlier.workload is None:
        return []  # a malformed file says nothing either way; its config was compared
    return c.workload.differences(earlier.workload)


def _left_out(h: Earlier, why: list[str]) -> dict[str, Any]:
    return {
        "created": fmt_created(h.comparison.created),
        "config": fmt_text(h.comparison.config_name),
        "source": h.source or None,
        "why": "; ".join(why),
    }


def history_context(c: Comparison, history: Sequence[Earlier] | None) -> dict[str, Any] | None:
    """Earlier runs and this one, oldest first; earlier runs on another workload left out
    (listed, with what differs)."""
    others, left_out = [], []
    for h in history or []:
        why = _differences(c, h.comparison)
        if why:
            left_out.append(_left_out(h, why))
        else:
            others.append(h)
    if not others and not left_out:
        return None
    if not others:
        return {"chart": None, "rows": [], "count": 0, "left_out": left_out}
    entries = [(h.comparison, _history_point(h.comparison, False, h.source)) for h in others]
    entries.append((c, _history_point(c, True, None)))
    entries.sort(key=lambda e: e[0].created or "")  # stable: ties keep order
    rows = [
        {
            **p,
            "ttt_text": fmt_pct(p["ttt"]),
            "speedup_text": fmt_pct(p["speedup"]),
            "loss_text": fmt_loss_delta(p["loss_delta"]),
            "aa_text": fmt_pct(p["aa"], signed=False),
        }
        for _, p in entries
    ]
    chart = history_chart([p for _, p in entries])
    return {"chart": chart, "rows": rows, "count": len(others), "left_out": left_out}
