"""report.html: one self-contained page that answers "GO or not, why, and how sure".

Every number is computed and formatted from comparison.json alone into a flat context
(context.py); the Jinja template (templates/report.html.j2, autoescaped) only lays it out.
Charts are SVG built from escaped elements (svg.py, charts.py), so no text from the JSON
reaches the page unescaped. The page makes no network request: CSS and SVG are inline, links
are relative to the run folder. This module reads and checks the JSON and writes the page.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from jinja2 import Environment, PackageLoader, StrictUndefined, select_autoescape

from ryot.console import WARN
from ryot.osutil import write_text_atomic
from ryot.report.context import DEFAULT_LINKS, build_context, history_context
from ryot.report.schema import SCHEMA_VERSION
from ryot.report.stage3b import read_stage3b, stage3b_context

REPORT_NAME = "report.html"
COMPARISON_NAME = "comparison.json"
READABLE_SCHEMAS = ("1.0", "2.0", SCHEMA_VERSION)


class ReportError(ValueError):
    """comparison.json is missing or not a comparison: one line naming the file."""


_ENV: Environment | None = None


def _environment() -> Environment:
    global _ENV
    if _ENV is None:
        _ENV = Environment(
            loader=PackageLoader("ryot.report", "templates"),
            autoescape=select_autoescape(
                enabled_extensions=("html", "j2"), default_for_string=True, default=True
            ),
            undefined=StrictUndefined,
            trim_blocks=True,
            lstrip_blocks=True,
            keep_trailing_newline=True,
        )
    return _ENV


def render_report(
    comparison: dict,
    history: list[dict] | None = None,
    links: dict[str, str] | None = None,
    stage3b: dict | None = None,
) -> str:
    """The report's HTML for one comparison.json (and earlier runs' comparisons, if any)."""
    if not isinstance(comparison, dict):
        raise ReportError("comparison must be a JSON object")
    context = build_context(comparison, history, links)
    context["stage3b"] = stage3b_context(stage3b)  # Stage 3b section, when `pytest serving/` ran
    return str(_environment().get_template("report.html.j2").render(**context))


# Keys schema 2.0 added: an older comparison.json (schema 1.0) lacks them and still renders,
# with n/a where they would be (the report of an old run, or an old run in the history).
ADDED_IN_2_0 = frozenset(
    {"bayes_floor", "unigram_loss", "bench", "measurements", "confidence_intervals", "noise"}
)


def _required_keys() -> list[str]:
    from ryot.report.schema import load_schema

    return [k for k in load_schema().get("required", []) if k not in ADDED_IN_2_0]


def read_comparison(path: Path) -> dict[str, Any]:
    """comparison.json as a dict, or ReportError (one line, naming the file)."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ReportError(f"{path}: not found") from None
    except (OSError, UnicodeDecodeError) as exc:
        reason = getattr(exc, "strerror", None) or str(exc)
        raise ReportError(f"{path}: cannot read ({reason})".replace("\n", " ")) from None
    except json.JSONDecodeError as exc:
        raise ReportError(
            f"{path}: not valid JSON ({exc.msg} at line {exc.lineno})".replace("\n", " ")
        ) from None
    if not isinstance(data, dict):
        raise ReportError(f"{path}: not a comparison (expected a JSON object)")
    version = data.get("schema_version")
    if version not in READABLE_SCHEMAS:
        raise ReportError(
            f"{path}: schema_version {version!r} is not one this ryot reads "
            f"({', '.join(READABLE_SCHEMAS)}); a newer ryot wrote it?"
        )
    missing = [k for k in _required_keys() if k not in data]
    if missing:
        raise ReportError(f"{path}: not a comparison (missing {', '.join(missing)})")
    return data


