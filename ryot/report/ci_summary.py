"""The verdict where CI users look: a job summary in Markdown and an error annotation for each
failed criterion (GitHub Actions' workflow commands), from comparison.json's dict alone.

ryot.experiment.session writes them at the end of a judged job, for `ryot stage3a` and
`pytest validation/` alike: the summary appended to $GITHUB_STEP_SUMMARY, the annotations
printed when GITHUB_ACTIONS is "true".
"""

from __future__ import annotations

from typing import Any

from ryot.report.fields import as_dict, as_list, get_path, is_num
from ryot.report.formatting import NA, fmt_criterion_value, fmt_level
from ryot.report.summary import headline

VERDICT_MARK = {"GO": "\u2705", "INVESTIGATE": "\u26a0\ufe0f", "DEBUG": "\u274c"}


def _cell(text: Any) -> str:
    """A table cell: one line, no column break."""
    return " ".join(str(text).split()).replace("|", "\\|")


def criteria_table(c: dict) -> list[str]:
    """Criterion | Measured | CI | Threshold | Result, one row per criterion."""
    level = fmt_level(get_path(c, "config", "measurement", "confidence"))
    lines = [
        f"| Criterion | Measured | {level}% CI | Threshold | Result |",
        "|---|---|---|---|---|",
    ]
    for row in as_list(c.get("criteria")):
        row = as_dict(row)
        unit, cid = str(row.get("unit") or ""), str(row.get("id") or "")
        ci = NA
        if is_num(row.get("ci_low")) or is_num(row.get("ci_high")):
            low = fmt_criterion_value(row.get("ci_low"), unit, cid)
            ci = f"[{low}, {fmt_criterion_value(row.get('ci_high'), unit, cid)}]"
        result = "\u2705 pass" if row.get("passed") else "\u274c **FAIL**"
        if row.get("critical") and not row.get("passed"):
            result += " (critical)"
        cells = [row.get("name", cid), fmt_criterion_value(row.get("measured"), unit, cid), ci,
                 row.get("threshold", NA), result]  # fmt: skip
        lines.append("| " + " | ".join(_cell(x) for x in cells) + " |")
    return lines


def machine_line(c: dict) -> str:
    """`AMD EPYC (2 CPUs, 2 threads), cpu; Python 3.11.7, torch 2.13.0`."""
    env = as_dict(c.get("environment"))
    where = env.get("gpu") or env.get("cpu") or NA
    return (
        f"{where} ({env.get('cpu_count', NA)} CPUs, {env.get('threads', NA)} threads), device "
        f"{env.get('device', NA)}; Python {env.get('python', NA)}, torch {env.get('torch', NA)}"
        f"; {env.get('platform', NA)}"
    )


def markdown(c: dict) -> str:
    """The job summary: verdict, headline, criteria table, machine, the job's wall time."""
    v = as_dict(c.get("verdict"))
    status = v.get("status", NA)
    lines = [
        f"## Ryot Stage 3a: {VERDICT_MARK.get(status, '')} {status} \u2014 {v.get('decision', NA)}",
        "",
        f"Config `{c.get('config_name', NA)}` ({c.get('config_path', NA)}), "
        f"{v.get('scenario', NA)} scenario.",
        "",
    ]
    top = headline(c)
    if top:
        lines += [f"**{top}**", ""]
    lines += criteria_table(c)
    reasons = [str(r) for r in as_list(v.get("reasons"))]
    if reasons:
        lines += ["", "Why:", *(f"- {_cell(r)}" for r in reasons)]
    wall = c.get("job_wall_s")
    runs = len(as_list(c.get("runs")))
    lines += ["", f"- **Machine:** {machine_line(c)}"]
    if is_num(wall):
        lines.append(f"- **Job:** {runs} runs in {wall:.0f} s by the wall clock")
    if c.get("command"):
        lines.append(f"- **Command:** `{c['command']}`")
    return "\n".join(lines) + "\n"


def _escape_data(text: str) -> str:
    return text.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")


def _escape_property(text: str) -> str:
    return _escape_data(text).replace(":", "%3A").replace(",", "%2C")


def annotations(c: dict) -> list[str]:
    """`::error title=...::message` for each failed criterion (GitHub's workflow command)."""
    lines = []
    for row in as_list(c.get("criteria")):
        row = as_dict(row)
        if row.get("passed"):
            continue
        title = f"Ryot Stage 3a criterion failed: {row.get('name', row.get('id', NA))}"
        message = str(row.get("summary") or row.get("id") or NA)
        if row.get("detail"):
            message += f". {row['detail']}"
        lines.append(f"::error title={_escape_property(title)}::{_escape_data(message)}")
    return lines
