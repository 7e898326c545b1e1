"""What each chart shows, as typed data read from the typed comparison (None when it has no
data).

Each builder here reads the comparison (ryot.comparison.model) and returns a small model: the
series, levels, interval rows, boxes or bars in data units, with their colours and words.
charts.py draws a model and nothing else, so the numbers a chart carries can be checked on its
model.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from ryot.comparison.measurements import Estimate, MatchedPair
from ryot.comparison.model import Comparison
from ryot.comparison.numbers import num
from ryot.comparison.runs import CurvePoint, Run
from ryot.report.chart_parts import (
    GREEN,
    RED,
    STATUS_COLORS,
    Bar,
    IntervalRow,
    LegendItem,
    Level,
    Point,
    Series,
    arm_color,
    segments,
    thin,
)
from ryot.report.fields import arm_names, arm_sort_key
from ryot.report.formatting import (
    NA,
    fmt_ci,
    fmt_loss,
    fmt_loss_delta,
    fmt_pct,
    fmt_text,
    is_num,
    to_percent,
)
from ryot.report.summary import time_to_loss_text, time_to_loss_words
from ryot.report.svg import MUTED

ARMS = ("baseline", "optimized")


def _reference_levels(c: Comparison, what: str) -> tuple[Level, ...]:
    """The bench's reference losses as level lines: unigram (dotted) and Bayes floor."""
    levels = []
    for key, value, label, color, dash in (
        ("unigram_loss", c.unigram_loss, "unigram loss", MUTED, "2 3"),
        ("bayes_floor", c.bayes_floor, "Bayes floor", GREEN, "6 4"),
    ):
        if is_num(value):
            text = f"{label} {what} {fmt_loss(value)}"
            attrs = {"class_": key, "data_value": f"{value:.6g}"}
            levels.append(Level(value, text, color, dash, attrs))
    return tuple(levels)


# --- (a) training loss per step ------------------------------------------------------------


@dataclass(frozen=True)
class LossChart:
    """Every run's training loss per optimizer step (x: the step, from 1); the other runs faint
    and first, the run that stands for each arm (never the A/A run) on top; the reference
    losses as levels."""

    series: tuple[Series, ...]
    levels: tuple[Level, ...]
    legend: tuple[LegendItem, ...]


def loss_model(c: Comparison) -> LossChart | None:
    runs = []  # (arm, run, segments, the run that stands for the arm)
    for arm in ARMS:
        last = c.last_run(arm)
        for run in c.arm_runs(arm):
            segs = segments(run.result.step_losses, x0=1)
            runs.append((arm, run, segs, run is last))
    if not any(segs for _, _, segs, _ in runs):
        return None
    few = sum(len(seg) for _, _, segs, _ in runs for seg in segs) <= 120
    series = [
        Series(
            arm,
            f"{arm} (run {run.index})",
            arm_color(arm),
            segs,
            width="2.2" if last else "1.2",
            opacity=None if last else "0.3",
            dots=2.5 if last and few else None,
            dot_opacity=None if last else "0.3",
        )
        for bold in (False, True)  # faint other runs first, each arm's own run on top
        for arm, run, segs, last in runs
        if last == bold
    ]
    legend: list[LegendItem] = []
    for arm in ARMS:
        last = c.last_run(arm)
        if last is not None:
            legend.append((f"{arm} (run {last.index})", arm_color(arm), "line"))
    if any(not last for *_, last in runs):
        legend.append(("earlier runs", MUTED, "faint"))
    levels = _reference_levels(c, "(validation)")
    return LossChart(tuple(series), levels, tuple(legend))


# --- validation loss against the training clock --------------------------------------------


@dataclass(frozen=True)
class TimeMark:
    """An arm's time to the loss its pair is judged at, marked on that loss."""

    arm: str
    repeat: Any  # None when the pair has none
    seconds: float
    loss: float
    color: str


@dataclass(frozen=True)
class CurveChart:
    series: tuple[Series, ...]  # every paired run's validation curve (x: its clock, s)
    at_target: bool  # schema 2.0: one target; 3.0: each pair's matched loss
    target: Level | None
    matched: tuple[MatchedPair, ...]  # 3.0 only: each with a loss
    marks: tuple[TimeMark, ...]
    legend: tuple[LegendItem, ...]
    times: tuple[str, ...]  # each arm's times in words
    missing: str | None  # why there are none
    clock: str  # what the clock includes

    @property
    def levels(self) -> list[float]:
        """The losses pairs are judged at: the target, else each pair's L*."""
        if self.at_target:
            return [self.target.value] if self.target else []
        return [m.loss for m in self.matched]


