"""report.html: one self-contained page that answers "GO or not, why, and how sure".

Every number is computed and formatted here, from comparison.json alone, into a flat context;
the Jinja template (templates/report.html.j2, autoescaped) only lays it out. Charts are SVG
built here from escaped elements (`_tag`), so no text from the JSON reaches the page unescaped.
The page makes no network request: CSS and SVG are inline, links are relative to the run folder.
"""

from __future__ import annotations

import json
import math
import os
import statistics
import tempfile
from collections.abc import Callable, Iterable, Sequence
from datetime import datetime
from importlib import resources
from pathlib import Path
from typing import Any

import yaml
from jinja2 import Environment, PackageLoader, StrictUndefined, select_autoescape
from markupsafe import Markup, escape

REPORT_NAME = "report.html"
COMPARISON_NAME = "comparison.json"
CRITERION_TEST = "validation/test_stage3a.py::test_criterion[{id}]"
NOT_UNDER_PYTEST = "not run under pytest"
NA = "n/a"
MAX_POINTS = 800  # per series / per strip: larger series are thinned by a fixed stride

STATUS_CLASS = {"GO": "go", "INVESTIGATE": "investigate", "DEBUG": "debug"}
STATUS_COLORS = {"GO": "#2b8a3e", "INVESTIGATE": "#e67700", "DEBUG": "#c92a2a"}
ARM_ORDER = ("baseline", "optimized", "kernel", "compression", "scaling")
ARM_COLORS = {
    "baseline": "#6c757d",
    "optimized": "#1c6fd1",
    "kernel": "#7048e8",
    "compression": "#0c8f6e",
    "scaling": "#d9480f",
}
OTHER_COLORS = ("#a61e4d", "#5c940d", "#1098ad", "#e67700")
GRID = "#e3e6ea"
INK = "#212529"
MUTED = "#6c757d"
RED = "#c92a2a"
AMBER = "#fab005"
GREEN = "#2b8a3e"


class ReportError(ValueError):
    """comparison.json is missing or not a comparison: one line naming the file."""


# --------------------------------------------------------------------------------------------
# Number formatting: one rule per kind of quantity, "n/a" for null.
# --------------------------------------------------------------------------------------------


def _is_num(x: Any) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x)


def fmt(x: Any, spec: str = ".2f", suffix: str = "") -> str:
    """`x` formatted with `spec`, or n/a for null/non-numbers. Never prints "-0.0"."""
    if not _is_num(x):
        return NA
    text = format(x, spec)
    if text[:1] == "-" and text[1:].strip("0.,") == "":  # a negative value that rounds to 0
        text = ("+" if "+" in spec else "") + text[1:]
    return text + suffix


def fmt_seconds(x: Any) -> str:
    return fmt(x, ".2f", " s")


def fmt_loss(x: Any) -> str:
    return fmt(x, ".4f")


def fmt_loss_delta(x: Any) -> str:
    return fmt(x, "+.4f")


def fmt_pct(x: Any, signed: bool = True) -> str:
    """A percentage (already x100) with 1 decimal."""
    return fmt(x, "+.1f" if signed else ".1f", "%")


def fmt_frac_pct(x: Any, signed: bool = True) -> str:
    """A fraction shown as a percentage."""
    return fmt_pct(x * 100.0 if _is_num(x) else None, signed)


def fmt_int(x: Any) -> str:
    return fmt(x, ",.0f")


def fmt_ms(x_seconds: Any) -> str:
    return fmt(x_seconds * 1000.0 if _is_num(x_seconds) else None, ".2f", " ms")


def fmt_duration(x: Any) -> str:
    """Seconds in the unit that keeps 2 decimals meaningful (benchmark timings)."""
    if not _is_num(x):
        return NA
    for scale, unit in ((1.0, "s"), (1e-3, "ms"), (1e-6, "µs")):
        if abs(x) >= scale:
            return f"{x / scale:.2f} {unit}"
    return f"{x / 1e-9:.2f} ns"


SIGNED_CRITERIA = {"speedup", "throughput", "loss_match"}


def fmt_criterion_value(value: Any, unit: str, criterion_id: str = "") -> str:
    """A criterion's measured value (or CI bound) in its own unit."""
    if not _is_num(value):
        return NA
    signed = criterion_id in SIGNED_CRITERIA
    if unit == "%":
        return fmt_pct(value, signed)
    if unit == "":
        return fmt(value, "+.4f" if signed else ".4f")
    if unit.strip() == "MiB":
        return fmt(value, ".1f", unit)
    if float(value).is_integer():
        return fmt(value, ".0f", unit)
    return fmt(value, ".4g", unit)


def fmt_created(text: Any) -> str:
    if not isinstance(text, str) or not text:
        return NA
    try:
        when = datetime.fromisoformat(text)
    except ValueError:
        return text
    zone = when.strftime("%z")
    zone = "UTC" if zone in ("+0000", "") else f"UTC{zone[:3]}:{zone[3:]}"
    return f"{when:%Y-%m-%d %H:%M:%S} {zone}"


def _median(values: Sequence[float]) -> float | None:
    vals = [v for v in values if _is_num(v)]
    return statistics.median(vals) if vals else None


def _get(d: Any, *keys: str) -> Any:
    for key in keys:
        if not isinstance(d, dict):
            return None
        d = d.get(key)
    return d


def _list(x: Any) -> list:
    return x if isinstance(x, list) else []


def _dict(x: Any) -> dict:
    return x if isinstance(x, dict) else {}


def _arm_key(arm: str) -> tuple[int, str]:
    return (ARM_ORDER.index(arm) if arm in ARM_ORDER else len(ARM_ORDER), arm)


def _arm_color(arm: str, arms: Sequence[str] = ()) -> str:
    if arm in ARM_COLORS:
        return ARM_COLORS[arm]
    others = [a for a in arms if a not in ARM_COLORS]
    i = others.index(arm) if arm in others else 0
    return OTHER_COLORS[i % len(OTHER_COLORS)]


def _thin(values: Sequence[Any], limit: int = MAX_POINTS) -> tuple[list[tuple[int, Any]], int]:
    """(index, value) pairs, every k-th when there are more than `limit`; and k."""
    stride = max(1, math.ceil(len(values) / limit))
    return [(i, v) for i, v in enumerate(values) if i % stride == 0], stride


# --------------------------------------------------------------------------------------------
# SVG: every element goes through _tag, which escapes text and attribute values.
# --------------------------------------------------------------------------------------------


def _c(v: float) -> str:
    return f"{v:.1f}"


def _tag(name: str, text: Any = None, /, **attrs: Any) -> str:
    parts = []
    for key, value in attrs.items():
        if value is None:
            continue
        if isinstance(value, float):
            value = _c(value)
        parts.append(f' {key.rstrip("_").replace("_", "-")}="{escape(str(value))}"')
    attr_text = "".join(parts)
    if text is None:
        return f"<{name}{attr_text}/>"
    return f"<{name}{attr_text}>{escape(str(text))}</{name}>"


