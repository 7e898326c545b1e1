"""The report's charts as inline SVG, each from the typed comparison alone (None when no
data).

Each chart is its model (chart_models.py: what it shows, read from comparison.json) drawn with
the shared parts (chart_parts.py: series, level lines, interval rows, bars) on svg.py's frames,
axes and legends. The drawing adds layout only: scales, positions, labels.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from markupsafe import Markup

from ryot.comparison.model import Comparison
from ryot.report import svg
from ryot.report.chart_models import (
    AblationChart,
    CurveChart,
    EquivalenceChart,
    HistoryChart,
    LossChart,
    PositionChart,
    SpeedupChart,
    StepTimeChart,
    ablation_model,
    curve_model,
    equivalence_model,
    history_model,
    loss_model,
    position_model,
    speedup_model,
    step_time_model,
)
from ryot.report.chart_parts import (
    AMBER,
    GREEN,
    RED,
    IntervalStyle,
    draw_level,
    draw_series,
    hbar_panel,
    interval_point,
    interval_row,
    interval_whisker,
    thin,
)
from ryot.report.formatting import NA, fmt, fmt_loss, fmt_loss_delta, fmt_pct, fmt_text


def loss_chart(comparison: Comparison) -> Markup | None:
    """(a) Training loss per optimizer step, baseline and optimized, with the bench's reference
    losses (measured on the validation split) for scale."""
    model = loss_model(comparison)
    return draw_loss(model) if model else None


def draw_loss(m: LossChart) -> Markup:
    points = [p for s in m.series for p in s.points]
    values = [v for _, v in points] + [level.value for level in m.levels]
    yt = svg.nice_ticks(min(values), max(values))
    xt = svg.nice_ticks(1, max(x for x, _ in points), 6, integer=True)
    width, height = 600, 330
    f = svg.Frame(70, 44, width - 90, height - 100, (xt[0], xt[-1]), (yt[0], yt[-1]))
    out = svg.y_axis(f, yt, "training loss (nats)") + svg.x_axis(f, xt, "optimizer step")
    for level in m.levels:
        out += draw_level(f, level)
    for s in m.series:
        out += draw_series(f, s)
    out += svg.legend(f.px, 20, m.legend)
    return svg.document(width, height, "Training loss per step", out)


def curve_chart(comparison: Comparison) -> Markup | None:
    """Validation loss against each arm's own training clock (every paired run), with the loss
    each pair is judged at (schema 3.0: its own matched loss L*; 2.0: one target line) and each
    arm's time to it marked on it: the speed at equal quality, drawn."""
    model = curve_model(comparison)
    return draw_curve(model) if model else None


def _matched_lines(f: svg.Frame, m: CurveChart) -> list[str]:
    """Each pair's matched loss L*: a short dashed line across its two arms' times to it,
    labelled beside it (labels nudged apart where two L* lie close, up to 6 pairs)."""
    out, labels = [], []
    for p in m.matched:
        xs = [f.x(t) for arm in ("baseline", "optimized") if (t := p.seconds(arm)) is not None]
        left, right = (min(xs) - 14, max(xs) + 14) if xs else (f.px, f.px + f.pw)
        left, right = max(left, f.px), min(right, f.px + f.pw)
        y = f.y(p.loss)
        text = f"L* {fmt_loss(p.loss)} (seed {fmt_text(p.seed)})"
        line = svg.line(
            left, y, right, y, RED, stroke_width="1.5", stroke_dasharray="6 4",
            class_="matched", data_repeat="" if p.repeat is None else str(p.repeat),
            data_loss=f"{p.loss:.6g}",
        )  # fmt: skip
        out.append(svg.titled(line, f"matched loss {text}: the worse final loss of the pair"))
        labels.append([y, left, right, text])
    if len(labels) > 6:
        return out  # too many to label: each line keeps its tooltip
    labels.sort(key=lambda item: item[0])
    for prev, item in zip(labels, labels[1:], strict=False):
        item[0] = max(item[0], prev[0] + 12)
    overflow = labels[-1][0] - (f.py + f.ph - 6) if labels else 0
    halo = {"stroke": "white", "stroke_width": "3", "paint_order": "stroke"}  # legible on curves
    for y, left, right, text in labels:
        y -= max(overflow, 0)
        # Left of the earlier crossing the curves are still above L*: usually free space.
        x, anchor = (left - 4, "end") if left - f.px > 140 else (right + 4, "start")
        out.append(svg.text(x, y + 4, text, RED, anchor, class_="matched-label", **halo))
    return out


