"""The results comparison: the baseline against the optimized arm."""

from __future__ import annotations

from typing import Any

from ryot.comparison.model import Comparison
from ryot.report.summary import TABLE_HEADER, comparison_note, comparison_rows


def comparison_table(c: Comparison) -> dict[str, Any] | None:
    """The baseline against the optimized arm (ryot.report.summary: the console prints the same
    rows), with what its numbers are."""
    rows = comparison_rows(c)
    if rows is None:
        return None
    return {"header": TABLE_HEADER, "rows": rows, "note": comparison_note(c, rows)}