def _svg(width: int, height: int, title: str, children: Iterable[str], css: str = "") -> Markup:
    body = _tag("title", title) + "".join(children)
    head = _tag(
        "svg",
        "",
        viewBox=f"0 0 {width} {height}",
        width=str(width),
        height=str(height),
        role="img",
        class_=f"chart {css}".strip(),
        font_family="system-ui, -apple-system, 'Segoe UI', Roboto, Arial, sans-serif",
        font_size="12",
    )[: -len("</svg>")]
    # Everything inside was escaped by _tag: the string is safe to emit as markup.
    return Markup(head + body + "</svg>")


def nice_ticks(lo: float, hi: float, count: int = 5, integer: bool = False) -> list[float]:
    """Round tick values covering [lo, hi]; a degenerate range is widened around its value.

    integer=True keeps steps whole (1, 2, 5, 10, ...) for counts such as optimizer steps.
    """
    if not (math.isfinite(lo) and math.isfinite(hi)):
        lo, hi = 0.0, 1.0
    if hi < lo:
        lo, hi = hi, lo
    if hi - lo < 1e-12:
        pad = 1.0 if integer else (abs(lo) * 0.1 or 1.0)
        lo, hi = lo - pad, hi + pad
    raw = (hi - lo) / count
    mag = (
        max(1.0, 10 ** math.floor(math.log10(raw)))
        if integer
        else 10 ** math.floor(math.log10(raw))
    )
    step = mag
    for m in (1, 2, 5, 10) if integer else (1, 2, 2.5, 5, 10):
        step = m * mag
        if (hi - lo) / step <= count:
            break
    start = math.floor(lo / step + 1e-9) * step
    end = math.ceil(hi / step - 1e-9) * step
    n = round((end - start) / step)
    return [round(start + i * step, 12) for i in range(n + 1)]


def tick_format(ticks: Sequence[float]) -> Callable[[float], str]:
    step = abs(ticks[1] - ticks[0]) if len(ticks) > 1 else 1.0
    decimals = 0
    while decimals < 6 and abs(round(step, decimals) - step) > step * 1e-6:
        decimals += 1
    return lambda v: fmt(v, f",.{decimals}f")


class Frame:
    """A plot area inside an SVG canvas: data coordinates to pixels (y optionally log10)."""

    def __init__(self, x: float, y: float, w: float, h: float, xr, yr, ylog: bool = False):
        self.px, self.py, self.pw, self.ph = x, y, w, h
        self.x0, self.x1 = xr
        self.ylog = ylog
        self.y0, self.y1 = (math.log10(v) for v in yr) if ylog else yr

    def x(self, v: float) -> float:
        return self.px + (v - self.x0) / ((self.x1 - self.x0) or 1.0) * self.pw

    def y(self, v: float) -> float:
        v = math.log10(v) if self.ylog else v
        return self.py + (1.0 - (v - self.y0) / ((self.y1 - self.y0) or 1.0)) * self.ph


def log_ticks(lo: float, hi: float) -> list[float]:
    """Powers of ten covering [lo, hi] (both > 0)."""
    first, last = math.floor(math.log10(lo)), math.ceil(math.log10(hi))
    return [10.0**e for e in range(first, max(last, first + 1) + 1)]


def _line(x1: float, y1: float, x2: float, y2: float, color: str, **attrs: Any) -> str:
    return _tag("line", x1=x1, y1=y1, x2=x2, y2=y2, stroke=color, **attrs)


def _text(x: float, y: float, text: str, color: str = INK, anchor: str | None = None, **a) -> str:
    return _tag("text", text, x=x, y=y, fill=color, text_anchor=anchor, **a)


def _circle(x: float, y: float, r: float, fill: str, **attrs: Any) -> str:
    return _tag("circle", cx=x, cy=y, r=r, fill=fill, **attrs)


def _rect(x: float, y: float, w: float, h: float, fill: str, **attrs: Any) -> str:
    return _tag("rect", x=x, y=y, width=w, height=h, fill=fill, **attrs)


def _polyline(points: Sequence[tuple[float, float]], color: str, **attrs: Any) -> str:
    coords = " ".join(f"{_c(x)},{_c(y)}" for x, y in points)
    return _tag("polyline", points=coords, fill="none", stroke=color, **attrs)


def _y_axis(f: Frame, ticks: Sequence[float], label: str) -> list[str]:
    show = (lambda v: f"{v:,g}") if f.ylog else tick_format(ticks)
    out = []
    for t in ticks:
        out.append(_line(f.px, f.y(t), f.px + f.pw, f.y(t), GRID))
        out.append(_text(f.px - 6, f.y(t) + 4, show(t), MUTED, "end"))
    out.append(_line(f.px, f.py, f.px, f.py + f.ph, MUTED))
    widest = max((len(show(t)) for t in ticks), default=1)
    cx, cy = f.px - max(40.0, 16 + 6.6 * widest), f.py + f.ph / 2
    out.append(_text(cx, cy, label, INK, "middle", transform=f"rotate(-90 {_c(cx)} {_c(cy)})"))
    return out


def _x_axis(
    f: Frame,
    ticks: Sequence[float],
    label: str,
    show: Callable[[float], str] | None = None,
    grid: bool = False,
) -> list[str]:
    show = show or tick_format(ticks)
    base = f.py + f.ph
    out = []
    for t in ticks:
        if grid:
            out.append(_line(f.x(t), f.py, f.x(t), base, GRID))
        out.append(_line(f.x(t), base, f.x(t), base + 4, MUTED))
        out.append(_text(f.x(t), base + 17, show(t), MUTED, "middle"))
    out.append(_line(f.px, base, f.px + f.pw, base, MUTED))
    out.append(_text(f.px + f.pw / 2, base + 36, label, INK, "middle"))
    return out


def _legend(x: float, y: float, items: Sequence[tuple[str, str, str]]) -> list[str]:
    """(label, color, style), left to right; style: line, dash, faint, dot (hollow) or box."""
    out = []
    for label, color, style in items:
        if style == "box":
            out.append(_rect(x, y - 10, 18.0, 11.0, color, fill_opacity="0.35"))
        elif style == "dot":
            out.append(_circle(x + 9, y - 4, 3.5, "white", stroke=color))
        else:
            faint = style == "faint"
            out.append(
                _line(
                    x,
                    y - 4,
                    x + 18,
                    y - 4,
                    color,
                    stroke_width="1.5" if faint else "2.5",
                    stroke_opacity="0.35" if faint else None,
                    stroke_dasharray="5 4" if style == "dash" else None,
                )
            )
        out.append(_text(x + 24, y, label))
        x += 36 + 6.4 * len(label)
    return out


def _segments(values: Sequence[Any]) -> list[list[tuple[int, float]]]:
    """Runs of consecutive numeric values (null or NaN breaks a line), thinned if long."""
    pieces: list[list[tuple[int, float]]] = [[]]
    thinned, _ = _thin(values)
    for i, v in thinned:
        if _is_num(v):
            pieces[-1].append((i, float(v)))
        elif pieces[-1]:
            pieces.append([])
    return [p for p in pieces if p]