def draw_curve(m: CurveChart) -> Markup:
    points = [p for s in m.series for p in s.points]
    xs = [x for x, _ in points] + [mark.seconds for mark in m.marks]
    ys = [y for _, y in points] + m.levels
    xt = svg.nice_ticks(0.0, max(xs), 6)
    yt = svg.nice_ticks(min(ys), max(ys))
    width, height = 600, 360
    f = svg.Frame(70, 74, width - 90, height - 130, (xt[0], xt[-1]), (yt[0], yt[-1]))
    base = f.py + f.ph
    out = svg.y_axis(f, yt, "validation loss (nats)")
    out += svg.x_axis(f, xt, f"training clock (s, {m.clock})")
    for s in m.series:
        out += draw_series(f, s)
    if m.target:
        out += draw_level(f, m.target)
    if not m.at_target:
        out += _matched_lines(f, m)
    words = "time to target" if m.at_target else "time to L*"
    for mark in m.marks:
        x, y, color = f.x(mark.seconds), f.y(mark.loss), mark.color
        out.append(svg.line(x, y, x, base, color, stroke_dasharray="2 3", stroke_width="1.2"))
        marker = svg.circle(
            x,
            y,
            5.0,
            color,
            stroke="white",
            stroke_width="1.5",
            class_="ttt",
            data_arm=mark.arm,
            data_repeat="" if mark.repeat is None else str(mark.repeat),
            data_seconds=f"{mark.seconds:.6g}",
            data_loss=f"{mark.loss:.6g}",
        )
        at = "" if m.at_target else f" {fmt_loss(mark.loss)}"
        pair = NA if mark.repeat is None else mark.repeat
        tip = f"{mark.arm} {words}{at}, pair {pair}: {fmt(mark.seconds, '.2f')} s"
        out.append(svg.titled(marker, tip))
    out += svg.legend(f.px, 20, m.legend)
    for k, line in enumerate(m.times):
        out.append(svg.text(f.px, 40 + 15 * k, line, svg.INK, font_weight="600"))
    if m.missing:
        out.append(svg.text(f.px, 42, m.missing, svg.MUTED))
    return svg.document(width, height, "Validation loss against training time", out)


def position_chart(comparison: Comparison) -> Markup | None:
    """Validation loss per position (last paired run of each arm) against the exact Bayes floor
    per position: where in the sequence each arm falls short of what context allows."""
    model = position_model(comparison)
    return draw_position(model) if model else None


def draw_position(m: PositionChart) -> Markup:
    yt = svg.nice_ticks(m.low, m.high)
    xt = [t for t in svg.nice_ticks(0, m.last, 6, integer=True) if t <= m.last]
    width, height = 600, 330
    f = svg.Frame(70, 44, width - 90, height - 100, (0, m.last or 1), (yt[0], yt[-1]))
    out = svg.y_axis(f, yt, "validation loss (nats)")
    out += svg.x_axis(f, xt, "position in the sequence (0 = first predicted token)")
    for s in m.series:
        out += draw_series(f, s)
    out += svg.legend(f.px, 20, m.legend)
    return svg.document(width, height, "Validation loss per position", out)


def step_time_chart(comparison: Comparison) -> Markup | None:
    """(b) Step-time distribution per arm (all runs): box (quartiles, min-max) and points."""
    model = step_time_model(comparison)
    return draw_step_times(model) if model else None