def find_history(
    run_dir: Path,
    extra: Sequence[Path] = (),
    current: dict[str, Any] | None = None,
    warn: Callable[[str], None] | None = None,
) -> list[dict[str, Any]]:
    """Earlier runs of the same config as `current`: sibling folders of run_dir (hidden ones,
    such as a set-aside failed run, excepted) and `extra`, oldest first.

    A neighbour that cannot be read, or whose data the history cannot use, is skipped with a
    warning: it is not this run's problem. Runs that measured something else (another model,
    data, training, optimizations or measurement section; criteria may differ) are left out, and
    counted in a warning: their speedups answer another question.
    """
    here = run_dir.resolve()
    candidates: list[Path] = []
    try:
        candidates = sorted(
            p for p in here.parent.iterdir() if p.is_dir() and not p.name.startswith(".")
        )
    except OSError:
        pass
    candidates += [Path(p) for p in extra]
    found: dict[Path, dict[str, Any]] = {}
    other_configs = 0
    for folder in candidates:
        path = folder / COMPARISON_NAME
        key = folder.resolve()
        if key == here or key in found or not path.is_file():
            continue
        try:
            data = read_comparison(path)
            if current is not None:
                history_context(current, [data])  # the history's own use of it, on its own
        except ReportError as exc:
            _warn(warn, f"history: skipped {exc}")
            continue
        except Exception as exc:  # malformed fields: any error of the history's code
            _warn(warn, f"history: skipped {path}: malformed ({type(exc).__name__}: {exc})")
            continue
        if current is not None and measured_setup(data) != measured_setup(current):
            other_configs += 1
            continue
        data = dict(data)
        data["_source"] = os.path.relpath(path, here)
        found[key] = data
    if other_configs:
        _warn(warn, f"history: left out {other_configs} run(s) of another config")
    return sorted(found.values(), key=lambda d: str(d.get("created") or ""))


# The config sections that decide what a run measures; criteria only judge it, serving is Stage 3b.
MEASURED_SECTIONS = ("model", "data", "training", "optimizations", "measurement")


def measured_setup(comparison: dict[str, Any]) -> Any:
    config = comparison.get("config")
    if not isinstance(config, dict):
        return None
    return {k: config.get(k) for k in MEASURED_SECTIONS}


def _warn(warn: Callable[[str], None] | None, text: str) -> None:
    if warn is not None:
        warn(text.replace("\n", " "))


def _run_links(run_dir: Path) -> dict[str, str]:
    links = dict(DEFAULT_LINKS)
    checkpoints = run_dir / "checkpoints"
    if checkpoints.is_dir():
        for ckpt in sorted(checkpoints.glob("*.pt")):
            links[f"checkpoints/{ckpt.name}"] = f"checkpoints/{ckpt.name}"
    if (run_dir / "runs").is_dir():
        links["runs/"] = "runs/"
    return links


def render_run_dir(
    run_dir: Path,
    history_dirs: list[Path] | None = None,
    warn: Callable[[str], None] | None = None,
) -> Path:
    """Render run_dir/report.html from run_dir/comparison.json; returns the report's path."""
    run_dir = Path(run_dir)
    comparison = read_comparison(run_dir / COMPARISON_NAME)
    history = find_history(run_dir, history_dirs or [], comparison, warn)
    html = render_report(comparison, history, _run_links(run_dir), read_stage3b(run_dir))
    out = run_dir / REPORT_NAME
    write_text_atomic(html, out)
    return out


def render_run_dir_or_warn(
    run_dir: Path, line: Callable[[str], None], history_dirs: list[Path] | None = None
) -> Path | None:
    """render_run_dir after a run: a report that cannot be written is a warning through
    `line` (the run's console), never a crash of the run it reports on."""
    try:
        return render_run_dir(run_dir, history_dirs, warn=lambda text: line(f"{WARN} {text}"))
    except (ReportError, OSError) as exc:
        line(f"{WARN} no report: {exc}")
        return None


__all__ = [
    "ReportError",
    "build_context",
    "read_comparison",
    "render_report",
    "render_run_dir",
    "render_run_dir_or_warn",
]