def _curve_runs(c: Comparison, arm: str) -> list[Run]:
    """The arm's paired runs; a single-arm run (no pair) shows its own runs instead."""
    return c.pair_runs(arm) or [r for r in c.arm_runs(arm) if r.role != "aa"]


def _curve_segments(curve: Sequence[CurvePoint]) -> tuple[tuple[Point, ...], ...]:
    """(clock_s, val_loss) runs of a curve; a null loss (or a malformed point) breaks the line."""
    pieces: list[list[Point]] = [[]]
    for _, p in thin(curve):
        if is_num(p.clock_s) and is_num(p.val_loss):
            pieces[-1].append((float(p.clock_s), float(p.val_loss)))
        elif pieces[-1]:
            pieces.append([])
    return tuple(tuple(p) for p in pieces if p)


def curve_model(c: Comparison) -> CurveChart | None:
    series = [
        Series(
            arm,
            f"{arm}, run {fmt_text(run.index)}, seed {fmt_text(run.seed)}",
            arm_color(arm),
            segs,
            width="1.8",
            opacity="0.8",
            dots=2.2,
            dot_opacity="0.8",
            title=f"{arm}, run {fmt_text(run.index)}, seed {fmt_text(run.seed)}",
            line_attrs={"class_": "curve", "data_arm": arm},
        )
        for arm in ARMS
        for run in _curve_runs(c, arm)
        if (segs := _curve_segments(run.result.curve))
    ]
    if not series:
        return None
    at_target = c.at_target
    m = c.measurements
    pairs = m.matched_loss.pairs if m and m.matched_loss else ()
    target = None
    loss = m.target.loss if at_target and m and m.target else None
    if is_num(loss):
        attrs = {"class_": "target", "data_loss": f"{loss:.6g}"}
        target = Level(loss, f"target {fmt_loss(loss)}", RED, "6 4", attrs)
    matched = [] if at_target else [p for p in pairs if is_num(p.loss)]
    marks = [  # each pair's loss: its matched loss L* (judged at one target: the target)
        TimeMark(arm, p.repeat, p.seconds(arm), p.loss, arm_color(arm))
        for p in pairs
        if is_num(p.loss)
        for arm in ARMS
        if is_num(p.seconds(arm))
    ]
    legend: list[LegendItem] = [
        (f"{arm} ({sum(1 for s in series if s.key == arm)} runs)", arm_color(arm), "line")
        for arm in ARMS
        if any(s.key == arm for s in series)
    ]
    if target:
        legend.append(("target", RED, "dash"))
    if matched:
        legend.append(("L* per pair", RED, "dash"))
    if marks:
        legend.append(("time to target" if at_target else "time to L*", MUTED, "dot"))
    times: tuple[str, ...] = ()
    missing = None
    if pairs:
        shown = "time to target" if at_target else "time to matched loss L*"
        times = tuple(f"{shown}, {arm}: {time_to_loss_text(pairs, arm)}" for arm in ARMS)
    elif at_target and not target:
        missing = "no target: no baseline pair reached a final loss"
    elif not at_target:
        missing = "no matched loss: no pair finished with a final loss"
    clock = "setup included, evaluation off the clock"
    if not at_target:
        clock = "setup included, machine stalls and evaluation off the clock"
    return CurveChart(
        tuple(series),
        at_target,
        target,
        tuple(matched),
        tuple(marks),
        tuple(legend),
        times,
        missing,
        clock,
    )


# --- validation loss per position ----------------------------------------------------------


@dataclass(frozen=True)
class PositionChart:
    """Each arm's last paired run's validation loss per position (x: the position, from 0),
    with the bench's unigram loss and Bayes floor per position."""

    series: tuple[Series, ...]
    last: int  # the last position with a value
    low: float  # the smallest and largest value, every position (the lines may be thinned)
    high: float

    @property
    def legend(self) -> list[LegendItem]:
        return [s.legend for s in self.series]


def _position_series(key: str, label: str, values: Sequence, color: str, dash, width) -> Series:
    attrs = {"class_": "series", "data_series": key}
    return Series(
        key,
        label,
        color,
        segments(values),
        width=width,
        dash=dash,
        line_attrs=attrs,
        dot_attrs=attrs,
        count_points=True,
    )