# --------------------------------------------------------------------------------------------
# Charts
# --------------------------------------------------------------------------------------------


def _result_runs(comparison: dict) -> list[dict]:
    """Runs that produced a result (any role)."""
    runs = _list(comparison.get("runs"))
    return [r for r in runs if isinstance(r, dict) and isinstance(r.get("result"), dict)]


def _last_run(comparison: dict, arm: str) -> dict | None:
    found = [r for r in _result_runs(comparison) if r.get("arm") == arm]
    return found[-1] if found else None


def _arms(comparison: dict) -> list[str]:
    arms = {r.get("arm") for r in _list(comparison.get("runs")) if isinstance(r, dict)}
    return sorted((a for a in arms if isinstance(a, str)), key=_arm_key)


def loss_chart(comparison: dict) -> Markup | None:
    """(a) Training loss per optimizer step, baseline and optimized, with the entropy floor."""
    series = []  # (arm, segments, is the arm's last run)
    for arm in ("baseline", "optimized"):
        runs = [r for r in _result_runs(comparison) if r.get("arm") == arm]
        for k, run in enumerate(runs):
            segs = _segments(_list(run["result"].get("step_losses")))
            series.append((arm, segs, k == len(runs) - 1))
    points = [p for _, segs, _ in series for seg in segs for p in seg]
    if not points:
        return None
    floor = comparison.get("entropy_floor")
    values = [v for _, v in points] + ([floor] if _is_num(floor) else [])
    yt = nice_ticks(min(values), max(values))
    xt = nice_ticks(1, max(i for i, _ in points) + 1, 6, integer=True)
    width, height = 600, 330
    f = Frame(70, 44, width - 90, height - 100, (xt[0], xt[-1]), (yt[0], yt[-1]))
    out = _y_axis(f, yt, "training loss (nats)") + _x_axis(f, xt, "optimizer step")
    if _is_num(floor):
        y = f.y(floor)
        out.append(
            _line(f.px, y, f.px + f.pw, y, GREEN, stroke_width="1.5", stroke_dasharray="6 4")
        )
        label = f"entropy floor (loss floor) {fmt_loss(floor)}"
        out.append(_text(f.px + f.pw - 4, y - 6, label, GREEN, "end"))
    few = len(points) <= 120
    for bold in (False, True):  # faint earlier runs first, the last runs on top
        for arm, segs, last in series:
            if last != bold:
                continue
            color, opacity = ARM_COLORS[arm], None if last else "0.3"
            for seg in segs:
                pts = [(f.x(i + 1), f.y(v)) for i, v in seg]
                if len(pts) > 1:
                    width_ = "2.2" if last else "1.2"
                    out.append(_polyline(pts, color, stroke_width=width_, stroke_opacity=opacity))
                if len(pts) == 1 or (last and few):
                    out += [_circle(x, y, 2.5, color, fill_opacity=opacity) for x, y in pts]
    legend = []
    for arm in ("baseline", "optimized"):
        last = _last_run(comparison, arm)
        if last is not None:
            legend.append((f"{arm} (run {last.get('index')})", ARM_COLORS[arm], "line"))
    if any(not last for *_, last in series):
        legend.append(("earlier runs", MUTED, "faint"))
    out += _legend(f.px, 20, legend)
    return _svg(width, height, "Training loss per step", out)


def _quartiles(values: Sequence[float]) -> tuple[float, float, float]:
    if len(values) < 2:
        return values[0], values[0], values[0]
    q1, q2, q3 = statistics.quantiles(values, n=4, method="inclusive")
    return q1, q2, q3


def step_time_chart(comparison: dict) -> Markup | None:
    """(b) Step-time distribution per arm (all runs): box (quartiles, min-max) and points."""
    data = []
    for arm in _arms(comparison):
        runs = [r for r in _result_runs(comparison) if r.get("arm") == arm]
        ms = [1000.0 * t for r in runs for t in _list(r["result"].get("step_times")) if _is_num(t)]
        if ms:
            data.append((arm, ms))
    if not data:
        return None
    arms = [a for a, _ in data]
    lo, hi = min(min(ms) for _, ms in data), max(max(ms) for _, ms in data)
    log = lo > 0 and hi / lo > 50  # compile or warmup outliers: a log axis keeps boxes visible
    yt = log_ticks(lo, hi) if log else nice_ticks(0.0, hi)
    width, height = 600, 330
    f = Frame(70, 44, width - 90, height - 110, (0, len(data)), (yt[0], yt[-1]), ylog=log)
    base = f.py + f.ph
    label = "step time (ms, log scale)" if log else "step time (ms)"
    out = _y_axis(f, yt, label) + [_line(f.px, base, f.px + f.pw, base, MUTED)]
    slot = f.pw / len(data)
    for k, (arm, ms) in enumerate(data):
        color = _arm_color(arm, arms)
        cx = f.px + slot * (k + 0.5)
        q1, q2, q3 = _quartiles(sorted(ms))
        box = min(70.0, slot * 0.45)
        out.append(_line(cx, f.y(max(ms)), cx, f.y(min(ms)), color))
        out += [
            _line(cx - box / 4, f.y(v), cx + box / 4, f.y(v), color) for v in (min(ms), max(ms))
        ]
        out.append(
            _rect(
                cx - box / 2,
                f.y(q3),
                box,
                max(1.0, f.y(q1) - f.y(q3)),
                color,
                fill_opacity="0.15",
                stroke=color,
            )
        )
        out.append(_line(cx - box / 2, f.y(q2), cx + box / 2, f.y(q2), color, stroke_width="2.5"))
        thinned, _ = _thin(ms)
        for i, v in thinned:  # a deterministic jitter: the same JSON draws the same picture
            jitter = ((i * 0.618034) % 1.0 - 0.5) * box * 0.45
            out.append(_circle(cx + box * 0.85 + jitter, f.y(v), 1.8, color, fill_opacity="0.45"))
        out.append(_text(cx, base + 17, arm, INK, "middle", font_weight="600"))
        out.append(_text(cx, base + 32, f"median {fmt(q2, '.2f')} ms", MUTED, "middle"))
        out.append(
            _text(cx, base + 46, f"n={len(ms)} step{'s' if len(ms) != 1 else ''}", MUTED, "middle")
        )
    key = "box: quartiles · bar: median · whiskers: min to max · dots: steps"
    out.append(_text(f.px, 20, key, MUTED))
    return _svg(width, height, "Step-time distribution per arm", out)


def _pct(v: Any) -> float | None:
    return v * 100.0 if _is_num(v) else None


