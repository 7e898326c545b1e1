"""How the typed model reads and writes comparison.json: each field of a record (a frozen
dataclass) names its JSON key and its kind.

Reading never raises: a value of the wrong kind reads as None (an empty tuple for a list, an
empty mapping for a mapping), a list keeps its length (a malformed item is None in its place)
except a list of records, which keeps its records alone. Writing gives back the JSON shape;
a field marked `omit` (a key the schema makes optional but never null) is left out when None.
"""

from __future__ import annotations

import copy
import functools
from collections.abc import Callable
from dataclasses import dataclass, field, fields
from typing import Any, TypeVar

from ryot.comparison.numbers import is_num, num

R = TypeVar("R", bound="Record")


@dataclass(frozen=True)
class Kind:
    """How one JSON value becomes a field's value (`load`) and back (`dump`)."""

    load: Callable[[Any], Any]
    dump: Callable[[Any], Any]


def _same(x: Any) -> Any:
    return x


def _number_out(x: Any) -> Any:
    return x if is_num(x) else None  # JSON has no NaN or infinity


NUMBER = Kind(num, _number_out)
TEXT = Kind(lambda x: x if isinstance(x, str) else None, _same)
FLAG = Kind(lambda x: x if isinstance(x, bool) else None, _same)
JSON = Kind(copy.deepcopy, copy.deepcopy)  # any JSON value, as it is (settings, the config)


def listing(item: Kind, absent: Any = ()) -> Kind:
    """A list read item by item into a tuple; not a list: `absent` (an empty tuple, or None
    where an absent list means something else than an empty one)."""
    return Kind(
        lambda x: tuple(item.load(v) for v in x) if isinstance(x, list) else absent,
        lambda v: None if v is None else [item.dump(i) for i in v],
    )


def one(cls: type[Record], empty: bool = False) -> Kind:
    """A record; not an object, or an empty one: None, or an empty record where `empty`."""
    return Kind(
        lambda x: cls.from_dict(x) if isinstance(x, dict) and x or empty else None,
        lambda v: None if v is None else v.to_dict(),
    )


def many(cls: type[Record], absent: Any = ()) -> Kind:
    """A list of records: its objects alone, each a record; not a list: `absent`."""
    return Kind(
        lambda x: (
            tuple(cls.from_dict(v) for v in x if isinstance(v, dict))
            if isinstance(x, list)
            else absent
        ),
        lambda v: None if v is None else [r.to_dict() for r in v],
    )


def by_name(value: Kind, absent: Any = None) -> Kind:
    """An object whose keys are names (arms, test ids): a dict of its values, in its order;
    not an object: `absent` (None, or an empty dict where `absent` is {})."""
    return Kind(
        lambda x: (
            {str(k): value.load(v) for k, v in x.items()}
            if isinstance(x, dict)
            else copy.copy(absent)
        ),
        lambda v: None if v is None else {k: value.dump(i) for k, i in v.items()},
    )


def key(kind: Kind, omit: bool = False, default: Any = None) -> Any:
    """A field that is comparison.json's key of the same name, read as `kind`."""
    meta = {"kind": kind, "omit": omit}
    if isinstance(default, dict):
        return field(default_factory=dict, metadata=meta)
    return field(default=default, metadata=meta)


def number(omit: bool = False) -> Any:
    return key(NUMBER, omit)


def text(omit: bool = False) -> Any:
    return key(TEXT, omit)


def flag(omit: bool = False) -> Any:
    return key(FLAG, omit)


def numbers(absent: Any = (), omit: bool = False) -> Any:
    return key(listing(NUMBER, absent), omit, default=absent)


def texts(absent: Any = (), omit: bool = False) -> Any:
    return key(listing(TEXT, absent), omit, default=absent)


def record(cls: type[Record], omit: bool = False, empty: bool = False) -> Any:
    return key(one(cls, empty), omit, default=cls() if empty else None)


def records(cls: type[Record], absent: Any = ()) -> Any:
    return key(many(cls, absent), default=absent)


def mapping(value: Kind = JSON, absent: Any = None, omit: bool = False) -> Any:
    return key(by_name(value, absent), omit, default=absent)


@functools.cache
def _keys(cls: type) -> tuple[tuple[str, Kind, bool], ...]:
    found = [f for f in fields(cls) if "kind" in f.metadata]
    return tuple((f.name, f.metadata["kind"], f.metadata["omit"]) for f in found)


@dataclass(frozen=True)
class Record:
    """A part of comparison.json, read tolerantly; fields without a key (a flag the reading
    sets, not the file) keep their default and are not written."""

    @classmethod
    def from_dict(cls: type[R], d: Any) -> R:
        d = d if isinstance(d, dict) else {}
        return cls(**{name: kind.load(d.get(name)) for name, kind, _ in _keys(cls)})

    def to_dict(self) -> dict[str, Any]:
        out = {}
        for name, kind, omit in _keys(type(self)):
            value = getattr(self, name)
            if value is None and omit:
                continue
            out[name] = kind.dump(value)
        return out
