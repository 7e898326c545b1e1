"""The report's own stylesheet, shipped in the package and inlined into the page."""

from __future__ import annotations

from importlib import resources


def stylesheet() -> str:
    """templates/report.css as text."""
    return (
        resources.files("ryot.report")
        .joinpath("templates", "report.css")
        .read_text(encoding="utf-8")
    )