def draw_step_times(m: StepTimeChart) -> Markup:
    lo, hi = min(b.low for b in m.boxes), max(b.high for b in m.boxes)
    yt = svg.log_ticks(lo, hi) if m.log else svg.nice_ticks(0.0, hi)
    width, height = 600, 330
    f = svg.Frame(70, 44, width - 90, height - 110, (0, len(m.boxes)), (yt[0], yt[-1]), m.log)
    base = f.py + f.ph
    label = "step time (ms, log scale)" if m.log else "step time (ms)"
    out = svg.y_axis(f, yt, label) + [svg.line(f.px, base, f.px + f.pw, base, svg.MUTED)]
    slot = f.pw / len(m.boxes)
    for k, b in enumerate(m.boxes):
        color = b.color
        cx = f.px + slot * (k + 0.5)
        box = min(70.0, slot * 0.45)
        out.append(svg.line(cx, f.y(b.high), cx, f.y(b.low), color))
        out += [
            svg.line(cx - box / 4, f.y(v), cx + box / 4, f.y(v), color) for v in (b.low, b.high)
        ]
        out.append(
            svg.rect(
                cx - box / 2,
                f.y(b.q3),
                box,
                max(1.0, f.y(b.q1) - f.y(b.q3)),
                color,
                fill_opacity="0.15",
                stroke=color,
            )
        )
        out.append(
            svg.line(
                cx - box / 2, f.y(b.median), cx + box / 2, f.y(b.median), color, stroke_width="2.5"
            )
        )
        for i, v in thin(b.ms):  # a deterministic jitter: the same JSON draws the same picture
            jitter = ((i * 0.618034) % 1.0 - 0.5) * box * 0.45
            out.append(
                svg.circle(cx + box * 0.85 + jitter, f.y(v), 1.8, color, fill_opacity="0.45")
            )
        n = len(b.ms)
        out.append(svg.text(cx, base + 17, b.arm, svg.INK, "middle", font_weight="600"))
        out.append(
            svg.text(cx, base + 32, f"median {fmt(b.median, '.2f')} ms", svg.MUTED, "middle")
        )
        out.append(
            svg.text(cx, base + 46, f"n={n} step{'s' if n != 1 else ''}", svg.MUTED, "middle")
        )
    key = "box: quartiles · bar: median · whiskers: min to max · dots: steps"
    out.append(svg.text(f.px, 20, key, svg.MUTED))
    return svg.document(width, height, "Step-time distribution per arm", out)


def speedup_chart(comparison: Comparison) -> Markup | None:
    """(c) Speedup at equal quality (time to matched loss; 2.0: to target) and end to end:
    geometric mean, CI and each pair, against the threshold and the A/A noise band (percent)."""
    model = speedup_model(comparison)
    return draw_speedup(model) if model else None


