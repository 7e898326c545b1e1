"""SVG building blocks: elements, scales, ticks, axes and legends for the report's charts.

Every element goes through `tag`, which escapes text and attribute values, so no text from
comparison.json reaches the page unescaped.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Sequence
from typing import Any

from markupsafe import Markup, escape

from ryot.report.formatting import fmt

GRID = "#e3e6ea"
INK = "#212529"
MUTED = "#6c757d"


def _coord(v: float) -> str:
    """A pixel coordinate to 0.1 px: precise enough to draw, and keeps the page small."""
    return f"{v:.1f}"


def tag(name: str, text: Any = None, /, **attrs: Any) -> str:
    """One escaped element. None attributes are left out; `stroke_width` is written
    `stroke-width` and a trailing _ is dropped (`class_`), so keywords can name attributes."""
    parts = []
    for key, value in attrs.items():
        if value is None:
            continue
        if isinstance(value, float):
            value = _coord(value)
        parts.append(f' {key.rstrip("_").replace("_", "-")}="{escape(str(value))}"')
    attr_text = "".join(parts)
    if text is None:
        return f"<{name}{attr_text}/>"
    return f"<{name}{attr_text}>{escape(str(text))}</{name}>"


def document(width: int, height: int, title: str, children: Iterable[str], css: str = "") -> Markup:
    body = tag("title", title) + "".join(children)
    head = tag(
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
    # Everything inside was escaped by tag: the string is safe to emit as markup.
    return Markup(head + body + "</svg>")


AXIS_LIMIT = 1e300


def nice_ticks(lo: float, hi: float, count: int = 5, integer: bool = False) -> list[float]:
    """Round tick values covering [lo, hi]; a degenerate range is widened around its value.

    integer=True keeps steps whole (1, 2, 5, 10, ...) for counts such as optimizer steps.
    """
    if not (math.isfinite(lo) and math.isfinite(hi)):
        lo, hi = 0.0, 1.0
    # Near float's limits (a step time of 1e308) hi - lo and 10**k overflow: clamp the axis.
    lo, hi = max(lo, -AXIS_LIMIT), min(hi, AXIS_LIMIT)
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


def log_ticks(lo: float, hi: float) -> list[float]:
    """Powers of ten covering [lo, hi] (both > 0), clamped to [1/AXIS_LIMIT, AXIS_LIMIT]."""
    lo = min(max(lo, 1.0 / AXIS_LIMIT), AXIS_LIMIT) if math.isfinite(lo) else 1.0
    hi = min(max(hi, lo), AXIS_LIMIT) if math.isfinite(hi) else AXIS_LIMIT
    first, last = math.floor(math.log10(lo)), math.ceil(math.log10(hi))
    return [10.0**e for e in range(first, max(last, first + 1) + 1)]


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


def titled(element: str, title: str) -> str:
    """A self-closing element from `tag`, with a tooltip: <circle ...><title>..</title></circle>."""
    name = element[1 : element.index(" ")]
    return element[:-2] + ">" + tag("title", title) + f"</{name}>"


def line(x1: float, y1: float, x2: float, y2: float, color: str, **attrs: Any) -> str:
    return tag("line", x1=x1, y1=y1, x2=x2, y2=y2, stroke=color, **attrs)


def text(x: float, y: float, text: str, color: str = INK, anchor: str | None = None, **a) -> str:
    return tag("text", text, x=x, y=y, fill=color, text_anchor=anchor, **a)


def circle(x: float, y: float, r: float, fill: str, **attrs: Any) -> str:
    return tag("circle", cx=x, cy=y, r=r, fill=fill, **attrs)


def rect(x: float, y: float, w: float, h: float, fill: str, **attrs: Any) -> str:
    return tag("rect", x=x, y=y, width=w, height=h, fill=fill, **attrs)


def polyline(points: Sequence[tuple[float, float]], color: str, **attrs: Any) -> str:
    coords = " ".join(f"{_coord(x)},{_coord(y)}" for x, y in points)
    return tag("polyline", points=coords, fill="none", stroke=color, **attrs)


def y_axis(f: Frame, ticks: Sequence[float], label: str) -> list[str]:
    show = (lambda v: f"{v:,g}") if f.ylog else tick_format(ticks)
    out = []
    for t in ticks:
        out.append(line(f.px, f.y(t), f.px + f.pw, f.y(t), GRID))
        out.append(text(f.px - 6, f.y(t) + 4, show(t), MUTED, "end"))
    out.append(line(f.px, f.py, f.px, f.py + f.ph, MUTED))
    widest = max((len(show(t)) for t in ticks), default=1)
    cx, cy = f.px - max(40.0, 16 + 6.6 * widest), f.py + f.ph / 2
    out.append(
        text(cx, cy, label, INK, "middle", transform=f"rotate(-90 {_coord(cx)} {_coord(cy)})")
    )
    return out


def x_axis(
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
            out.append(line(f.x(t), f.py, f.x(t), base, GRID))
        out.append(line(f.x(t), base, f.x(t), base + 4, MUTED))
        out.append(text(f.x(t), base + 17, show(t), MUTED, "middle"))
    out.append(line(f.px, base, f.px + f.pw, base, MUTED))
    out.append(text(f.px + f.pw / 2, base + 36, label, INK, "middle"))
    return out


def legend(x: float, y: float, items: Sequence[tuple[str, str, str]]) -> list[str]:
    """(label, color, style), left to right; style: line, dash, dotted, faint, dot (hollow), box."""
    out = []
    for label, color, style in items:
        if style == "box":
            out.append(rect(x, y - 10, 18.0, 11.0, color, fill_opacity="0.35"))
        elif style == "dot":
            out.append(circle(x + 9, y - 4, 3.5, "white", stroke=color))
        else:
            faint = style == "faint"
            out.append(
                line(
                    x,
                    y - 4,
                    x + 18,
                    y - 4,
                    color,
                    stroke_width="1.5" if faint else "2.5",
                    stroke_opacity="0.35" if faint else None,
                    stroke_dasharray={"dash": "5 4", "dotted": "2 3"}.get(style),
                )
            )
        out.append(text(x + 24, y, label))
        x += 36 + 6.4 * len(label)
    return out
