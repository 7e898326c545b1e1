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
    estimate,
    get_path,
    is_num,
    judged_at_target,
    last_pair_run,
    last_run,
    pair_runs,
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


def _floor_lines(f: svg.Frame, comparison: dict, what: str) -> list[str]:
    """The bench's reference losses as horizontal lines: unigram (dotted) and Bayes floor."""
    out = []
    for key, label, color, dash in (
        ("unigram_loss", "unigram loss", svg.MUTED, "2 3"),
        ("bayes_floor", "Bayes floor", GREEN, "6 4"),
    ):
        value = reference(comparison, key)
        if not is_num(value):
            continue
        out += _level_line(
            f, value, f"{label} {what} {fmt_loss(value)}", color, dash,
            class_=key, data_value=f"{value:.6g}",
        )  # fmt: skip
    return out


def reference(comparison: dict, key: str) -> Any:
    """A bench reference loss (bayes_floor, unigram_loss): top level, else from "bench"."""
    value = comparison.get(key)
    return value if is_num(value) else get_path(comparison, "bench", key)


def _level_line(f, value: float, text: str, color: str, dash: str, **attrs) -> list:
    """A labelled horizontal line across the plot at loss `value` (a reference or the target)."""
    y = f.y(value)
    line = svg.line(
        f.px, y, f.px + f.pw, y, color, stroke_width="1.5", stroke_dasharray=dash, **attrs
    )
    return [line, svg.text(f.px + f.pw - 4, y - 6, text, color, "end")]


def loss_chart(comparison: dict) -> Markup | None:
    """(a) Training loss per optimizer step, baseline and optimized, with the bench's reference
    losses (measured on the validation split) for scale."""
    series = []  # (arm, segments, is the arm's last run)
    for arm in ("baseline", "optimized"):
        runs = [r for r in result_runs(comparison) if r.get("arm") == arm]
        for k, run in enumerate(runs):
            segs = _segments(as_list(run["result"].get("step_losses")))
            series.append((arm, segs, k == len(runs) - 1))
    points = [p for _, segs, _ in series for seg in segs for p in seg]
    if not points:
        return None
    refs = [reference(comparison, k) for k in ("bayes_floor", "unigram_loss")]
    values = [v for _, v in points] + [v for v in refs if is_num(v)]
    yt = svg.nice_ticks(min(values), max(values))
    xt = svg.nice_ticks(1, max(i for i, _ in points) + 1, 6, integer=True)
    width, height = 600, 330
    f = svg.Frame(70, 44, width - 90, height - 100, (xt[0], xt[-1]), (yt[0], yt[-1]))
    out = svg.y_axis(f, yt, "training loss (nats)") + svg.x_axis(f, xt, "optimizer step")
    out += _floor_lines(f, comparison, "(validation)")
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


def _curve_segments(curve: Any) -> list[list[tuple[float, float]]]:
    """(clock_s, val_loss) runs of a curve; a null loss (or a malformed point) breaks the line."""
    pieces: list[list[tuple[float, float]]] = [[]]
    for _, p in _thin(as_list(curve)):
        x, y = get_path(p, "clock_s"), get_path(p, "val_loss")
        if is_num(x) and is_num(y):
            pieces[-1].append((float(x), float(y)))
        elif pieces[-1]:
            pieces.append([])
    return [p for p in pieces if p]


def ttt_text(pairs: Sequence[dict], arm: str) -> str:
    """One arm's time to target (schema 3.0: to each pair's matched loss) per pair in words
    ("not reached" for null: infinite time)."""
    values = [p.get(f"{arm}_s") for p in pairs]
    if not values:
        return NA
    if len(values) <= 4:
        return ", ".join(fmt(v, ".2f", " s") if is_num(v) else "not reached" for v in values)
    finite = [v for v in values if is_num(v)]
    text = f"{fmt(min(finite), '.2f')} to {fmt(max(finite), '.2f')} s" if finite else ""
    missed = len(values) - len(finite)
    if missed:
        text += f"{'; ' if text else ''}{missed} not reached"
    return f"{text} ({len(values)} pairs)"


