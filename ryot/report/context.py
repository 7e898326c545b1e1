"""The template's context: one entry per page section, each built by its module in
ryot/report/sections/ (and evidence.py), already formatted, so the template only lays values out.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from markupsafe import Markup

from ryot.comparison.model import Comparison
from ryot.report.evidence import evidence_context
from ryot.report.sections.benchmarks import benchmarks_context
from ryot.report.sections.charts import charts_context
from ryot.report.sections.comparison_table import comparison_table
from ryot.report.sections.criteria import criteria_context
from ryot.report.sections.distributed import distributed_context
from ryot.report.sections.environment import environment_context
from ryot.report.sections.equivalence import equivalence_context, quality_title
from ryot.report.sections.history import Earlier, history_context
from ryot.report.sections.learning import learning_context
from ryot.report.sections.noise import noise_context
from ryot.report.sections.stalls import stalls_context
from ryot.report.sections.training import epoch_tables
from ryot.report.sections.verdict import banner_context
from ryot.report.stylesheet import stylesheet
from ryot.report.summary import EPOCH_HEADER

DEFAULT_LINKS = {
    "comparison.json": "comparison.json",
    "monitor.log": "monitor.log",
    "checkpoints/": "checkpoints/",
}


def build_context(
    comparison: Comparison,
    history: Sequence[Earlier] | None = None,
    links: dict[str, str] | None = None,
) -> dict[str, Any]:
    """Every value the template shows, already formatted, from the typed comparison (and the
    earlier runs of its history)."""
    c = comparison
    links = dict(DEFAULT_LINKS if links is None else links)
    banner = banner_context(c)
    return {
        "title": f"Ryot Stage 3a: {banner['status']} ({banner['config_name']})",
        "quality_title": quality_title(c),
        "css": Markup(stylesheet()),  # our own stylesheet, shipped in the package
        "banner": banner,
        "criteria": criteria_context(c),
        "learning": learning_context(c),
        "equivalence": equivalence_context(c),
        "noise": noise_context(c),
        "stalls": stalls_context(c),
        "distributed": distributed_context(c),
        "charts": charts_context(c),
        "epoch_header": EPOCH_HEADER,
        "epoch_tables": epoch_tables(c),
        "comparison": comparison_table(c),
        "evidence": evidence_context(c),
        "environment": environment_context(c, links),
        "history": history_context(c, history),
        "benchmarks": benchmarks_context(c),
    }


# history_context: html.find_history tries each earlier run through it on its own.
__all__ = ["DEFAULT_LINKS", "Earlier", "build_context", "history_context"]