def draw_speedup(m: SpeedupChart) -> Markup:
    aa, threshold = m.aa, m.threshold
    core = [0.0, *((-aa, aa) if aa else ())]
    for r in m.rows:
        core += [v for v in (r.point, r.low, r.high, *r.pairs) if v is not None]
    lo, hi = min(core), max(core)
    span = max(hi - lo, 1.0)
    # A threshold far outside the data would squash it: then it is named at the edge instead.
    on_scale = threshold is not None and lo - span <= threshold <= hi + span
    if on_scale:
        lo, hi = min(lo, threshold), max(hi, threshold)
    pad = 0.04 * max(hi - lo, 1.0)  # keep marks off the frame's edges
    xt = svg.nice_ticks(lo - pad, hi + pad, 8)
    width, height = 1160, 300
    f = svg.Frame(150, 44, width - 180, 190, (xt[0], xt[-1]), (0.0, 1.0))
    out = []
    if aa is not None:
        band = max(1.0, f.x(aa) - f.x(-aa))
        out.append(svg.rect(f.x(-aa), f.py, band, f.ph, AMBER, fill_opacity="0.2"))
        aa_label = f"A/A noise ±{fmt(aa, '.1f')}%"
        out.append(svg.text(f.x(aa) + 4, f.py + f.ph - 6, aa_label, "#8a6d00"))
    out += svg.x_axis(f, xt, "speedup = 1 - T_opt / T_base (%)", grid=True)
    out.append(svg.line(f.x(0), f.py, f.x(0), f.py + f.ph, svg.MUTED))
    if threshold is not None:
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
    for k, r in enumerate(m.rows):
        y = f.py + f.ph * (k + 0.5) / len(m.rows)
        style = IntervalStyle(
            bound_label=fmt_pct, point_attrs={"class_": "point", "data_row": r.label}
        )
        out.append(svg.text(f.px - 10, y + 4, r.label, svg.INK, "end", font_weight="600"))
        out += interval_whisker(f, y, r, style)
        if r.infinite:
            missed = "target not reached" if m.at_target else "no value"
            out.append(svg.text(f.px + 4, y + 24, f"◀ {r.infinite} pair(s) at -∞: {missed}", RED))
        out += interval_point(f, y, r, style)
        out.append(
            svg.text(f.px + 6, y - 32, r.summary, svg.INK, class_="row-summary", data_row=r.label)
        )
    color = m.rows[0].color
    legend = [("geometric mean, CI", color, "line"), ("each pair", color, "dot")]
    if threshold is not None:
        legend.append(("threshold", RED, "dash"))
    if aa is not None:
        legend.append(("A/A noise band", AMBER, "box"))
    out += svg.legend(f.px, 20, legend)
    return svg.document(width, height, "Speedup with confidence interval", out, css="wide")


def equivalence_chart(comparison: Comparison) -> Markup | None:
    """The paired validation-loss delta: its CI against the margin (schema 3.0: non-inferior
    when the upper bound lies below +margin, the +-margin TOST band beside; 2.0: the TOST band
    alone), with the baseline's seed-to-seed spread for scale (nats)."""
    model = equivalence_model(comparison)
    return draw_equivalence(model) if model else None


EQUIVALENCE_STYLE = IntervalStyle(
    tick=9.0, point_r=5.5, pair_dy=16.0, pair_r=3.0, ci_attrs={"class_": "ci"},
    point_attrs={"class_": "point"},
)  # fmt: skip


def draw_equivalence(m: EquivalenceChart) -> Markup:
    r, margin, spread = m.row, m.margin, m.spread
    extent = [abs(v) for v in (r.point, r.low, r.high, margin, spread, *r.pairs) if v is not None]
    top = 1.15 * max(extent) or 1.0
    xt = svg.nice_ticks(-top, top, 8)
    width, height = 560, 170
    f = svg.Frame(20, 48, width - 40, 70, (xt[0], xt[-1]), (0.0, 1.0))
    named = False  # the inferior region carries its name (else the legend does)
    out = []
    if margin is not None:
        a, b = f.x(-abs(margin)), f.x(abs(margin))
        out.append(svg.rect(a, f.py, b - a, f.ph, GREEN, fill_opacity="0.12", class_="margin"))
        for x in (a, b):
            out.append(svg.line(x, f.py, x, f.py + f.ph, GREEN, stroke_dasharray="6 4"))
        label = f"margin ±{fmt(abs(margin), '.4f')}"
        if m.non_inferiority:  # the criterion's bound: worse than +margin is inferior
            right = f.px + f.pw
            out.append(
                svg.rect(b, f.py, max(right - b, 0.0), f.ph, RED, fill_opacity="0.08",
                         class_="inferior")
            )  # fmt: skip
            out.append(svg.line(b, f.py, b, f.py + f.ph, RED, stroke_width="2"))
            named = right - b >= 48
            if named:
                out.append(svg.text((b + right) / 2, f.py + f.ph - 6, "inferior", RED, "middle"))
            label = f"non-inferior below +{fmt(abs(margin), '.4f')} · TOST {label}"
        out.append(svg.text(b - 4, f.py + 13, label, GREEN, "end"))
    if spread is not None and spread > 0:
        a, b = f.x(-spread), f.x(spread)
        out.append(
            svg.rect(
                a,
                f.py + f.ph - 10,
                max(b - a, 1.0),
                8.0,
                AMBER,
                fill_opacity="0.5",
                class_="spread",
            )
        )
    out += svg.x_axis(f, xt, "loss delta = optimized - baseline (nats)", grid=False)
    out.append(svg.line(f.x(0), f.py, f.x(0), f.py + f.ph, svg.MUTED))
    out += interval_row(f, f.py + f.ph * 0.45, r, EQUIVALENCE_STYLE)
    out.append(svg.text(f.px, 18, m.heading, svg.INK, font_weight="600"))
    legend = [("mean, CI", r.color, "line"), ("each pair", r.color, "dot")]
    if margin is not None:
        legend.append(("margin", GREEN, "dash"))
        if m.non_inferiority and not named:
            legend.append(("inferior", RED, "box"))
    if spread is not None and spread > 0:
        legend.append((f"baseline spread ±{fmt(spread, '.4f')}", AMBER, "box"))
    out += svg.legend(f.px, 36, legend)
    against = "the non-inferiority margin" if m.non_inferiority else "the equivalence margin"
    return svg.document(width, height, f"Validation loss delta against {against}", out)


