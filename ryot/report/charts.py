"""The report's charts as inline SVG, each from comparison.json alone (None when no data)."""

from __future__ import annotations

import math
import statistics
from collections.abc import Callable, Sequence
from typing import Any

from markupsafe import Markup

from ryot.report import svg
from ryot.report.fields import (
    arm_names,
    arm_sort_key,
    as_dict,
    as_list,
    get_path,
    is_num,
    last_run,
    result_runs,
)
from ryot.report.formatting import NA, fmt, fmt_loss, fmt_loss_delta, fmt_pct, to_percent

MAX_POINTS = 800  # per series / per strip: larger series are thinned by a fixed stride
STATUS_COLORS = {"GO": "#2b8a3e", "INVESTIGATE": "#e67700", "DEBUG": "#c92a2a"}
ARM_COLORS = {
    "baseline": "#6c757d",
    "optimized": "#1c6fd1",
    "kernel": "#7048e8",
    "compression": "#0c8f6e",
    "scaling": "#d9480f",
}
OTHER_COLORS = ("#a61e4d", "#5c940d", "#1098ad", "#e67700")
RED = "#c92a2a"
AMBER = "#fab005"
GREEN = "#2b8a3e"


def _arm_color(arm: str, arms: Sequence[str] = ()) -> str:
    if arm in ARM_COLORS:
        return ARM_COLORS[arm]
    others = [a for a in arms if a not in ARM_COLORS]
    i = others.index(arm) if arm in others else 0
    return OTHER_COLORS[i % len(OTHER_COLORS)]


def _thin(values: Sequence[Any], limit: int = MAX_POINTS) -> list[tuple[int, Any]]:
    """(index, value) pairs, every k-th when there are more than `limit` (the SVG stays small)."""
    stride = max(1, math.ceil(len(values) / limit))
    return [(i, v) for i, v in enumerate(values) if i % stride == 0]


def _segments(values: Sequence[Any]) -> list[list[tuple[int, float]]]:
    """Runs of consecutive numeric values (null or NaN breaks a line), thinned if long."""
    pieces: list[list[tuple[int, float]]] = [[]]
    for i, v in _thin(values):
        if is_num(v):
            pieces[-1].append((i, float(v)))
        elif pieces[-1]:
            pieces.append([])
    return [p for p in pieces if p]


def loss_chart(comparison: dict) -> Markup | None:
    """(a) Training loss per optimizer step, baseline and optimized, with the entropy floor."""
    series = []  # (arm, segments, is the arm's last run)
    for arm in ("baseline", "optimized"):
        runs = [r for r in result_runs(comparison) if r.get("arm") == arm]
        for k, run in enumerate(runs):
            segs = _segments(as_list(run["result"].get("step_losses")))
            series.append((arm, segs, k == len(runs) - 1))
    points = [p for _, segs, _ in series for seg in segs for p in seg]
    if not points:
        return None
    floor = comparison.get("entropy_floor")
    values = [v for _, v in points] + ([floor] if is_num(floor) else [])
    yt = svg.nice_ticks(min(values), max(values))
    xt = svg.nice_ticks(1, max(i for i, _ in points) + 1, 6, integer=True)
    width, height = 600, 330
    f = svg.Frame(70, 44, width - 90, height - 100, (xt[0], xt[-1]), (yt[0], yt[-1]))
    out = svg.y_axis(f, yt, "training loss (nats)") + svg.x_axis(f, xt, "optimizer step")
    if is_num(floor):
        y = f.y(floor)
        out.append(
            svg.line(f.px, y, f.px + f.pw, y, GREEN, stroke_width="1.5", stroke_dasharray="6 4")
        )
        label = f"entropy floor (loss floor) {fmt_loss(floor)}"
        out.append(svg.text(f.px + f.pw - 4, y - 6, label, GREEN, "end"))
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
                    out.append(
                        svg.polyline(pts, color, stroke_width=width_, stroke_opacity=opacity)
                    )
                if len(pts) == 1 or (last and few):
                    out += [svg.circle(x, y, 2.5, color, fill_opacity=opacity) for x, y in pts]
    legend = []
    for arm in ("baseline", "optimized"):
        last = last_run(comparison, arm)
        if last is not None:
            legend.append((f"{arm} (run {last.get('index')})", ARM_COLORS[arm], "line"))
    if any(not last for *_, last in series):
        legend.append(("earlier runs", svg.MUTED, "faint"))
    out += svg.legend(f.px, 20, legend)
    return svg.document(width, height, "Training loss per step", out)