def speedup_chart(comparison: dict) -> Markup | None:
    """(c) The speedup median and CI against the threshold and the A/A noise band (percent)."""
    est = _dict(_get(comparison, "confidence_intervals", "speedup"))
    med, low, high = _pct(est.get("median")), _pct(est.get("low")), _pct(est.get("high"))
    if med is None:
        return None
    has_ci = low is not None and high is not None
    pairs = [_pct(v) for v in _list(est.get("values")) if _is_num(v)]
    aa = _pct(_get(comparison, "noise", "aa"))
    threshold = _get(comparison, "config", "criteria", "min_speedup_percent")
    core = [0.0, med, *pairs, *((low, high) if has_ci else ()), *((-aa, aa) if aa else ())]
    lo, hi = min(core), max(core)
    span = max(hi - lo, 1.0)
    # A threshold far outside the data would squash it: then it is named at the edge instead.
    on_scale = _is_num(threshold) and lo - span <= threshold <= hi + span
    if on_scale:
        lo, hi = min(lo, threshold), max(hi, threshold)
    pad = 0.04 * max(hi - lo, 1.0)  # keep marks off the frame's edges
    xt = nice_ticks(lo - pad, hi + pad, 8)
    width, height = 1160, 215
    f = Frame(30, 62, width - 60, 96, (xt[0], xt[-1]), (0.0, 1.0))
    color = ARM_COLORS["optimized"]
    out = []
    if aa is not None:
        band = max(1.0, f.x(aa) - f.x(-aa))
        out.append(_rect(f.x(-aa), f.py, band, f.ph, AMBER, fill_opacity="0.2"))
        out.append(_text(f.x(aa) + 4, f.py + 14, f"A/A noise ±{fmt(aa, '.1f')}%", "#8a6d00"))
    out += _x_axis(f, xt, "speedup = 1 - T_opt / T_base (%)", grid=True)
    out.append(_line(f.x(0), f.py, f.x(0), f.py + f.ph, MUTED))
    if _is_num(threshold):
        label = f"threshold: CI lower bound >= {fmt(threshold, '.1f')}%"
        if on_scale:
            x = f.x(threshold)
            out.append(
                _line(x, f.py - 4, x, f.py + f.ph, RED, stroke_width="2", stroke_dasharray="6 4")
            )
            right = x > f.px + f.pw * 0.6
            out.append(
                _text(x - 4 if right else x + 4, f.py - 8, label, RED, "end" if right else "start")
            )
        elif threshold < lo:
            out.append(_text(f.px, f.py - 8, f"◀ {label} (off scale)", RED, "start"))
        else:
            out.append(_text(f.px + f.pw, f.py - 8, f"{label} (off scale) ▶", RED, "end"))
    y = f.py + f.ph * 0.5
    if has_ci:
        out.append(_line(f.x(low), y, f.x(high), y, color, stroke_width="6", stroke_opacity="0.5"))
        for v in (low, high):
            out.append(_line(f.x(v), y - 10, f.x(v), y + 10, color, stroke_width="2"))
            out.append(_text(f.x(v), y - 15, fmt_pct(v), color, "middle"))
    out += [_circle(f.x(v), y + 20, 3.5, "white", stroke=color) for v in pairs]
    out.append(_circle(f.x(med), y, 6.0, color, stroke="white"))
    level = fmt(_pct(est.get("level")), ".0f")
    ci_text = f"{level}% CI [{fmt_pct(low)}, {fmt_pct(high)}]" if has_ci else "CI n/a"
    n = est.get("n", NA)
    title = f"median {fmt_pct(med)} · {ci_text} · n={n} pair{'' if n == 1 else 's'}"
    out.append(_text(f.px, 22, title, INK, font_weight="600"))
    legend = [("median, CI", color, "line"), ("each pair", color, "dot")]
    if _is_num(threshold):
        legend.append(("threshold", RED, "dash"))
    if aa is not None:
        legend.append(("A/A noise band", AMBER, "box"))
    out += _legend(width - 470, 22, legend)
    return _svg(width, height, "Speedup with confidence interval", out, css="wide")


def _hbar_panel(
    x0: float,
    width: float,
    rows: Sequence[tuple[str, Any, str]],
    title: str,
    show: Callable[[Any], str],
    top: float = 40,
    row_h: float = 30,
) -> list[str]:
    """Horizontal bars from zero (negative to the left), one row per (label, value, color)."""
    vals = [v for _, v, _ in rows if _is_num(v)]
    lo, hi = min([0.0, *vals]), max([0.0, *vals])
    room = 0.25 * ((hi - lo) or 1.0)  # space beside the bars for their value labels
    xt = nice_ticks(lo - room if lo < 0 else lo, hi + room if hi > 0 else hi, 4)
    f = Frame(x0 + 100, top, width - 130, row_h * len(rows), (xt[0], xt[-1]), (0, 1))
    out = [_text(x0, top - 18, title, INK, font_weight="600")]
    out += _x_axis(f, xt, "", grid=True)
    out.append(_line(f.x(0), f.py, f.x(0), f.py + f.ph, MUTED))
    for k, (label, value, color) in enumerate(rows):
        y = f.py + row_h * k + row_h / 2
        out.append(_text(f.px - 8, y + 4, label, INK, "end"))
        if not _is_num(value):
            out.append(_text(f.x(0) + 4, y + 4, NA, MUTED))
            continue
        a, b = sorted((f.x(0), f.x(value)))
        out.append(_rect(a, y - 9, max(b - a, 1.0), 18.0, color, fill_opacity="0.8"))
        if value >= 0:
            out.append(_text(b + 4, y + 4, show(value), INK, "start"))
        else:
            out.append(_text(a - 4, y + 4, show(value), INK, "end"))
    return out


def ablation_chart(comparison: dict) -> Markup | None:
    """(d) Each ablation arm's speedup and loss delta against the baseline (and the full arm)."""
    table = _dict(comparison.get("ablation"))
    if not table:
        return None
    names = sorted(table, key=_arm_key)
    speed = [(a, _get(table, a, "speedup_percent"), _arm_color(a, names)) for a in names]
    loss = [(a, _get(table, a, "loss_delta"), _arm_color(a, names)) for a in names]
    comp = _dict(comparison.get("comparison"))
    if comp:
        speed.append(("optimized (all)", comp.get("speedup_percent"), ARM_COLORS["optimized"]))
        loss.append(("optimized (all)", comp.get("loss_delta"), ARM_COLORS["optimized"]))
    width, half = 1160, 570
    height = 40 + 30 * len(speed) + 44
    out = _hbar_panel(10, half, speed, "speedup vs baseline (%)", fmt_pct)
    out += _hbar_panel(
        width - half, half, loss, "validation loss delta vs baseline (nats)", fmt_loss_delta
    )
    return _svg(width, height, "Ablation: speedup and loss delta per arm", out, css="wide")


