"""The parts several charts share, as data and as SVG: a series (a broken polyline with its
legend entry), a labelled level line, an interval row (a point with its CI whisker and each
pair), a bar, and the colours.

The data classes hold data coordinates and colours only; the draw functions turn them into
escaped SVG elements (ryot.report.svg) inside a Frame.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from ryot.comparison.numbers import is_num
from ryot.optim import registry
from ryot.report import svg
from ryot.report.formatting import NA

MAX_POINTS = 800  # per series / per strip: larger series are thinned by a fixed stride
STATUS_COLORS = {"GO": "#2b8a3e", "INVESTIGATE": "#e67700", "DEBUG": "#c92a2a"}
OTHER_COLORS = ("#a61e4d", "#5c940d", "#1098ad", "#e67700")
RED = "#c92a2a"
AMBER = "#fab005"
GREEN = "#2b8a3e"

Point = tuple[float, float]
LegendItem = tuple[str, str, str]  # (label, color, style): see svg.legend


def arm_color(arm: str, arms: Sequence[str] = ()) -> str:
    """The registry's colour of the arm (ryot.optim.registry); an arm it does not know (an
    older run's, a user's stack's) takes the next of OTHER_COLORS in the order of `arms`."""
    color = registry.arm_color(arm)
    if color is not None:
        return color
    others = [a for a in arms if registry.arm_color(a) is None]
    i = others.index(arm) if arm in others else 0
    return OTHER_COLORS[i % len(OTHER_COLORS)]


def thin(values: Sequence[Any], limit: int = MAX_POINTS) -> list[tuple[int, Any]]:
    """(index, value) pairs, every k-th when there are more than `limit` (the SVG stays small)."""
    stride = max(1, math.ceil(len(values) / limit))
    return [(i, v) for i, v in enumerate(values) if i % stride == 0]


def segments(values: Sequence[Any], x0: int = 0) -> tuple[tuple[Point, ...], ...]:
    """Runs of consecutive numeric values as (x0 + index, value) points; null or NaN breaks a
    line; thinned if long."""
    pieces: list[list[Point]] = [[]]
    for i, v in thin(values):
        if is_num(v):
            pieces[-1].append((x0 + i, float(v)))
        elif pieces[-1]:
            pieces.append([])
    return tuple(tuple(p) for p in pieces if p)


# --- a series --------------------------------------------------------------------------------

LEGEND_STYLES = {None: "line", "6 4": "dash", "2 3": "dotted"}


@dataclass(frozen=True)
class Series:
    """One line of a chart in data coordinates: its segments (a gap breaks the line), its look
    and its legend entry."""

    key: str
    label: str
    color: str
    segments: tuple[tuple[Point, ...], ...]
    width: str = "2"
    dash: str | None = None
    opacity: str | None = None  # of the line and of its dots
    dots: float | None = None  # radius of a dot at every point; None: a lone point's alone
    lone_dot: float | None = 2.5  # radius of the dot a one-point segment is drawn as
    dot_opacity: str | None = None
    title: str | None = None  # the line's tooltip
    line_attrs: Mapping[str, str] = field(default_factory=dict)
    dot_attrs: Mapping[str, str] = field(default_factory=dict)
    count_points: bool = False  # data-points="n" on each line

    @property
    def points(self) -> list[Point]:
        return [p for seg in self.segments for p in seg]

    @property
    def legend(self) -> LegendItem:
        return (self.label, self.color, LEGEND_STYLES.get(self.dash, "line"))


def draw_series(f: svg.Frame, s: Series) -> list[str]:
    out = []
    for seg in s.segments:
        pts = [(f.x(x), f.y(y)) for x, y in seg]
        if len(pts) > 1:
            attrs = dict(s.line_attrs)
            if s.count_points:
                attrs["data_points"] = str(len(pts))
            line = svg.polyline(
                pts,
                s.color,
                stroke_width=s.width,
                stroke_dasharray=s.dash,
                stroke_opacity=s.opacity,
                **attrs,
            )
            out.append(svg.titled(line, s.title) if s.title else line)
        radius = s.dots if s.dots is not None else s.lone_dot if len(pts) == 1 else None
        if radius is not None:
            out += [
                svg.circle(x, y, radius, s.color, fill_opacity=s.dot_opacity, **s.dot_attrs)
                for x, y in pts
            ]
    return out


# --- a level line ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Level:
    """A labelled horizontal line across the plot at `value` (a reference loss, the target)."""

    value: float
    text: str
    color: str
    dash: str
    attrs: Mapping[str, str] = field(default_factory=dict)