def _quartiles(values: Sequence[float]) -> tuple[float, float, float]:
    if len(values) < 2:
        return values[0], values[0], values[0]
    q1, q2, q3 = statistics.quantiles(values, n=4, method="inclusive")
    return q1, q2, q3


def step_time_chart(comparison: dict) -> Markup | None:
    """(b) Step-time distribution per arm (all runs): box (quartiles, min-max) and points."""
    data = []
    for arm in arm_names(comparison):
        runs = [r for r in result_runs(comparison) if r.get("arm") == arm]
        ms = [1000.0 * t for r in runs for t in as_list(r["result"].get("step_times")) if is_num(t)]
        if ms:
            data.append((arm, ms))
    if not data:
        return None
    arms = [a for a, _ in data]
    lo, hi = min(min(ms) for _, ms in data), max(max(ms) for _, ms in data)
    log = lo > 0 and hi / lo > 50  # compile or warmup outliers: a log axis keeps boxes visible
    yt = svg.log_ticks(lo, hi) if log else svg.nice_ticks(0.0, hi)
    width, height = 600, 330
    f = svg.Frame(70, 44, width - 90, height - 110, (0, len(data)), (yt[0], yt[-1]), ylog=log)
    base = f.py + f.ph
    label = "step time (ms, log scale)" if log else "step time (ms)"
    out = svg.y_axis(f, yt, label) + [svg.line(f.px, base, f.px + f.pw, base, svg.MUTED)]
    slot = f.pw / len(data)
    for k, (arm, ms) in enumerate(data):
        color = _arm_color(arm, arms)
        cx = f.px + slot * (k + 0.5)
        q1, q2, q3 = _quartiles(sorted(ms))
        box = min(70.0, slot * 0.45)
        out.append(svg.line(cx, f.y(max(ms)), cx, f.y(min(ms)), color))
        out += [
            svg.line(cx - box / 4, f.y(v), cx + box / 4, f.y(v), color) for v in (min(ms), max(ms))
        ]
        out.append(
            svg.rect(
                cx - box / 2,
                f.y(q3),
                box,
                max(1.0, f.y(q1) - f.y(q3)),
                color,
                fill_opacity="0.15",
                stroke=color,
            )
        )
        out.append(
            svg.line(cx - box / 2, f.y(q2), cx + box / 2, f.y(q2), color, stroke_width="2.5")
        )
        for i, v in _thin(ms):  # a deterministic jitter: the same JSON draws the same picture
            jitter = ((i * 0.618034) % 1.0 - 0.5) * box * 0.45
            out.append(
                svg.circle(cx + box * 0.85 + jitter, f.y(v), 1.8, color, fill_opacity="0.45")
            )
        out.append(svg.text(cx, base + 17, arm, svg.INK, "middle", font_weight="600"))
        out.append(svg.text(cx, base + 32, f"median {fmt(q2, '.2f')} ms", svg.MUTED, "middle"))
        out.append(
            svg.text(
                cx, base + 46, f"n={len(ms)} step{'s' if len(ms) != 1 else ''}", svg.MUTED, "middle"
            )
        )
    key = "box: quartiles · bar: median · whiskers: min to max · dots: steps"
    out.append(svg.text(f.px, 20, key, svg.MUTED))
    return svg.document(width, height, "Step-time distribution per arm", out)