def history_chart(points: Sequence[dict]) -> Markup | None:
    """Speedup and loss delta of each run (oldest first), CI whiskers, this run hollow."""
    if len(points) < 2:
        return None
    width, height, n = 1160, 270, len(points)
    every = max(1, math.ceil(n / 16))  # at most 16 tick labels per panel
    ticks = [i for i in range(n) if i % every == 0 or i == n - 1]
    color = ARM_COLORS["optimized"]
    out = []
    for col, (key, label) in enumerate(
        (("speedup", "speedup (%)"), ("loss_delta", "validation loss delta (nats)"))
    ):
        vals = [p[k] for p in points for k in (key, key + "_low", key + "_high") if _is_num(p[k])]
        yt = nice_ticks(min([0.0, *vals]), max([0.0, *vals]), 5)
        x0 = 80 + col * width / 2
        f = Frame(x0, 40, width / 2 - 110, height - 110, (-0.5, n - 0.5), (yt[0], yt[-1]))
        out += _y_axis(f, yt, label)
        out += _x_axis(
            f, ticks, "run # (oldest first, as in the table below)", show=lambda i: f"#{int(i) + 1}"
        )
        out.append(_line(f.px, f.y(0), f.px + f.pw, f.y(0), MUTED, stroke_dasharray="3 3"))
        line = [(f.x(i), f.y(p[key])) for i, p in enumerate(points) if _is_num(p[key])]
        if len(line) > 1:
            out.append(_polyline(line, color, stroke_width="1.5"))
        for i, p in enumerate(points):
            lo_v, hi_v = p[key + "_low"], p[key + "_high"]
            if _is_num(lo_v) and _is_num(hi_v):
                out.append(
                    _line(
                        f.x(i),
                        f.y(lo_v),
                        f.x(i),
                        f.y(hi_v),
                        color,
                        stroke_opacity="0.45",
                        stroke_width="2",
                    )
                )
            if _is_num(p[key]):
                ring = STATUS_COLORS.get(p["status"], color)
                out.append(
                    _circle(
                        f.x(i),
                        f.y(p[key]),
                        6.0 if p["current"] else 4.5,
                        "white" if p["current"] else ring,
                        stroke=ring,
                        stroke_width="2.5" if p["current"] else "1",
                    )
                )
        out.append(_text(f.px, 24, label + " per run", INK, font_weight="600"))
    return _svg(width, height, "History: speedup and loss delta per run", out, css="wide")


# --------------------------------------------------------------------------------------------
# Context: small functions, each one section of the page.
# --------------------------------------------------------------------------------------------


def _reason(row: dict) -> str:
    """One failed criterion in words: what was measured (with its CI) and what it needed."""
    cid, unit = str(row.get("id", "")), str(row.get("unit", ""))
    text = f"{row.get('name', cid)}{' (critical)' if row.get('critical') else ''}: measured "
    text += fmt_criterion_value(row.get("measured"), unit, cid)
    if _is_num(row.get("ci_low")) and _is_num(row.get("ci_high")):
        text += (
            f" (CI [{fmt_criterion_value(row['ci_low'], unit, cid)}, "
            f"{fmt_criterion_value(row['ci_high'], unit, cid)}])"
        )
    return f"{text}, needs {row.get('threshold', NA)}"


def _headline(c: dict, rows: list[dict], failed: list[dict]) -> list[tuple[str, str, str]]:
    """The key numbers under the banner: (label, value, small print)."""
    ci = _dict(c.get("confidence_intervals"))
    if not ci:
        return []
    level = fmt(_pct(_get(ci, "speedup", "level")), ".0f")

    def estimate(label: str, key: str, show: Callable[[Any], str]) -> tuple[str, str, str]:
        e = _dict(ci.get(key))
        return (
            label,
            show(e.get("median")),
            f"{level}% CI [{show(e.get('low'))}, {show(e.get('high'))}]",
        )

    noise = _dict(c.get("noise"))
    return [
        estimate("Speedup", "speedup", fmt_frac_pct),
        estimate("Throughput", "throughput", fmt_frac_pct),
        estimate("Val loss delta", "loss_delta", fmt_loss_delta),
        (
            "A/A noise",
            fmt_frac_pct(noise.get("aa"), signed=False),
            f"{len(_list(noise.get('baseline_times')))} baseline runs",
        ),
        (
            "Criteria passed",
            f"{len(rows) - len(failed)} / {len(rows)}",
            f"{sum(bool(r.get('critical')) for r in failed)} critical failed",
        ),
    ]


def banner_context(c: dict) -> dict[str, Any]:
    env = _dict(c.get("environment"))
    verdict = c.get("verdict") if isinstance(c.get("verdict"), dict) else None
    rows = [r for r in _list(c.get("criteria")) if isinstance(r, dict)]
    failed = [r for r in rows if not r.get("passed")]
    if failed:
        why = f"{len(failed)} of {len(rows)} criteria failed:"
    else:
        why = f"All {len(rows)} criteria passed." if rows else None
    hardware = str(env.get("gpu") or env.get("cpu") or NA)
    if env.get("gpu") and env.get("cpu"):
        hardware += f" (CPU {env['cpu']})"
    banner = {
        "why": why,
        "reasons": [_reason(r) for r in sorted(failed, key=lambda r: not r.get("critical"))],
        "headline": _headline(c, rows, failed),
        "created": fmt_created(c.get("created")),
        "device": str(env.get("device") or NA),
        "hardware": hardware,
        "config_name": str(c.get("config_name", NA)),
        "model": str(c.get("model", NA)),
        "num_parameters": fmt_int(c.get("num_parameters")),
    }
    if verdict is None:
        arms = ", ".join(_arms(c)) or "no runs"
        return {
            **banner,
            "status": "NO VERDICT",
            "css": "none",
            "decision": None,
            "scenario": None,
            "exit_code": None,
            "no_verdict": f"No verdict: this was a single-arm run ({arms}), so there is no "
            "baseline/optimized pair to judge.",
        }
    return {
        **banner,
        "status": str(verdict.get("status", NA)),
        "css": STATUS_CLASS.get(verdict.get("status"), "none"),
        "decision": str(verdict.get("decision", NA)),
        "scenario": str(verdict.get("scenario", NA)),
        "exit_code": str(verdict.get("exit_code", NA)),
        "no_verdict": None,
    }


def _criterion_test(tests: Any, criterion_id: str) -> tuple[str, str]:
    nodeid = CRITERION_TEST.format(id=criterion_id)
    if not isinstance(tests, dict):
        return nodeid, NOT_UNDER_PYTEST
    if nodeid in tests:
        return nodeid, str(tests[nodeid])
    for key, outcome in tests.items():
        if str(key).endswith(nodeid.split("/", 1)[1]):
            return str(key), str(outcome)
    return nodeid, "not collected"


TEST_CSS = {"passed": "pass", "failed": "fail", "error": "fail"}


def _criterion_row(r: dict, tests: Any) -> dict[str, Any]:
    cid, unit = str(r.get("id", "")), str(r.get("unit", ""))
    ci = NA
    if _is_num(r.get("ci_low")) and _is_num(r.get("ci_high")):
        low = fmt_criterion_value(r["ci_low"], unit, cid)
        ci = f"[{low}, {fmt_criterion_value(r['ci_high'], unit, cid)}]"
    nodeid, outcome = _criterion_test(tests, cid)
    return {
        "id": cid,
        "name": str(r.get("name", cid)),
        "threshold": str(r.get("threshold", NA)),
        "measured": fmt_criterion_value(r.get("measured"), unit, cid),
        "ci": ci,
        "passed": bool(r.get("passed")),
        "critical": bool(r.get("critical")),
        "detail": str(r.get("detail", "")),
        "test_id": nodeid,
        "test_outcome": outcome,
        "test_css": TEST_CSS.get(outcome, "muted"),
    }


