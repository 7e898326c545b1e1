"""The verdict where CI users look: a job summary in Markdown and an error annotation for each
failed criterion (GitHub Actions' workflow commands), from the typed comparison alone.

ryot.experiment.session writes them at the end of a judged job, for `ryot stage3a` and
`pytest validation/` alike: the summary appended to $GITHUB_STEP_SUMMARY, the annotations
printed when GITHUB_ACTIONS is "true".
"""

from __future__ import annotations

from typing import Any

from ryot.comparison.model import Comparison
from ryot.report.formatting import NA, fmt_criterion_value, fmt_level, fmt_text, is_num
from ryot.report.summary import headline

VERDICT_MARK = {"GO": "\u2705", "INVESTIGATE": "\u26a0\ufe0f", "DEBUG": "\u274c"}


def _cell(text: Any) -> str:
    """A table cell: one line, no column break."""
    return " ".join(str(text).split()).replace("|", "\\|")


def criteria_table(c: Comparison) -> list[str]:
    """Criterion | Measured | CI | Threshold | Result, one row per criterion."""
    level = fmt_level(c.config.measurement.confidence)
    lines = [
        f"| Criterion | Measured | {level}% CI | Threshold | Result |",
        "|---|---|---|---|---|",
    ]
    for row in c.criteria:
        unit, cid = row.unit or "", row.id or ""
        ci = NA
        if is_num(row.ci_low) or is_num(row.ci_high):
            low = fmt_criterion_value(row.ci_low, unit, cid)
            ci = f"[{low}, {fmt_criterion_value(row.ci_high, unit, cid)}]"
        result = "\u2705 pass" if row.passed else "\u274c **FAIL**"
        if row.critical and not row.passed:
            result += " (critical)"
        cells = [row.name if row.name is not None else cid,
                 fmt_criterion_value(row.measured, unit, cid), ci, fmt_text(row.threshold),
                 result]  # fmt: skip
        lines.append("| " + " | ".join(_cell(x) for x in cells) + " |")
    return lines


def machine_line(c: Comparison) -> str:
    """`AMD EPYC (2 CPUs, 2 threads), cpu; Python 3.11.7, torch 2.13.0`."""
    env = c.environment
    where = env.gpu or env.cpu or NA
    return (
        f"{where} ({fmt_text(env.cpu_count)} CPUs, {fmt_text(env.threads)} threads), device "
        f"{fmt_text(env.device)}; Python {fmt_text(env.python)}, torch {fmt_text(env.torch)}"
        f"; {fmt_text(env.platform)}"
    )


def markdown(c: Comparison) -> str:
    """The job summary: verdict, headline, criteria table, machine, the job's wall time."""
    v = c.verdict
    status = v.status if v and v.status is not None else NA
    lines = [
        f"## Ryot Stage 3a: {VERDICT_MARK.get(status, '')} {status} \u2014 "
        f"{fmt_text(v and v.decision)}",
        "",
        f"Config `{fmt_text(c.config_name)}` ({fmt_text(c.config_path)}), "
        f"{fmt_text(v and v.scenario)} scenario.",
        "",
    ]
    top = headline(c)
    if top:
        lines += [f"**{top}**", ""]
    lines += criteria_table(c)
    reasons = [fmt_text(r) for r in v.reasons] if v else []
    if reasons:
        lines += ["", "Why:", *(f"- {_cell(r)}" for r in reasons)]
    lines += ["", f"- **Machine:** {machine_line(c)}"]
    if c.job_wall_s is not None:
        lines.append(f"- **Job:** {len(c.runs)} runs in {c.job_wall_s:.0f} s by the wall clock")
    if c.command:
        lines.append(f"- **Command:** `{c.command}`")
    return "\n".join(lines) + "\n"


def _escape_data(text: str) -> str:
    return text.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")


def _escape_property(text: str) -> str:
    return _escape_data(text).replace(":", "%3A").replace(",", "%2C")


def annotations(c: Comparison) -> list[str]:
    """`::error title=...::message` for each failed criterion (GitHub's workflow command)."""
    lines = []
    for row in c.criteria:
        if row.passed:
            continue
        name = row.name if row.name is not None else row.id
        title = f"Ryot Stage 3a criterion failed: {fmt_text(name)}"
        message = row.summary or row.id or NA
        if row.detail:
            message += f". {row.detail}"
        lines.append(f"::error title={_escape_property(title)}::{_escape_data(message)}")
    return lines