def position_model(c: Comparison) -> PositionChart | None:
    series, shown = [], []
    for arm in ARMS:
        run = c.last_run(arm)
        values = run.result.val_loss_per_position if run else ()
        if any(is_num(v) for v in values):
            label = f"{arm} (run {fmt_text(run.index)})"
            series.append(_position_series(arm, label, values, arm_color(arm), None, "2"))
            shown.append(values)
    if not series:
        return None
    bench = c.bench
    for key, values, label, color, dash in (
        ("unigram_per_position", bench and bench.unigram_per_position, "unigram loss", MUTED,
         "2 3"),
        ("floor_per_position", bench and bench.floor_per_position, "Bayes floor", GREEN, "6 4"),
    ):  # fmt: skip
        if any(is_num(v) for v in values or ()):
            series.append(_position_series(key, label, values, color, dash, "1.6"))
            shown.append(values)
    points = [(i, v) for values in shown for i, v in enumerate(values) if is_num(v)]
    last = max(i for i, _ in points)
    return PositionChart(tuple(series), last, min(v for _, v in points), max(v for _, v in points))


# --- (b) step times ------------------------------------------------------------------------


@dataclass(frozen=True)
class Box:
    """One arm's step times in ms: the judge's extremes and quartiles (comparison.json's
    step_time_summary), and each step (every run but the warm-up)."""

    arm: str
    color: str
    ms: tuple[float, ...]
    low: float
    q1: float
    median: float
    q3: float
    high: float


@dataclass(frozen=True)
class StepTimeChart:
    boxes: tuple[Box, ...]

    @property
    def log(self) -> bool:
        """Compile or warmup outliers: a log axis keeps the boxes visible."""
        lo, hi = min(b.low for b in self.boxes), max(b.high for b in self.boxes)
        return lo > 0 and hi / lo > 50


def _ms(seconds: Any) -> float | None:
    """Seconds shown in ms; None for what is no number in ms (1e308 s is infinite ms)."""
    return num(1000.0 * seconds) if is_num(seconds) else None


def step_time_model(c: Comparison) -> StepTimeChart | None:
    data = []
    for arm in arm_names(c):
        s = c.step_time_summary.get(arm)
        stats = [_ms(x) for x in (s.min_s, s.q1_s, s.median_s, s.q3_s, s.max_s)] if s else []
        steps = [
            v for r in c.arm_runs(arm) for t in r.result.step_times if (v := _ms(t)) is not None
        ]
        if steps and stats and None not in stats:
            data.append((arm, steps, stats))
    if not data:
        return None
    arms = [a for a, *_ in data]
    boxes = [Box(arm, arm_color(arm, arms), tuple(ms), *stats) for arm, ms, stats in data]
    return StepTimeChart(tuple(boxes))


# --- (c) the speedups ----------------------------------------------------------------------


@dataclass(frozen=True)
class SpeedupChart:
    """The speedup at equal quality and end to end (percent): each an interval row, against
    the threshold (the CI's lower bound must reach it) and the A/A noise band (+-aa)."""

    rows: tuple[IntervalRow, ...]
    threshold: float | None
    aa: float | None
    at_target: bool


def _speedup_row(est: Estimate | None, label: str, what: str) -> IntervalRow:
    est = est or Estimate()
    point, low, high = (to_percent(x) for x in (est.point, est.low, est.high))
    n = NA if est.n is None else est.n
    ci = fmt_ci(est.level, low, high, fmt_pct) if low is not None and high is not None else "CI n/a"
    summary = f"{what}: geometric mean {fmt_pct(point)} · {ci} · n={n} pair{'' if n == 1 else 's'}"
    return IntervalRow(
        label,
        point,
        low,
        high,
        arm_color("optimized"),
        pairs=tuple(to_percent(v) for v in est.values if is_num(v)),
        level=est.level,
        n=n,
        infinite=sum(1 for v in est.values if not is_num(v)),  # 2.0: -inf, target not reached
        summary=summary,
    )


def speedup_model(c: Comparison) -> SpeedupChart | None:
    m = c.measurements
    rows = (  # at equal quality, then end to end
        _speedup_row(m and m.matched_loss, "at equal quality", time_to_loss_words(c)),
        _speedup_row(m and m.speedup, "end to end", "end-to-end time"),
    )
    if not any(r.point is not None or r.pairs for r in rows):
        return None
    threshold = c.config.criteria.min_speedup_percent
    return SpeedupChart(rows, threshold, to_percent(c.noise and c.noise.aa), c.at_target)