def criteria_context(c: dict) -> dict[str, Any]:
    tests = c.get("tests")
    rows = [_criterion_row(r, tests) for r in _list(c.get("criteria")) if isinstance(r, dict)]
    level = _get(c, "confidence_intervals", "speedup", "level")
    if not _is_num(level):
        level = _get(c, "config", "measurement", "confidence")
    summary, other_tests = None, []
    if isinstance(tests, dict):
        counts: dict[str, int] = {}
        for outcome in tests.values():
            counts[str(outcome)] = counts.get(str(outcome), 0) + 1
        summary = ", ".join(f"{n} {k}" for k, n in sorted(counts.items())) or "no tests"
        shown = {r["test_id"] for r in rows}
        other_tests = [
            (str(k), str(v), TEST_CSS.get(str(v), "muted"))
            for k, v in tests.items()
            if k not in shown
        ]
    return {
        "rows": rows,
        "ci_label": f"{fmt(_pct(level), '.0f')}% CI",
        "tests_summary": summary,
        "other_tests": other_tests,
    }


def charts_context(c: dict) -> dict[str, Any]:
    ablation_off = not _get(c, "config", "measurement", "ablation")
    return {
        "loss": loss_chart(c),
        "step_times": step_time_chart(c),
        "speedup": speedup_chart(c),
        "ablation": ablation_chart(c),
        "ablation_note": "ablation not run (measurement.ablation: false)"
        if ablation_off
        else "ablation enabled, but no ablation run finished",
        "aa_detail": str(_get(c, "noise", "detail") or ""),
    }


def epoch_tables(c: dict) -> list[dict[str, Any]]:
    tables = []
    for arm in _arms(c):
        run = _last_run(c, arm)
        if run is None:
            tables.append({"arm": arm, "caption": "no completed run of this arm", "rows": []})
            continue
        res = run["result"]
        rows = [
            {
                "epoch": str(e.get("epoch", NA)),
                "loss": fmt_loss(e.get("mean_loss")),
                "time": fmt(e.get("time_s"), ".2f"),
                "throughput": fmt_int(e.get("tokens_per_s")),
                "ok": e.get("status") == "ok",
                "status": str(e.get("status", NA)),
            }
            for e in _list(res.get("epochs"))
            if isinstance(e, dict)
        ]
        tables.append(
            {
                "arm": arm,
                "caption": f"run {run.get('index', NA)}, seed {run.get('seed', NA)}, "
                f"{run.get('role', NA)}",
                "rows": rows,
                "total_time": fmt_seconds(res.get("total_time_s")),
                "setup_time": fmt_seconds(res.get("setup_time_s")),
                "val_loss": fmt_loss(res.get("val_loss")),
                "peak_memory": fmt(res.get("peak_memory_mb"), ".1f", " MiB"),
                "divergence": res.get("divergence") if res.get("diverged") else None,
            }
        )
    return tables


def _change(base: Any, opt: Any, lower_is_better: bool = True) -> str:
    if not (_is_num(base) and _is_num(opt)) or base == 0:
        return NA
    diff = base - opt if lower_is_better else opt - base
    return f"{diff:+.2f} ({100.0 * diff / base:+.1f}%)"


def _delta(base: Any, opt: Any) -> float | None:
    return opt - base if _is_num(base) and _is_num(opt) else None


# The seed plan's comparison table: (metric, summary key, value format, improvement rule).
COMPARISON_ROWS: tuple[tuple[str, str, Callable[[Any], str], str], ...] = (
    ("Total training time (s)", "total_time", fmt, "lower"),
    ("Average epoch time (s)", "avg_epoch_time", fmt, "lower"),
    ("Final loss value", "final_loss", fmt_loss, "delta"),
    ("Validation loss", "val_loss", fmt_loss, "comparison"),
    ("Average throughput (tok/s)", "throughput", fmt_int, "higher"),
    ("Samples/second", "samples_per_s", fmt, "higher"),
    ("Peak memory (MiB)", "peak_memory_mb", lambda x: fmt(x, ".1f"), "lower"),
)


def comparison_table(c: dict) -> dict[str, Any] | None:
    b, o = c.get("baseline"), c.get("optimized")
    if not isinstance(b, dict) or not isinstance(o, dict):
        return None
    rows = []
    for label, key, show, rule in COMPARISON_ROWS:
        base, opt = b.get(key), o.get(key)
        if rule == "delta":
            change = fmt_loss_delta(_delta(base, opt))
        elif rule == "comparison":  # the judged paired median, as in the console table
            change = fmt_loss_delta(_get(c, "comparison", "loss_delta"))
        else:
            change = _change(base, opt, lower_is_better=rule == "lower")
        rows.append((label, show(base), show(opt), change))
    return {
        "rows": rows,
        "note": f"medians over {b.get('runs', NA)} interleaved pairs; times are end-to-end "
        "(setup included); improvement = absolute (relative), positive is better",
    }


def _arm_step_median(c: dict, arm: str) -> float | None:
    runs = [r for r in _result_runs(c) if r.get("arm") == arm]
    return _median([t for r in runs for t in _list(r["result"].get("step_times"))])


def _short(values: Any) -> str:
    if isinstance(values, list):
        return ", ".join(str(v) for v in values) if values else "(none)"
    return NA if values is None else str(values)


Rows = list[tuple[str, str]]


def _compression_rows(m: dict) -> Rows:
    rows = []
    if "flops_per_step" in m or "baseline_flops_per_step" in m:
        arm, base = m.pop("flops_per_step", None), m.pop("baseline_flops_per_step", None)
        rows.append(("FLOPs per step", f"{fmt_int(arm)} vs baseline {fmt_int(base)}"))
    if "flops_ratio" in m:
        rows.append(("FLOPs ratio (arm / baseline)", fmt(m.pop("flops_ratio"), ".4f")))
    if "kept_fraction_per_layer" in m:
        kept = _dict(m.pop("kept_fraction_per_layer"))
        text = ", ".join(f"layer {k}: {fmt(v, '.4f')}" for k, v in kept.items())
        rows.append(("Kept fraction per layer", text or "(none)"))
    return rows


