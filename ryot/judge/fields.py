"""The judge's typed results turn into comparison.json's dicts one way: by their fields."""

from __future__ import annotations

from dataclasses import fields
from typing import Any

from ryot.judge import stats


def jsonable(value: Any) -> Any:
    """A result, a float, a tuple or list of them, JSON-ready: NaN and infinities become None."""
    if hasattr(value, "to_dict"):
        return value.to_dict()
    if isinstance(value, float):
        return stats.finite(value)
    if isinstance(value, (tuple, list)):
        return [jsonable(v) for v in value]
    return value


class Fields:
    """to_dict(): the fields by name, JSON-ready; the names are comparison.json's keys."""

    def to_dict(self) -> dict[str, Any]:
        return {f.name: jsonable(getattr(self, f.name)) for f in fields(self)}
