"""The one number guard: what counts as a measured number in comparison.json and beside it.

A number is a finite real that is not a bool (True is an int to Python, never a measurement).
JSON has no NaN or infinity, so the judge writes a non-finite value as null (`finite`), and every
reader treats anything else in a number's place (null, a string, a list, NaN) as no number.
"""

from __future__ import annotations

import math
from numbers import Real
from typing import Any


def is_num(x: Any) -> bool:
    """Whether `x` is a finite real number (numpy's included), never a bool."""
    if type(x) is float or type(x) is int:  # the common case, without the ABC check
        return math.isfinite(x)
    return isinstance(x, Real) and not isinstance(x, bool) and math.isfinite(x)


def num(x: Any) -> Any:
    """`x` itself when it is a number (an int stays an int), else None."""
    return x if is_num(x) else None


def finite(x: Any) -> float | None:
    """`x` as a JSON-ready float when it is a number; NaN, infinities, None and non-numbers
    become None (JSON's null)."""
    return float(x) if is_num(x) else None