def ablation_chart(comparison: Comparison) -> Markup | None:
    """(d) Each ablation arm's speedup and loss delta against the baseline (and the full arm)."""
    model = ablation_model(comparison)
    return draw_ablation(model) if model else None


def draw_ablation(m: AblationChart) -> Markup:
    width, half = 1160, 570
    height = 40 + 30 * len(m.speed) + 44
    out = hbar_panel(10, half, m.speed, "speedup vs baseline (%)", fmt_pct)
    out += hbar_panel(
        width - half, half, m.loss, "validation loss delta vs baseline (nats)", fmt_loss_delta
    )
    return svg.document(width, height, "Ablation: speedup and loss delta per arm", out, css="wide")


def history_chart(points: Sequence[dict]) -> Markup | None:
    """Speedup (at equal quality, end to end) and loss delta of each run, oldest first: CI
    whiskers, this run hollow; a run without a value (e.g. schema 1.0: no time to target) has
    no point in that panel."""
    model = history_model(points)
    return draw_history(model) if model else None


def draw_history(m: HistoryChart) -> Markup:
    width, height, n = 1160, 270, m.runs
    every = max(1, math.ceil(n / 16))  # at most 16 tick labels per panel
    ticks = [i for i in range(n) if i % every == 0 or i == n - 1]
    color = m.color
    out = []
    cell = width / len(m.panels)
    for col, panel in enumerate(m.panels):
        vals = [v for p in panel.points for v in (p.value, p.low, p.high) if v is not None]
        yt = svg.nice_ticks(min([0.0, *vals]), max([0.0, *vals]), 5)
        x0 = 80 + col * cell
        f = svg.Frame(x0, 40, cell - 100, height - 110, (-0.5, n - 0.5), (yt[0], yt[-1]))
        out += svg.y_axis(f, yt, panel.label)
        out += svg.x_axis(
            f, ticks, "run # (oldest first, as below)", show=lambda i: f"#{int(i) + 1}"
        )
        out.append(svg.line(f.px, f.y(0), f.px + f.pw, f.y(0), svg.MUTED, stroke_dasharray="3 3"))
        out += draw_series(f, panel.line)
        for p in panel.points:
            if p.low is not None and p.high is not None:
                out.append(
                    svg.line(
                        f.x(p.index),
                        f.y(p.low),
                        f.x(p.index),
                        f.y(p.high),
                        color,
                        stroke_opacity="0.45",
                        stroke_width="2",
                    )
                )
            if p.value is not None:
                out.append(
                    svg.circle(
                        f.x(p.index),
                        f.y(p.value),
                        6.0 if p.current else 4.5,
                        "white" if p.current else p.ring,
                        stroke=p.ring,
                        stroke_width="2.5" if p.current else "1",
                    )
                )
        out.append(svg.text(f.px, 24, panel.label + " per run", svg.INK, font_weight="600"))
    title = "History: speedup and loss delta per run"
    return svg.document(width, height, title, out, css="wide")