# --- the loss delta against its margin -----------------------------------------------------


@dataclass(frozen=True)
class EquivalenceChart:
    """The paired validation-loss delta (nats) as an interval row, against the margin: schema
    3.0 non-inferiority (upper bound below +margin, TOST's +-margin beside), 2.0 TOST alone;
    the baseline's seed-to-seed spread for scale."""

    row: IntervalRow
    margin: float | None
    spread: float | None
    non_inferiority: bool
    non_inferior: bool | None  # the judge's reading, None when not recorded

    @property
    def heading(self) -> str:
        r = self.row
        ci = fmt_ci(r.level, r.low, r.high, fmt_loss_delta) if r.has_ci else "CI n/a"
        text = f"mean {fmt_loss_delta(r.point)} · {ci}"
        if self.non_inferiority and isinstance(self.non_inferior, bool):
            text += " · non-inferior" if self.non_inferior else " · NOT non-inferior"
        return text


def equivalence_model(c: Comparison) -> EquivalenceChart | None:
    est = (c.measurements and c.measurements.loss_delta) or None
    if est is None or (est.point is None and (est.low is None or est.high is None)):
        return None
    row = IntervalRow(
        "loss delta",
        est.point,
        est.low,
        est.high,
        arm_color("optimized"),
        pairs=tuple(v for v in est.values if is_num(v)),
        level=est.level,
        n=NA if est.n is None else est.n,
    )
    return EquivalenceChart(row, est.margin, est.baseline_spread, not c.at_target,
                            est.non_inferior)  # fmt: skip


# --- (d) the ablation ----------------------------------------------------------------------


@dataclass(frozen=True)
class AblationChart:
    """Each ablation arm (and the full stack) against the baseline: speedup and loss delta."""

    speed: tuple[Bar, ...]
    loss: tuple[Bar, ...]


def ablation_model(c: Comparison) -> AblationChart | None:
    if not c.ablation:
        return None
    names = sorted(c.ablation, key=arm_sort_key)
    rows = [(a, c.ablation[a], arm_color(a, names)) for a in names]
    speed = [Bar(a, row.speedup_percent, color) for a, row, color in rows]
    loss = [Bar(a, row.loss_delta, color) for a, row, color in rows]
    if c.comparison is not None:
        color = arm_color("optimized")
        speed.append(Bar("optimized (all)", c.comparison.speedup_percent, color))
        loss.append(Bar("optimized (all)", c.comparison.loss_delta, color))
    return AblationChart(tuple(speed), tuple(loss))


# --- the history ---------------------------------------------------------------------------


@dataclass(frozen=True)
class HistoryPoint:
    """One run of the history in one panel: its value and CI (None where it has none)."""

    index: int  # 0 = the oldest
    value: float | None
    low: float | None
    high: float | None
    ring: str  # the verdict's colour
    current: bool  # this run (drawn hollow)


@dataclass(frozen=True)
class HistoryPanel:
    key: str
    label: str
    points: tuple[HistoryPoint, ...]

    @property
    def line(self) -> Series:
        """The runs with a value, joined (x: the run's index)."""
        color = arm_color("optimized")
        seg = tuple((p.index, p.value) for p in self.points if p.value is not None)
        return Series(self.key, self.label, color, (seg,), width="1.5", lone_dot=None)


@dataclass(frozen=True)
class HistoryChart:
    panels: tuple[HistoryPanel, ...]
    runs: int
    color: str  # the whiskers'


HISTORY_PANELS = (
    ("ttt", "speedup at equal quality (%)"),
    ("speedup", "end-to-end speedup (%)"),
    ("loss_delta", "validation loss delta (nats)"),
)


def history_model(points: Sequence[dict]) -> HistoryChart | None:
    """From the history's points (context.history_context: each run's numbers, oldest first);
    None for fewer than two runs."""
    if len(points) < 2:
        return None
    color = arm_color("optimized")
    panels = tuple(
        HistoryPanel(
            key,
            label,
            tuple(
                HistoryPoint(
                    i,
                    num(p[key]),
                    num(p[key + "_low"]),
                    num(p[key + "_high"]),
                    STATUS_COLORS.get(p["status"], color),
                    p["current"],
                )
                for i, p in enumerate(points)
            ),
        )
        for key, label in HISTORY_PANELS
    )
    return HistoryChart(panels, len(points), color)
