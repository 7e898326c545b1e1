"""report.html: one self-contained page that answers "GO or not, why, and how sure".

Every number is formatted from comparison.json alone, read once into the typed comparison
(ryot.comparison.model), into a flat context (context.py and its sections); the Jinja template
(templates/report.html.j2, autoescaped) only lays it out.
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

from ryot.comparison.model import Comparison
from ryot.console import WARN
from ryot.osutil import write_text_atomic
from ryot.report.context import DEFAULT_LINKS, Earlier, build_context, history_context
from ryot.report.stage3b import read_stage3b, stage3b_context

REPORT_NAME = "report.html"
COMPARISON_NAME = "comparison.json"


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


def typed_comparison(comparison: Comparison | dict[str, Any]) -> Comparison:
    """The typed comparison of comparison.json's content, or ReportError (one line) for what is
    not a readable comparison (ryot.comparison.upgrade.check)."""
    if isinstance(comparison, Comparison):
        return comparison
    try:
        return Comparison.from_dict(comparison)
    except ValueError as exc:
        raise ReportError(str(exc).replace("\n", " ")) from None


def render_report(
    comparison: Comparison | dict[str, Any],
    history: Sequence[Earlier | Comparison | dict[str, Any]] | None = None,
    links: dict[str, str] | None = None,
    stage3b: dict | None = None,
) -> str:
    """The report's HTML for one comparison (and earlier runs', if any): a dict is read first
    (typed_comparison)."""
    c = typed_comparison(comparison)
    earlier = [h if isinstance(h, Earlier) else Earlier(typed_comparison(h)) for h in history or ()]
    context = build_context(c, earlier, links)
    context["stage3b"] = stage3b_context(stage3b)  # Stage 3b section, when `pytest serving/` ran
    return str(_environment().get_template("report.html.j2").render(**context))


def read_comparison(path: Path) -> Comparison:
    """comparison.json, typed, or ReportError (one line, naming the file)."""
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
    try:
        return typed_comparison(data)
    except ReportError as exc:
        raise ReportError(f"{path}: {exc}") from None


def find_history(
    run_dir: Path,
    extra: Sequence[Path] = (),
    current: Comparison | None = None,
    warn: Callable[[str], None] | None = None,
) -> list[Earlier]:
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
    found: dict[Path, Earlier] = {}
    other_configs = 0
    for folder in candidates:
        path = folder / COMPARISON_NAME
        key = folder.resolve()
        if key == here or key in found or not path.is_file():
            continue
        try:
            earlier = Earlier(read_comparison(path), os.path.relpath(path, here))
            if current is not None:
                history_context(current, [earlier])  # the history's own use of it, on its own
        except ReportError as exc:
            _warn(warn, f"history: skipped {exc}")
            continue
        except Exception as exc:  # malformed fields: any error of the history's code
            _warn(warn, f"history: skipped {path}: malformed ({type(exc).__name__}: {exc})")
            continue
        if current is not None and earlier.comparison.config.setup != current.config.setup:
            other_configs += 1
            continue
        found[key] = earlier
    if other_configs:
        _warn(warn, f"history: left out {other_configs} run(s) of another config")
    return sorted(found.values(), key=lambda e: e.comparison.created or "")


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