def _scaling_rows(m: dict) -> Rows:
    rows = []
    if "tokens_per_step" in m:
        tokens = [t for t in _list(m.pop("tokens_per_step")) if _is_num(t)]
        if tokens:
            summary = (
                f"{len(tokens)} steps: min {fmt_int(min(tokens))}, median "
                f"{fmt_int(statistics.median(tokens))}, max {fmt_int(max(tokens))}, "
                f"total {fmt_int(sum(tokens))}"
            )
            rows.append(("Tokens per step", summary))
    if "full_tokens_per_step" in m:
        rows.append(("Full tokens per step", fmt_int(m.pop("full_tokens_per_step"))))
    if "tokens_fraction" in m:
        rows.append(("Tokens fed (fraction of full)", fmt(m.pop("tokens_fraction"), ".4f")))
    if "schedule" in m:
        changes = [s for s in _list(m.pop("schedule")) if isinstance(s, list) and len(s) == 2]
        text = "; ".join(f"from step {step}: length {length}" for step, length in changes)
        rows.append(("Length schedule", text or "(none)"))
    return rows


def _kernel_rows(m: dict) -> Rows:
    rows = []
    for key, label in (("attention_ops", "Attention ops"), ("matmul_dtypes", "Matmul dtypes")):
        ref_key = f"reference_{key}"
        if key not in m and ref_key not in m:
            continue
        arm, ref = m.pop(key, None), m.pop(ref_key, None)
        rows.append((label, _short(arm) + (" (same as reference)" if arm == ref else "")))
        rows.append((f"{label} (reference)", _short(ref)))
        if isinstance(arm, list) and isinstance(ref, list) and arm != ref:
            added = ", ".join(str(x) for x in arm if x not in ref)
            removed = ", ".join(str(x) for x in ref if x not in arm)
            parts = [f"added {added}" if added else "", f"removed {removed}" if removed else ""]
            rows.append((f"{label}: change", "; ".join(p for p in parts if p) or "reordered"))
    if "optimizer_fused" in m:
        rows.append(("Fused optimizer", "yes" if m.pop("optimizer_fused") else "no"))
    return rows


def _compile_rows(c: dict, arm: str, m: dict) -> Rows:
    rows = []
    for key, label in (
        ("frames_compiled", "Compiled graphs"),
        ("recompiles", "Recompiles"),
        ("graph_breaks", "Graph breaks"),
    ):
        if key in m:
            rows.append((label, fmt_int(m.pop(key))))
    if "compile_seconds" not in m:
        return rows
    secs = m.pop("compile_seconds")
    rows.append(("Compile time", fmt_seconds(secs)))
    # Compiling pays for itself after compile_seconds / (time saved per step) steps.
    base, opt = _arm_step_median(c, "baseline"), _arm_step_median(c, arm)
    if not _is_num(secs) or base is None or opt is None:
        pays = NA
    elif base - opt > 0:
        pays = (
            f"after {fmt_int(math.ceil(secs / (base - opt)))} steps ({fmt_seconds(secs)} / "
            f"({fmt_ms(base)} - {fmt_ms(opt)}) saved per step, median step times)"
        )
    else:
        pays = f"never at this step time (median step {fmt_ms(opt)} vs baseline {fmt_ms(base)})"
    rows.append(("Compiling pays for itself", pays))
    return rows


def _measurement_rows(c: dict, arm: str, item: dict) -> Rows:
    """Known measurements in words; any other measurement as compact JSON."""
    m = dict(_dict(item.get("measurements")))
    rows = _compression_rows(m) + _scaling_rows(m) + _kernel_rows(m) + _compile_rows(c, arm, m)
    return rows + [(str(k), json.dumps(v, ensure_ascii=False)) for k, v in m.items()]


def _evidence_card(c: dict, arm: str, item: dict) -> dict[str, Any]:
    findings = [
        {
            "kind": str(f.get("kind", "")),
            "detail": str(f.get("detail", "")),
            "bad": f.get("kind") == "NoEffect",
        }
        for f in _list(item.get("findings"))
        if isinstance(f, dict)
    ]
    return {
        "arm": arm,
        "name": str(item.get("name", NA)),
        "enabled": bool(item.get("enabled")),
        "effective": bool(item.get("effective")),
        "settings": ", ".join(
            f"{k}={json.dumps(v, ensure_ascii=False)}"
            for k, v in _dict(item.get("settings")).items()
        )
        or "(none)",
        "applied": [str(a) for a in _list(item.get("applied"))],
        "skipped": [
            {"what": str(s.get("what", "")), "why": str(s.get("why", ""))}
            for s in _list(item.get("skipped"))
            if isinstance(s, dict)
        ],
        "measurements": _measurement_rows(c, arm, item),
        "findings": findings,
    }


def evidence_context(c: dict) -> list[dict[str, Any]]:
    """The optimized arm's optimizations, then every other arm's (the ablation arms)."""
    evidence = _dict(c.get("evidence"))
    arms = [a for a in sorted(evidence, key=_arm_key) if a != "baseline"]
    groups = []
    for title, note, members in (
        ("optimized arm", "all optimizations together", [a for a in arms if a == "optimized"]),
        ("ablation arms", "each optimization alone", [a for a in arms if a != "optimized"]),
    ):
        if not members:
            continue
        cards = [
            _evidence_card(c, arm, item)
            for arm in members
            for item in _list(evidence.get(arm))
            if isinstance(item, dict)
        ]
        empty = [a for a in members if not any(x["enabled"] for x in cards if x["arm"] == a)]
        groups.append(
            {
                "title": title,
                "note": note,
                "cards": cards,
                "show_arm": title != "optimized arm",
                "none_enabled": [f"No optimization is enabled in the {a} arm." for a in empty],
            }
        )
    return groups


def environment_context(c: dict, links: dict[str, str]) -> dict[str, Any]:
    env = _dict(c.get("environment"))
    cfg = _dict(c.get("config"))
    training, data = _dict(cfg.get("training")), _dict(cfg.get("data"))
    rows = [
        ("Python", env.get("python")),
        ("PyTorch", env.get("torch")),
        ("Platform", env.get("platform")),
        ("Device", env.get("device")),
        ("CPU", env.get("cpu")),
        ("GPU", env.get("gpu")),
        ("CPU count", env.get("cpu_count")),
        ("Threads (parent process)", env.get("threads")),
        ("Threads (training, 0 = torch default)", training.get("threads")),
        ("Training seed (config)", training.get("seed")),
        ("Data seed", data.get("seed")),
        ("Parameters", fmt_int(c.get("num_parameters"))),
        ("Entropy floor (nats)", fmt_loss(c.get("entropy_floor"))),
        ("Schema version", c.get("schema_version")),
        ("Created", fmt_created(c.get("created"))),
    ]
    runs = []
    for r in _list(c.get("runs")):
        if not isinstance(r, dict):
            continue
        res = _dict(r.get("result"))
        stem = f"runs/{int(r['index']):02d}-{r.get('arm')}" if _is_num(r.get("index")) else None
        runs.append(
            {
                "index": str(r.get("index", NA)),
                "arm": str(r.get("arm", NA)),
                "role": str(r.get("role", NA)),
                "repeat": str(r.get("repeat", NA)),
                "seed": str(r.get("seed", NA)),
                "encoding": str(r.get("console_encoding", NA)),
                "exit_code": str(r.get("exit_code", NA)),
                "ok": r.get("exit_code") == 0 and bool(res),
                "total_time": fmt(res.get("total_time_s"), ".2f"),
                "wall": fmt(r.get("wall_s"), ".2f"),
                "val_loss": fmt_loss(res.get("val_loss")),
                "peak_memory": fmt(res.get("peak_memory_mb"), ".1f"),
                "error": str(r.get("error") or ""),
                "console": f"{stem}.console.txt" if stem else None,
                "result": f"{stem}.result.json" if stem else None,
            }
        )
    return {
        "rows": [(k, NA if v is None or v == "" else str(v)) for k, v in rows],
        "command": str(c.get("command") or NA),
        "config_path": str(c.get("config_path") or NA),
        "config_yaml": yaml.safe_dump(cfg, sort_keys=False, allow_unicode=True, width=100)
        if cfg
        else NA,
        "links": list(links.items()),
        "runs": runs,
    }


