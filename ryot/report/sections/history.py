"""The history: earlier runs of the same config and this one, as a chart and a table."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from ryot.report.charts import history_chart
from ryot.report.fields import estimate, get_path, is_num
from ryot.report.formatting import NA, fmt_created, fmt_loss_delta, fmt_pct, to_percent
from ryot.report.sections.verdict import status_css


def _history_point(c: dict, current: bool, source: Any) -> dict[str, Any]:
    ttt, speed, loss = (estimate(c, k) for k in ("time_to_target", "speedup", "loss_delta"))
    status = get_path(c, "verdict", "status")
    e2e = get_path(c, "comparison", "speedup_percent")
    at_quality = get_path(c, "comparison", "time_to_target_speedup_percent")
    return {
        "created": fmt_created(c.get("created")),
        "config": str(c.get("config_name", NA)),
        "schema": str(c.get("schema_version", NA)),
        "status": str(status) if status else "no verdict",
        "css": status_css(status),
        "ttt": at_quality if is_num(at_quality) else to_percent(ttt.get("point")),
        "ttt_low": to_percent(ttt.get("low")),
        "ttt_high": to_percent(ttt.get("high")),
        "speedup": e2e if is_num(e2e) else to_percent(speed.get("point")),
        "speedup_low": to_percent(speed.get("low")),
        "speedup_high": to_percent(speed.get("high")),
        "loss_delta": get_path(c, "comparison", "loss_delta"),
        "loss_delta_low": loss.get("low"),
        "loss_delta_high": loss.get("high"),
        "aa": to_percent(get_path(c, "noise", "aa")),
        "current": current,
        "source": str(source) if source else None,
    }


def history_context(c: dict, history: Sequence[dict] | None) -> dict[str, Any] | None:
    """Earlier runs and this one, oldest first. A history entry's optional "_source" key (set
    by render_run_dir) is the relative path of its comparison.json, shown as a link."""
    others = [h for h in (history or []) if isinstance(h, dict)]
    if not others:
        return None
    entries = [(h, _history_point(h, False, h.get("_source"))) for h in others]
    entries.append((c, _history_point(c, True, None)))
    entries.sort(key=lambda e: str(e[0].get("created") or ""))  # stable: ties keep order
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
    return {"chart": history_chart([p for _, p in entries]), "rows": rows, "count": len(others)}