def speedup_chart(comparison: dict) -> Markup | None:
    """(c) The speedup median and CI against the threshold and the A/A noise band (percent)."""
    est = as_dict(get_path(comparison, "confidence_intervals", "speedup"))
    med, low, high = (
        to_percent(est.get("median")),
        to_percent(est.get("low")),
        to_percent(est.get("high")),
    )
    if med is None:
        return None
    has_ci = low is not None and high is not None
    pairs = [to_percent(v) for v in as_list(est.get("values")) if is_num(v)]
    aa = to_percent(get_path(comparison, "noise", "aa"))
    threshold = get_path(comparison, "config", "criteria", "min_speedup_percent")
    core = [0.0, med, *pairs, *((low, high) if has_ci else ()), *((-aa, aa) if aa else ())]
    lo, hi = min(core), max(core)
    span = max(hi - lo, 1.0)
    # A threshold far outside the data would squash it: then it is named at the edge instead.
    on_scale = is_num(threshold) and lo - span <= threshold <= hi + span
    if on_scale:
        lo, hi = min(lo, threshold), max(hi, threshold)
    pad = 0.04 * max(hi - lo, 1.0)  # keep marks off the frame's edges
    xt = svg.nice_ticks(lo - pad, hi + pad, 8)
    width, height = 1160, 215
    f = svg.Frame(30, 62, width - 60, 96, (xt[0], xt[-1]), (0.0, 1.0))
    color = ARM_COLORS["optimized"]
    out = []
    if aa is not None:
        band = max(1.0, f.x(aa) - f.x(-aa))
        out.append(svg.rect(f.x(-aa), f.py, band, f.ph, AMBER, fill_opacity="0.2"))
        out.append(svg.text(f.x(aa) + 4, f.py + 14, f"A/A noise ±{fmt(aa, '.1f')}%", "#8a6d00"))
    out += svg.x_axis(f, xt, "speedup = 1 - T_opt / T_base (%)", grid=True)
    out.append(svg.line(f.x(0), f.py, f.x(0), f.py + f.ph, svg.MUTED))
    if is_num(threshold):
        label = f"threshold: CI lower bound >= {fmt(threshold, '.1f')}%"
        if on_scale:
            x = f.x(threshold)
            out.append(
                svg.line(x, f.py - 4, x, f.py + f.ph, RED, stroke_width="2", stroke_dasharray="6 4")
            )
            right = x > f.px + f.pw * 0.6
            out.append(
                svg.text(
                    x - 4 if right else x + 4, f.py - 8, label, RED, "end" if right else "start"
                )
            )
        elif threshold < lo:
            out.append(svg.text(f.px, f.py - 8, f"◀ {label} (off scale)", RED, "start"))
        else:
            out.append(svg.text(f.px + f.pw, f.py - 8, f"{label} (off scale) ▶", RED, "end"))
    y = f.py + f.ph * 0.5
    if has_ci:
        out.append(
            svg.line(f.x(low), y, f.x(high), y, color, stroke_width="6", stroke_opacity="0.5")
        )
        for v in (low, high):
            out.append(svg.line(f.x(v), y - 10, f.x(v), y + 10, color, stroke_width="2"))
            out.append(svg.text(f.x(v), y - 15, fmt_pct(v), color, "middle"))
    out += [svg.circle(f.x(v), y + 20, 3.5, "white", stroke=color) for v in pairs]
    out.append(svg.circle(f.x(med), y, 6.0, color, stroke="white"))
    level = fmt(to_percent(est.get("level")), ".0f")
    ci_text = f"{level}% CI [{fmt_pct(low)}, {fmt_pct(high)}]" if has_ci else "CI n/a"
    n = est.get("n", NA)
    title = f"median {fmt_pct(med)} · {ci_text} · n={n} pair{'' if n == 1 else 's'}"
    out.append(svg.text(f.px, 22, title, svg.INK, font_weight="600"))
    legend = [("median, CI", color, "line"), ("each pair", color, "dot")]
    if is_num(threshold):
        legend.append(("threshold", RED, "dash"))
    if aa is not None:
        legend.append(("A/A noise band", AMBER, "box"))
    out += svg.legend(width - 470, 22, legend)
    return svg.document(width, height, "Speedup with confidence interval", out, css="wide")


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
    vals = [v for _, v, _ in rows if is_num(v)]
    lo, hi = min([0.0, *vals]), max([0.0, *vals])
    room = 0.25 * ((hi - lo) or 1.0)  # space beside the bars for their value labels
    xt = svg.nice_ticks(lo - room if lo < 0 else lo, hi + room if hi > 0 else hi, 4)
    f = svg.Frame(x0 + 100, top, width - 130, row_h * len(rows), (xt[0], xt[-1]), (0, 1))
    out = [svg.text(x0, top - 18, title, svg.INK, font_weight="600")]
    out += svg.x_axis(f, xt, "", grid=True)
    out.append(svg.line(f.x(0), f.py, f.x(0), f.py + f.ph, svg.MUTED))
    for k, (label, value, color) in enumerate(rows):
        y = f.py + row_h * k + row_h / 2
        out.append(svg.text(f.px - 8, y + 4, label, svg.INK, "end"))
        if not is_num(value):
            out.append(svg.text(f.x(0) + 4, y + 4, NA, svg.MUTED))
            continue
        a, b = sorted((f.x(0), f.x(value)))
        out.append(svg.rect(a, y - 9, max(b - a, 1.0), 18.0, color, fill_opacity="0.8"))
        if value >= 0:
            out.append(svg.text(b + 4, y + 4, show(value), svg.INK, "start"))
        else:
            out.append(svg.text(a - 4, y + 4, show(value), svg.INK, "end"))
    return out