def _history_point(c: dict, current: bool, source: Any) -> dict[str, Any]:
    ci = _dict(c.get("confidence_intervals"))
    speedup = _get(c, "comparison", "speedup_percent")
    status = _get(c, "verdict", "status")
    return {
        "created": fmt_created(c.get("created")),
        "config": str(c.get("config_name", NA)),
        "status": str(status) if status else "no verdict",
        "css": STATUS_CLASS.get(status, "none"),
        "speedup": speedup if _is_num(speedup) else _pct(_get(ci, "speedup", "median")),
        "speedup_low": _pct(_get(ci, "speedup", "low")),
        "speedup_high": _pct(_get(ci, "speedup", "high")),
        "loss_delta": _get(c, "comparison", "loss_delta"),
        "loss_delta_low": _get(ci, "loss_delta", "low"),
        "loss_delta_high": _get(ci, "loss_delta", "high"),
        "aa": _pct(_get(c, "noise", "aa")),
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
            "speedup_text": fmt_pct(p["speedup"]),
            "loss_text": fmt_loss_delta(p["loss_delta"]),
            "aa_text": fmt_pct(p["aa"], signed=False),
        }
        for _, p in entries
    ]
    return {"chart": history_chart([p for _, p in entries]), "rows": rows, "count": len(others)}


def benchmarks_context(c: dict) -> list[dict[str, str]] | None:
    bench = c.get("benchmarks")
    if not isinstance(bench, list):
        return None
    rows = []
    for b in bench:
        if not isinstance(b, dict):
            continue
        s = _dict(b.get("stats"))
        extra = _dict(b.get("extra_info"))
        rows.append(
            {
                "name": str(b.get("name", NA)),
                "group": str(b.get("group") or ""),
                "extra": ", ".join(
                    f"{k}={json.dumps(v, ensure_ascii=False)}" for k, v in extra.items()
                ),
                **{k: fmt_duration(s.get(k)) for k in ("min", "max", "mean", "median", "stddev")},
                "rounds": fmt_int(s.get("rounds")),
            }
        )
    return rows


DEFAULT_LINKS = {
    "comparison.json": "comparison.json",
    "monitor.log": "monitor.log",
    "checkpoints/": "checkpoints/",
}


def build_context(
    comparison: dict, history: Sequence[dict] | None = None, links: dict[str, str] | None = None
) -> dict[str, Any]:
    """Every value the template shows, already formatted."""
    c = comparison
    links = dict(DEFAULT_LINKS if links is None else links)
    banner = banner_context(c)
    return {
        "title": f"Ryot Stage 3a: {banner['status']} ({banner['config_name']})",
        "css": Markup(_css()),  # our own stylesheet, shipped in the package
        "banner": banner,
        "criteria": criteria_context(c),
        "charts": charts_context(c),
        "epoch_tables": epoch_tables(c),
        "comparison": comparison_table(c),
        "evidence": evidence_context(c),
        "environment": environment_context(c, links),
        "history": history_context(c, history),
        "benchmarks": benchmarks_context(c),
    }


# --------------------------------------------------------------------------------------------
# Rendering and files
# --------------------------------------------------------------------------------------------

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


def _css() -> str:
    return (
        resources.files("ryot.report")
        .joinpath("templates", "report.css")
        .read_text(encoding="utf-8")
    )


def render_report(
    comparison: dict, history: list[dict] | None = None, links: dict[str, str] | None = None
) -> str:
    """The report's HTML for one comparison.json (and earlier runs' comparisons, if any)."""
    if not isinstance(comparison, dict):
        raise ReportError("comparison must be a JSON object")
    context = build_context(comparison, history, links)
    return str(_environment().get_template("report.html.j2").render(**context))


def _required_keys() -> list[str]:
    from ryot.report.comparison import load_schema

    return list(load_schema().get("required", []))


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
    missing = [k for k in _required_keys() if k not in data]
    if missing:
        raise ReportError(f"{path}: not a comparison (missing {', '.join(missing)})")
    return data


def find_history(run_dir: Path, extra: Sequence[Path] = ()) -> list[dict[str, Any]]:
    """Other runs' comparisons: sibling folders of run_dir and `extra`, sorted by created."""
    here = run_dir.resolve()
    candidates: list[Path] = []
    try:
        candidates = sorted(p for p in run_dir.resolve().parent.iterdir() if p.is_dir())
    except OSError:
        pass
    candidates += [Path(p) for p in extra]
    found: dict[Path, dict[str, Any]] = {}
    for folder in candidates:
        path = folder / COMPARISON_NAME
        key = folder.resolve()
        if key == here or key in found or not path.is_file():
            continue
        try:
            data = read_comparison(path)
        except ReportError:
            continue  # an unreadable neighbour is not this run's problem
        data = dict(data)
        data["_source"] = os.path.relpath(path, here)
        found[key] = data
    return sorted(found.values(), key=lambda d: str(d.get("created") or ""))


def _run_links(run_dir: Path) -> dict[str, str]:
    links = dict(DEFAULT_LINKS)
    checkpoints = run_dir / "checkpoints"
    if checkpoints.is_dir():
        for ckpt in sorted(checkpoints.glob("*.pt")):
            links[f"checkpoints/{ckpt.name}"] = f"checkpoints/{ckpt.name}"
    if (run_dir / "runs").is_dir():
        links["runs/"] = "runs/"
    return links


def write_text_atomic(text: str, path: Path) -> None:
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="\n") as handle:
            handle.write(text)
        os.chmod(tmp, 0o644)  # mkstemp makes 0600; a report is for reading
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def render_run_dir(run_dir: Path, history_dirs: list[Path] | None = None) -> Path:
    """Render run_dir/report.html from run_dir/comparison.json; returns the report's path."""
    run_dir = Path(run_dir)
    comparison = read_comparison(run_dir / COMPARISON_NAME)
    history = find_history(run_dir, history_dirs or [])
    html = render_report(comparison, history, _run_links(run_dir))
    out = run_dir / REPORT_NAME
    write_text_atomic(html, out)
    return out


__all__ = ["ReportError", "build_context", "read_comparison", "render_report", "render_run_dir"]
