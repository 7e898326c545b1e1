"""The quality section's title and the loss match: non-inferiority (schema 3.0) or TOST."""

from __future__ import annotations

from typing import Any

from ryot.report.charts import equivalence_chart
from ryot.report.fields import estimate, get_path, is_num, judged_at_target
from ryot.report.formatting import NA, fmt, fmt_level, fmt_loss_delta


def _yes_no(x: Any) -> str:
    return ("yes" if x else "NO") if isinstance(x, bool) else NA


def quality_title(c: dict) -> str:
    """The quality section's question: equivalence (schema 2.0) or non-inferiority (3.0)."""
    if judged_at_target(c):
        return "Quality: did the baseline learn, and is the optimized loss equivalent?"
    return "Quality: did the baseline learn, and is the optimized loss no worse?"


def equivalence_context(c: dict) -> dict[str, Any] | None:
    """The loss match: schema 3.0 judges non-inferiority (the paired delta's CI upper bound
    below +margin) and shows equivalence (TOST, CI inside +-margin) beside; 2.0 judged TOST."""
    e = estimate(c, "loss_delta")
    if not e:
        return None
    margin = e.get("margin")
    if not is_num(margin):
        margin = get_path(c, "config", "criteria", "max_loss_delta")
    equivalent = e.get("equivalent", get_path(c, "comparison", "loss_equivalent"))
    spread = e.get("baseline_spread")
    n = e.get("n", NA)
    rows = [
        ("Loss delta (optimized - baseline), mean", fmt_loss_delta(e.get("point"))),
        (
            f"{fmt_level(e.get('level'))}% CI ({n} pair{'' if n == 1 else 's'})",
            f"[{fmt_loss_delta(e.get('low'))}, {fmt_loss_delta(e.get('high'))}]",
        ),
    ]
    if judged_at_target(c):
        title = ("Loss equivalence (TOST)", "paired validation-loss delta against ±margin")
        rows += [
            ("Equivalence margin", f"±{fmt(margin, '.4f')}"),
            ("Equivalent (CI inside the margin)", _yes_no(equivalent)),
        ]
    else:
        title = (
            "Loss non-inferiority",
            "paired validation-loss delta: CI upper bound below +margin (TOST equivalence beside)",
        )
        non_inferior = e.get("non_inferior", get_path(c, "comparison", "loss_non_inferior"))
        rows += [
            ("Margin", f"+{fmt(margin, '.4f')} (TOST: ±{fmt(margin, '.4f')})"),
            ("Non-inferior (CI upper bound < +margin), the criterion", _yes_no(non_inferior)),
            ("Equivalent (TOST: CI inside ±margin), shown beside", _yes_no(equivalent)),
        ]
    rows.append(
        (
            "Baseline seed-to-seed spread (stdev)",
            fmt(spread, ".4f") if is_num(spread) else f"{NA} (needs 2 or more baseline seeds)",
        )
    )
    return {"title": title[0], "sub": title[1], "rows": rows, "chart": equivalence_chart(c)}
