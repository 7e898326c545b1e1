"""Numbers in words: one formatting rule per kind of quantity, "n/a" for null."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any

from ryot.comparison.numbers import is_num

__all__ = ["NA", "as_dict", "as_list", "is_num"]  # with every fmt_*: what evidence rows get

NA = "n/a"


# An optimization's own evidence measurements are its registration's to read (evidence_rows
# gets this module): any value may be missing or of another type.
def as_list(x: Any) -> list:
    return x if isinstance(x, list) else []


def as_dict(x: Any) -> dict:
    return x if isinstance(x, dict) else {}


def fmt(x: Any, spec: str = ".2f", suffix: str = "") -> str:
    """`x` formatted with `spec`, or n/a for null/non-numbers. Never prints "-0.0"."""
    if not is_num(x):
        return NA
    text = format(x, spec)
    if text[:1] == "-" and text[1:].strip("0.,") == "":  # a negative value that rounds to 0
        text = ("+" if "+" in spec else "") + text[1:]
    return text + suffix


def fmt_text(x: Any) -> str:
    """A value in words as it is (a label, a count, a seed), n/a for null."""
    return NA if x is None else str(x)


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
    return fmt_pct(x * 100.0 if is_num(x) else None, signed)


def fmt_int(x: Any) -> str:
    return fmt(x, ",.0f")


def fmt_ms(x_seconds: Any) -> str:
    return fmt(x_seconds * 1000.0 if is_num(x_seconds) else None, ".2f", " ms")


def fmt_duration(x: Any) -> str:
    """Seconds in the unit that keeps 2 decimals meaningful (benchmark timings)."""
    if not is_num(x):
        return NA
    for scale, unit in ((1.0, "s"), (1e-3, "ms"), (1e-6, "µs")):
        if abs(x) >= scale:
            return f"{x / scale:.2f} {unit}"
    return f"{x / 1e-9:.2f} ns"


SIGNED_CRITERIA = {"matched_loss_speedup", "speedup", "throughput", "loss_match"}


def fmt_criterion_value(value: Any, unit: str, criterion_id: str = "") -> str:
    """A criterion's measured value (or CI bound) in its own unit."""
    if not is_num(value):
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


def to_percent(v: Any) -> float | None:
    """A fraction (0.05) as a percentage (5.0); None for null or non-numbers."""
    return v * 100.0 if is_num(v) else None


def fmt_list(values: Any) -> str:
    """A list as "a, b, c" ("(none)" when empty); n/a for null."""
    if isinstance(values, list):
        return ", ".join(str(v) for v in values) if values else "(none)"
    return NA if values is None else str(values)


def fmt_change(improvement: Any, relative: Any) -> str:
    """The judge's change of the optimized arm on the baseline (ryot.comparison.rules.change),
    absolute (relative): "+0.08 (+4.7%)", positive is better; n/a without both."""
    if not (is_num(improvement) and is_num(relative)):
        return NA
    return f"{fmt(improvement, '+.2f')} ({fmt_frac_pct(relative)})"


def fmt_level(level: Any) -> str:
    """A confidence level (0.95) as "95"; n/a for null."""
    return fmt(to_percent(level), ".0f")


def fmt_ci(level: Any, low: Any, high: Any, show: Callable[[Any], str] = fmt_frac_pct) -> str:
    """A confidence interval in words, "95% CI [-0.2%, +7.4%]"; a null bound reads n/a."""
    return f"{fmt_level(level)}% CI [{show(low)}, {show(high)}]"