def ablation_chart(comparison: dict) -> Markup | None:
    """(d) Each ablation arm's speedup and loss delta against the baseline (and the full arm)."""
    table = as_dict(comparison.get("ablation"))
    if not table:
        return None
    names = sorted(table, key=arm_sort_key)
    speed = [(a, get_path(table, a, "speedup_percent"), _arm_color(a, names)) for a in names]
    loss = [(a, get_path(table, a, "loss_delta"), _arm_color(a, names)) for a in names]
    comp = as_dict(comparison.get("comparison"))
    if comp:
        speed.append(("optimized (all)", comp.get("speedup_percent"), ARM_COLORS["optimized"]))
        loss.append(("optimized (all)", comp.get("loss_delta"), ARM_COLORS["optimized"]))
    width, half = 1160, 570
    height = 40 + 30 * len(speed) + 44
    out = _hbar_panel(10, half, speed, "speedup vs baseline (%)", fmt_pct)
    out += _hbar_panel(
        width - half, half, loss, "validation loss delta vs baseline (nats)", fmt_loss_delta
    )
    return svg.document(width, height, "Ablation: speedup and loss delta per arm", out, css="wide")


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
        vals = [p[k] for p in points for k in (key, key + "_low", key + "_high") if is_num(p[k])]
        yt = svg.nice_ticks(min([0.0, *vals]), max([0.0, *vals]), 5)
        x0 = 80 + col * width / 2
        f = svg.Frame(x0, 40, width / 2 - 110, height - 110, (-0.5, n - 0.5), (yt[0], yt[-1]))
        out += svg.y_axis(f, yt, label)
        out += svg.x_axis(
            f, ticks, "run # (oldest first, as in the table below)", show=lambda i: f"#{int(i) + 1}"
        )
        out.append(svg.line(f.px, f.y(0), f.px + f.pw, f.y(0), svg.MUTED, stroke_dasharray="3 3"))
        line = [(f.x(i), f.y(p[key])) for i, p in enumerate(points) if is_num(p[key])]
        if len(line) > 1:
            out.append(svg.polyline(line, color, stroke_width="1.5"))
        for i, p in enumerate(points):
            lo_v, hi_v = p[key + "_low"], p[key + "_high"]
            if is_num(lo_v) and is_num(hi_v):
                out.append(
                    svg.line(
                        f.x(i),
                        f.y(lo_v),
                        f.x(i),
                        f.y(hi_v),
                        color,
                        stroke_opacity="0.45",
                        stroke_width="2",
                    )
                )
            if is_num(p[key]):
                ring = STATUS_COLORS.get(p["status"], color)
                out.append(
                    svg.circle(
                        f.x(i),
                        f.y(p[key]),
                        6.0 if p["current"] else 4.5,
                        "white" if p["current"] else ring,
                        stroke=ring,
                        stroke_width="2.5" if p["current"] else "1",
                    )
                )
        out.append(svg.text(f.px, 24, label + " per run", svg.INK, font_weight="600"))
    return svg.document(width, height, "History: speedup and loss delta per run", out, css="wide")
