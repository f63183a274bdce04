"""Rows to records: one mapping for every record type, read off the dataclass's fields.

SQLite keeps times as ISO 8601 text and JSON as text, so a field's type says how to read its
column: `datetime` (and `datetime | None`) is parsed, `dict`, `list` and `Any` are JSON,
`bool` is an integer, a `StrEnum` is built from its value; everything else is taken as it is.
The plan per record type is worked out once; reading a row is then one loop.
"""

from __future__ import annotations

import dataclasses
import json
import sqlite3
import types
from collections.abc import Callable
from datetime import datetime
from enum import Enum
from typing import Any, TypeVar, Union, get_args, get_origin, get_type_hints

from remediator.store.codec import parse_ts

R = TypeVar("R")
Convert = Callable[[Any], Any]

_plans: dict[type[Any], tuple[tuple[str, Convert | None], ...]] = {}


def record(cls: type[R], row: sqlite3.Row, **given: Any) -> R:
    """The record `cls` of `row`; fields in `given` are not read from the row."""
    plan = _plans.get(cls)
    if plan is None:
        plan = _plans[cls] = _plan(cls)
    values = {
        name: (row[name] if convert is None else convert(row[name]))
        for name, convert in plan
        if name not in given
    }
    return cls(**values, **given)


def records(cls: type[R], rows: list[sqlite3.Row]) -> list[R]:
    return [record(cls, row) for row in rows]


def _plan(cls: type[Any]) -> tuple[tuple[str, Convert | None], ...]:
    hints = get_type_hints(cls)
    return tuple((f.name, _converter(hints[f.name])) for f in dataclasses.fields(cls))


def _converter(hint: Any) -> Convert | None:
    optional = False
    if get_origin(hint) in (Union, types.UnionType):
        args = [a for a in get_args(hint) if a is not type(None)]
        optional = len(args) < len(get_args(hint))
        hint = args[0] if len(args) == 1 else Any
    if hint is datetime:
        return parse_ts if optional else datetime.fromisoformat
    if hint is Any or get_origin(hint) in (dict, list) or hint in (dict, list):
        return _json
    if hint is bool:
        return bool
    if isinstance(hint, type) and issubclass(hint, Enum):
        return (lambda v: None if v is None else hint(v)) if optional else hint
    return None


def _json(value: str | None) -> Any:
    return json.loads(value) if value else None