def draw_level(f: svg.Frame, level: Level) -> list[str]:
    y = f.y(level.value)
    line = svg.line(
        f.px,
        y,
        f.px + f.pw,
        y,
        level.color,
        stroke_width="1.5",
        stroke_dasharray=level.dash,
        **level.attrs,
    )
    return [line, svg.text(f.px + f.pw - 4, y - 6, level.text, level.color, "end")]


# --- an interval row -------------------------------------------------------------------------


@dataclass(frozen=True)
class IntervalRow:
    """A point estimate with its confidence interval and each pair's value, one row of a chart
    (a speedup, a loss delta): None where the comparison has no number."""

    label: str
    point: float | None
    low: float | None
    high: float | None
    color: str
    pairs: tuple[float, ...] = ()
    level: float | None = None  # the CI's confidence (0.95)
    n: Any = NA  # how many pairs the estimate has
    infinite: int = 0  # pairs without a finite value (schema 2.0: the target not reached)
    summary: str = ""  # the row's line in words

    @property
    def has_ci(self) -> bool:
        return self.low is not None and self.high is not None


@dataclass(frozen=True)
class IntervalStyle:
    """How big an interval row is drawn."""

    tick: float = 10.0  # half the height of the CI's end ticks
    point_r: float = 6.0
    pair_dy: float = 20.0  # the pairs' dots lie this far under the row
    pair_r: float = 3.5
    bound_label: Callable[[Any], str] | None = None  # each bound's value over its tick
    ci_attrs: Mapping[str, str] = field(default_factory=dict)
    point_attrs: Mapping[str, str] = field(default_factory=dict)


def interval_whisker(f: svg.Frame, y: float, row: IntervalRow, style: IntervalStyle) -> list[str]:
    """The row's CI as a bar with end ticks (labelled, if the style says so), and a hollow dot
    per pair under it."""
    out = []
    color = row.color
    if row.has_ci:
        out.append(
            svg.line(
                f.x(row.low),
                y,
                f.x(row.high),
                y,
                color,
                stroke_width="6",
                stroke_opacity="0.5",
                **style.ci_attrs,
            )
        )
        for v in (row.low, row.high):
            out.append(
                svg.line(f.x(v), y - style.tick, f.x(v), y + style.tick, color, stroke_width="2")
            )
            if style.bound_label is not None:
                out.append(svg.text(f.x(v), y - 15, style.bound_label(v), color, "middle"))
    out += [
        svg.circle(f.x(v), y + style.pair_dy, style.pair_r, "white", stroke=color)
        for v in row.pairs
    ]
    return out


def interval_point(f: svg.Frame, y: float, row: IntervalRow, style: IntervalStyle) -> list[str]:
    """The row's point estimate, a filled dot on the whisker (none without a value)."""
    if row.point is None:
        return []
    return [
        svg.circle(f.x(row.point), y, style.point_r, row.color, stroke="white", **style.point_attrs)
    ]


def interval_row(f: svg.Frame, y: float, row: IntervalRow, style: IntervalStyle) -> list[str]:
    return interval_whisker(f, y, row, style) + interval_point(f, y, row, style)


# --- bars ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Bar:
    label: str
    value: float | None
    color: str


def hbar_panel(
    x0: float,
    width: float,
    bars: Sequence[Bar],
    title: str,
    show: Callable[[Any], str],
    top: float = 40,
    row_h: float = 30,
) -> list[str]:
    """Horizontal bars from zero (negative to the left), one row per bar."""
    vals = [b.value for b in bars if is_num(b.value)]
    lo, hi = min([0.0, *vals]), max([0.0, *vals])
    room = 0.25 * ((hi - lo) or 1.0)  # space beside the bars for their value labels
    xt = svg.nice_ticks(lo - room if lo < 0 else lo, hi + room if hi > 0 else hi, 4)
    f = svg.Frame(x0 + 100, top, width - 130, row_h * len(bars), (xt[0], xt[-1]), (0, 1))
    out = [svg.text(x0, top - 18, title, svg.INK, font_weight="600")]
    out += svg.x_axis(f, xt, "", grid=True)
    out.append(svg.line(f.x(0), f.py, f.x(0), f.py + f.ph, svg.MUTED))
    for k, bar in enumerate(bars):
        y = f.py + row_h * k + row_h / 2
        out.append(svg.text(f.px - 8, y + 4, bar.label, svg.INK, "end"))
        value = bar.value
        if not is_num(value):
            out.append(svg.text(f.x(0) + 4, y + 4, NA, svg.MUTED))
            continue
        a, b = sorted((f.x(0), f.x(value)))
        out.append(svg.rect(a, y - 9, max(b - a, 1.0), 18.0, bar.color, fill_opacity="0.8"))
        if value >= 0:
            out.append(svg.text(b + 4, y + 4, show(value), svg.INK, "start"))
        else:
            out.append(svg.text(a - 4, y + 4, show(value), svg.INK, "end"))
    return out
