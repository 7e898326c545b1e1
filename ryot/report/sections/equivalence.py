"""The quality section's title and the loss match: non-inferiority, or (a file judged at one
target, schema 2.0 and older) equivalence, TOST."""

from __future__ import annotations

from typing import Any

from ryot.comparison.model import Comparison
from ryot.report.charts import equivalence_chart
from ryot.report.formatting import NA, fmt, fmt_level, fmt_loss_delta


def _yes_no(x: bool | None) -> str:
    return NA if x is None else "yes" if x else "NO"


def quality_title(c: Comparison) -> str:
    """The quality section's question: equivalence (schema 2.0) or non-inferiority (3.0)."""
    if c.at_target:
        return "Quality: did the baseline learn, and is the optimized loss equivalent?"
    return "Quality: did the baseline learn, and is the optimized loss no worse?"


def equivalence_context(c: Comparison) -> dict[str, Any] | None:
    """The loss match: non-inferiority (the paired delta's CI upper bound below +margin) with
    equivalence (TOST, CI inside +-margin) shown beside; judged at one target: TOST alone."""
    e = c.measurements and c.measurements.loss_delta
    if not e:
        return None
    margin = e.margin  # the criteria's max_loss_delta where the file has none (ryot.comparison)
    n = NA if e.n is None else e.n
    rows = [
        ("Loss delta (optimized - baseline), mean", fmt_loss_delta(e.point)),
        (
            f"{fmt_level(e.level)}% CI ({n} pair{'' if n == 1 else 's'})",
            f"[{fmt_loss_delta(e.low)}, {fmt_loss_delta(e.high)}]",
        ),
    ]
    if c.at_target:
        title = ("Loss equivalence (TOST)", "paired validation-loss delta against ±margin")
        rows += [
            ("Equivalence margin", f"±{fmt(margin, '.4f')}"),
            ("Equivalent (CI inside the margin)", _yes_no(e.equivalent)),
        ]
    else:
        title = (
            "Loss non-inferiority",
            "paired validation-loss delta: CI upper bound below +margin (TOST equivalence beside)",
        )
        rows += [
            ("Margin", f"+{fmt(margin, '.4f')} (TOST: ±{fmt(margin, '.4f')})"),
            ("Non-inferior (CI upper bound < +margin), the criterion", _yes_no(e.non_inferior)),
            ("Equivalent (TOST: CI inside ±margin), shown beside", _yes_no(e.equivalent)),
        ]
    spread = e.baseline_spread
    rows.append(
        (
            "Baseline seed-to-seed spread (stdev)",
            fmt(spread, ".4f") if spread is not None else f"{NA} (needs 2 or more baseline seeds)",
        )
    )
    return {"title": title[0], "sub": title[1], "rows": rows, "chart": equivalence_chart(c)}