def ttt_pairs(comparison: dict) -> list[dict]:
    pairs = get_path(comparison, "measurements", "time_to_target", "pairs")
    return [p for p in as_list(pairs) if isinstance(p, dict)]


def _curve_runs(comparison: dict, arm: str) -> list[dict]:
    """The arm's paired runs; a single-arm run (no pair) shows its own runs instead."""
    return pair_runs(comparison, arm) or [
        r for r in result_runs(comparison) if r.get("arm") == arm and r.get("role") != "aa"
    ]


def ttt_words(comparison: dict) -> str:
    """What the speedup at equal quality times: one target (schema 2.0) or each pair's L*."""
    return "time to target" if judged_at_target(comparison) else "time to matched loss"


def _pair_level(comparison: dict, pair: dict) -> Any:
    """The loss a pair was timed to: the target (schema 2.0), else its own matched loss L*."""
    if judged_at_target(comparison):
        return get_path(comparison, "measurements", "target", "loss")
    return pair.get("loss")


def _matched_lines(f: svg.Frame, pairs: Sequence[dict]) -> list[str]:
    """Each pair's matched loss L*: a short dashed line across its two arms' times to it,
    labelled beside it (labels nudged apart where two L* lie close, up to 6 pairs)."""
    out, labels = [], []
    for p in pairs:
        loss = p.get("loss")
        if not is_num(loss):
            continue
        xs = [f.x(p[f"{arm}_s"]) for arm in ("baseline", "optimized") if is_num(p.get(f"{arm}_s"))]
        left, right = (min(xs) - 14, max(xs) + 14) if xs else (f.px, f.px + f.pw)
        left, right = max(left, f.px), min(right, f.px + f.pw)
        y, seed = f.y(loss), p.get("seed", NA)
        text = f"L* {fmt_loss(loss)} (seed {seed})"
        line = svg.line(
            left, y, right, y, RED, stroke_width="1.5", stroke_dasharray="6 4",
            class_="matched", data_repeat=str(p.get("repeat", "")), data_loss=f"{loss:.6g}",
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


def curve_chart(comparison: dict) -> Markup | None:
    """Validation loss against each arm's own training clock (every paired run), with the loss
    each pair is judged at (schema 3.0: its own matched loss L*; 2.0: one target line) and each
    arm's time to it marked on it: the speed at equal quality, drawn."""
    series = [
        (arm, run, segs)
        for arm in ("baseline", "optimized")
        for run in _curve_runs(comparison, arm)
        if (segs := _curve_segments(run["result"].get("curve")))
    ]
    points = [p for *_, segs in series for seg in segs for p in seg]
    if not points:
        return None
    at_target = judged_at_target(comparison)
    target = get_path(comparison, "measurements", "target", "loss") if at_target else None
    pairs = ttt_pairs(comparison)
    marks = [
        (arm, p, p[f"{arm}_s"], level)
        for p in pairs
        if is_num(level := _pair_level(comparison, p))
        for arm in ("baseline", "optimized")
        if is_num(p.get(f"{arm}_s"))
    ]
    levels = [target] if is_num(target) else []
    levels += [] if at_target else [p["loss"] for p in pairs if is_num(p.get("loss"))]
    xs = [x for x, _ in points] + [t for _, _, t, _ in marks]
    ys = [y for _, y in points] + levels
    xt = svg.nice_ticks(0.0, max(xs), 6)
    yt = svg.nice_ticks(min(ys), max(ys))
    width, height = 600, 360
    f = svg.Frame(70, 74, width - 90, height - 130, (xt[0], xt[-1]), (yt[0], yt[-1]))
    base = f.py + f.ph
    clock = "setup included, evaluation off the clock"
    if not at_target:
        clock = "setup included, machine stalls and evaluation off the clock"
    out = svg.y_axis(f, yt, "validation loss (nats)")
    out += svg.x_axis(f, xt, f"training clock (s, {clock})")
    for arm, run, segs in series:
        color = ARM_COLORS[arm]
        label = f"{arm}, run {run.get('index', NA)}, seed {run.get('seed', NA)}"
        for seg in segs:
            pts = [(f.x(x), f.y(y)) for x, y in seg]
            if len(pts) > 1:
                out.append(
                    svg.titled(
                        svg.polyline(
                            pts,
                            color,
                            stroke_width="1.8",
                            stroke_opacity="0.8",
                            class_="curve",
                            data_arm=arm,
                        ),
                        label,
                    )
                )
            out += [svg.circle(x, y, 2.2, color, fill_opacity="0.8") for x, y in pts]
    if is_num(target):
        out += _level_line(
            f, target, f"target {fmt_loss(target)}", RED, "6 4",
            class_="target", data_loss=f"{target:.6g}",
        )  # fmt: skip
    if not at_target:
        out += _matched_lines(f, pairs)
    words = "time to target" if at_target else "time to L*"
    for arm, pair, seconds, level in marks:
        x, y, color = f.x(seconds), f.y(level), ARM_COLORS[arm]
        out.append(svg.line(x, y, x, base, color, stroke_dasharray="2 3", stroke_width="1.2"))
        marker = svg.circle(
            x,
            y,
            5.0,
            color,
            stroke="white",
            stroke_width="1.5",
            class_="ttt",
            data_arm=arm,
            data_repeat=str(pair.get("repeat", "")),
            data_seconds=f"{seconds:.6g}",
            data_loss=f"{level:.6g}",
        )
        at = "" if at_target else f" {fmt_loss(level)}"
        tip = f"{arm} {words}{at}, pair {pair.get('repeat', NA)}: {fmt(seconds, '.2f')} s"
        out.append(svg.titled(marker, tip))
    legend = [
        (f"{arm} ({sum(1 for a, *_ in series if a == arm)} runs)", ARM_COLORS[arm], "line")
        for arm in ("baseline", "optimized")
        if any(a == arm for a, *_ in series)
    ]
    if is_num(target):
        legend.append(("target", RED, "dash"))
    if not at_target and levels:
        legend.append(("L* per pair", RED, "dash"))
    if marks:
        legend.append((words, svg.MUTED, "dot"))
    out += svg.legend(f.px, 20, legend)
    if pairs:
        shown = "time to target" if at_target else "time to matched loss L*"
        for k, arm in enumerate(("baseline", "optimized")):
            line = f"{shown}, {arm}: {ttt_text(pairs, arm)}"
            out.append(svg.text(f.px, 40 + 15 * k, line, svg.INK, font_weight="600"))
    elif at_target and not is_num(target):
        out.append(
            svg.text(f.px, 42, "no target: no baseline pair reached a final loss", svg.MUTED)
        )
    elif not at_target:
        out.append(
            svg.text(f.px, 42, "no matched loss: no pair finished with a final loss", svg.MUTED)
        )
    return svg.document(width, height, "Validation loss against training time", out)


def position_chart(comparison: dict) -> Markup | None:
    """Validation loss per position (last paired run of each arm) against the exact Bayes floor
    per position: where in the sequence each arm falls short of what context allows."""
    bench = as_dict(comparison.get("bench"))
    series = []  # (key, label, values, color, dash, width)
    for arm in ("baseline", "optimized"):
        run = last_pair_run(comparison, arm)
        values = as_list(get_path(run, "result", "val_loss_per_position"))
        if any(is_num(v) for v in values):
            label = f"{arm} (run {run.get('index', NA) if run else NA})"
            series.append((arm, label, values, ARM_COLORS[arm], None, "2"))
    if not series:
        return None
    for key, label, color, dash in (
        ("unigram_per_position", "unigram loss", svg.MUTED, "2 3"),
        ("floor_per_position", "Bayes floor", GREEN, "6 4"),
    ):
        values = as_list(bench.get(key))
        if any(is_num(v) for v in values):
            series.append((key, label, values, color, dash, "1.6"))
    points = [(i, v) for *_, values, _, _, _ in series for i, v in enumerate(values) if is_num(v)]
    yt = svg.nice_ticks(min(v for _, v in points), max(v for _, v in points))
    last = max(i for i, _ in points)
    xt = [t for t in svg.nice_ticks(0, last, 6, integer=True) if t <= last]
    width, height = 600, 330
    f = svg.Frame(70, 44, width - 90, height - 100, (0, last or 1), (yt[0], yt[-1]))
    out = svg.y_axis(f, yt, "validation loss (nats)")
    out += svg.x_axis(f, xt, "position in the sequence (0 = first predicted token)")
    for key, _, values, color, dash, stroke in series:
        for seg in _segments(values):
            pts = [(f.x(i), f.y(v)) for i, v in seg]
            if len(pts) > 1:
                out.append(
                    svg.polyline(
                        pts,
                        color,
                        stroke_width=stroke,
                        stroke_dasharray=dash,
                        class_="series",
                        data_series=key,
                        data_points=str(len(pts)),
                    )
                )
            else:
                out += [
                    svg.circle(x, y, 2.5, color, class_="series", data_series=key) for x, y in pts
                ]
    style = {None: "line", "6 4": "dash", "2 3": "dotted"}
    out += svg.legend(f.px, 20, [(label, c, style[d]) for _, label, _, c, d, _ in series])
    return svg.document(width, height, "Validation loss per position", out)


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
        seconds = [t for r in runs for t in as_list(r["result"].get("step_times")) if is_num(t)]
        ms = [v for v in (1000.0 * t for t in seconds) if is_num(v)]  # 1e308 s is inf ms
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


SPEEDUP_ROWS = (  # (estimate, row label, what it times: None for ttt_words)
    ("time_to_target", "at equal quality", None),
    ("speedup", "end to end", "end-to-end time"),
)


def _speedup_row(comparison: dict, key: str) -> dict[str, Any]:
    est = estimate(comparison, key)
    values = as_list(est.get("values"))
    return {
        "point": to_percent(est.get("point")),
        "low": to_percent(est.get("low")),
        "high": to_percent(est.get("high")),
        "pairs": [to_percent(v) for v in values if is_num(v)],
        "infinite": sum(1 for v in values if not is_num(v)),  # 2.0: -inf, target not reached
        "level": est.get("level"),
        "n": est.get("n", NA),
    }


def speedup_chart(comparison: dict) -> Markup | None:
    """(c) Speedup at equal quality (time to matched loss; 2.0: to target) and end to end:
    geometric mean, CI and each pair, against the threshold and the A/A noise band (percent)."""
    rows = [
        (label, what or ttt_words(comparison), _speedup_row(comparison, key))
        for key, label, what in SPEEDUP_ROWS
    ]
    if not any(r["point"] is not None or r["pairs"] for *_, r in rows):
        return None
    aa = to_percent(get_path(comparison, "noise", "aa"))
    threshold = get_path(comparison, "config", "criteria", "min_speedup_percent")
    core = [0.0, *((-aa, aa) if aa else ())]
    for *_, r in rows:
        core += [v for v in (r["point"], r["low"], r["high"], *r["pairs"]) if v is not None]
    lo, hi = min(core), max(core)
    span = max(hi - lo, 1.0)
    # A threshold far outside the data would squash it: then it is named at the edge instead.
    on_scale = is_num(threshold) and lo - span <= threshold <= hi + span
    if on_scale:
        lo, hi = min(lo, threshold), max(hi, threshold)
    pad = 0.04 * max(hi - lo, 1.0)  # keep marks off the frame's edges
    xt = svg.nice_ticks(lo - pad, hi + pad, 8)
    width, height = 1160, 300
    f = svg.Frame(150, 44, width - 180, 190, (xt[0], xt[-1]), (0.0, 1.0))
    color = ARM_COLORS["optimized"]
    out = []
    if aa is not None:
        band = max(1.0, f.x(aa) - f.x(-aa))
        out.append(svg.rect(f.x(-aa), f.py, band, f.ph, AMBER, fill_opacity="0.2"))
        aa_label = f"A/A noise ±{fmt(aa, '.1f')}%"
        out.append(svg.text(f.x(aa) + 4, f.py + f.ph - 6, aa_label, "#8a6d00"))
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
    for k, (label, what, r) in enumerate(rows):
        y = f.py + f.ph * (k + 0.5) / len(rows)
        point, low, high = r["point"], r["low"], r["high"]
        out.append(svg.text(f.px - 10, y + 4, label, svg.INK, "end", font_weight="600"))
        has_ci = low is not None and high is not None
        if has_ci:
            out.append(
                svg.line(f.x(low), y, f.x(high), y, color, stroke_width="6", stroke_opacity="0.5")
            )
            for v in (low, high):
                out.append(svg.line(f.x(v), y - 10, f.x(v), y + 10, color, stroke_width="2"))
                out.append(svg.text(f.x(v), y - 15, fmt_pct(v), color, "middle"))
        out += [svg.circle(f.x(v), y + 20, 3.5, "white", stroke=color) for v in r["pairs"]]
        if r["infinite"]:
            missed = "target not reached" if judged_at_target(comparison) else "no value"
            out.append(
                svg.text(f.px + 4, y + 24, f"◀ {r['infinite']} pair(s) at -∞: {missed}", RED)
            )
        if point is not None:
            out.append(
                svg.circle(
                    f.x(point), y, 6.0, color, stroke="white", class_="point", data_row=label
                )
            )
        level = fmt(to_percent(r["level"]), ".0f")
        ci_text = f"{level}% CI [{fmt_pct(low)}, {fmt_pct(high)}]" if has_ci else "CI n/a"
        n = r["n"]
        summary = (
            f"{what}: geometric mean {fmt_pct(point)} · {ci_text} · n={n} "
            f"pair{'' if n == 1 else 's'}"
        )
        out.append(
            svg.text(f.px + 6, y - 32, summary, svg.INK, class_="row-summary", data_row=label)
        )
    legend = [("geometric mean, CI", color, "line"), ("each pair", color, "dot")]
    if is_num(threshold):
        legend.append(("threshold", RED, "dash"))
    if aa is not None:
        legend.append(("A/A noise band", AMBER, "box"))
    out += svg.legend(f.px, 20, legend)
    return svg.document(width, height, "Speedup with confidence interval", out, css="wide")


def equivalence_chart(comparison: dict) -> Markup | None:
    """The paired validation-loss delta: its CI against the margin (schema 3.0: non-inferior
    when the upper bound lies below +margin, the +-margin TOST band beside; 2.0: the TOST band
    alone), with the baseline's seed-to-seed spread for scale (nats)."""
    est = estimate(comparison, "loss_delta")
    point, low, high = est.get("point"), est.get("low"), est.get("high")
    has_ci = is_num(low) and is_num(high)
    if not is_num(point) and not has_ci:
        return None
    margin = est.get("margin")
    if not is_num(margin):
        margin = get_path(comparison, "config", "criteria", "max_loss_delta")
    spread = est.get("baseline_spread")
    pairs = [v for v in as_list(est.get("values")) if is_num(v)]
    extent = [abs(v) for v in (point, low, high, margin, spread, *pairs) if is_num(v)]
    m = 1.15 * max(extent) or 1.0
    xt = svg.nice_ticks(-m, m, 8)
    width, height = 560, 170
    f = svg.Frame(20, 48, width - 40, 70, (xt[0], xt[-1]), (0.0, 1.0))
    color = ARM_COLORS["optimized"]
    non_inferiority = not judged_at_target(comparison)
    named = False  # the inferior region carries its name (else the legend does)
    out = []
    if is_num(margin):
        a, b = f.x(-abs(margin)), f.x(abs(margin))
        out.append(svg.rect(a, f.py, b - a, f.ph, GREEN, fill_opacity="0.12", class_="margin"))
        for x in (a, b):
            out.append(svg.line(x, f.py, x, f.py + f.ph, GREEN, stroke_dasharray="6 4"))
        label = f"margin ±{fmt(abs(margin), '.4f')}"
        if non_inferiority:  # the criterion's bound: worse than +margin is inferior
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
    if is_num(spread) and spread > 0:
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
    y = f.py + f.ph * 0.45
    if has_ci:
        out.append(
            svg.line(
                f.x(low),
                y,
                f.x(high),
                y,
                color,
                stroke_width="6",
                stroke_opacity="0.5",
                class_="ci",
            )
        )
        for v in (low, high):
            out.append(svg.line(f.x(v), y - 9, f.x(v), y + 9, color, stroke_width="2"))
    out += [svg.circle(f.x(v), y + 16, 3.0, "white", stroke=color) for v in pairs]
    if is_num(point):
        out.append(svg.circle(f.x(point), y, 5.5, color, stroke="white", class_="point"))
    level = fmt(to_percent(est.get("level")), ".0f")
    ci_text = f"{level}% CI [{fmt_loss_delta(low)}, {fmt_loss_delta(high)}]" if has_ci else "CI n/a"
    heading = f"mean {fmt_loss_delta(point)} · {ci_text}"
    verdict = est.get("non_inferior")
    if non_inferiority and isinstance(verdict, bool):
        heading += " · non-inferior" if verdict else " · NOT non-inferior"
    out.append(svg.text(f.px, 18, heading, svg.INK, font_weight="600"))
    legend = [("mean, CI", color, "line"), ("each pair", color, "dot")]
    if is_num(margin):
        legend.append(("margin", GREEN, "dash"))
        if non_inferiority and not named:
            legend.append(("inferior", RED, "box"))
    if is_num(spread) and spread > 0:
        legend.append((f"baseline spread ±{fmt(spread, '.4f')}", AMBER, "box"))
    out += svg.legend(f.px, 36, legend)
    against = "the non-inferiority margin" if non_inferiority else "the equivalence margin"
    return svg.document(width, height, f"Validation loss delta against {against}", out)


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
    """Speedup (at equal quality, end to end) and loss delta of each run, oldest first: CI
    whiskers, this run hollow; a run without a value (e.g. schema 1.0: no time to target) has
    no point in that panel."""
    if len(points) < 2:
        return None
    width, height, n = 1160, 270, len(points)
    every = max(1, math.ceil(n / 16))  # at most 16 tick labels per panel
    ticks = [i for i in range(n) if i % every == 0 or i == n - 1]
    color = ARM_COLORS["optimized"]
    out = []
    panels = (
        ("ttt", "speedup at equal quality (%)"),
        ("speedup", "end-to-end speedup (%)"),
        ("loss_delta", "validation loss delta (nats)"),
    )
    cell = width / len(panels)
    for col, (key, label) in enumerate(panels):
        vals = [p[k] for p in points for k in (key, key + "_low", key + "_high") if is_num(p[k])]
        yt = svg.nice_ticks(min([0.0, *vals]), max([0.0, *vals]), 5)
        x0 = 80 + col * cell
        f = svg.Frame(x0, 40, cell - 100, height - 110, (-0.5, n - 0.5), (yt[0], yt[-1]))
        out += svg.y_axis(f, yt, label)
        out += svg.x_axis(
            f, ticks, "run # (oldest first, as below)", show=lambda i: f"#{int(i) + 1}"
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
    title = "History: speedup and loss delta per run"
    return svg.document(width, height, title, out, css="wide")
