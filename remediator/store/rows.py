"""Rows to records: one mapping for every record type, read off the dataclass's fields.

A field's type says how to read its column: `datetime` (and `datetime | None`), `dict`, `list`
and `Any` (JSON) are read by the backend's converters (SQLite keeps them as text; PostgreSQL
hands back datetimes and JSON text), `bool` is made a bool, a `StrEnum` is built from its
value; everything else is taken as it is. The plan per record type is worked out once per
mapper; reading a row is then one loop. Rows are anything indexable by column name
(sqlite3.Row, asyncpg.Record).
"""

from __future__ import annotations

import dataclasses
import types
from collections.abc import Callable, Iterable
from datetime import datetime
from enum import Enum
from typing import Any, TypeVar, Union, get_args, get_origin, get_type_hints

R = TypeVar("R")
Convert = Callable[[Any], Any]


class RowMapper:
    def __init__(self, *, timestamp: Convert | None, json: Convert) -> None:
        """`timestamp` reads a non-null time column (None: it is a datetime already); `json`
        reads a JSON column (None stays None)."""
        self._timestamp = timestamp
        self._json = json
        self._plans: dict[type[Any], tuple[tuple[str, Convert | None], ...]] = {}

    def record(self, cls: type[R], row: Any, **given: Any) -> R:
        """The record `cls` of `row`; fields in `given` are not read from the row."""
        plan = self._plans.get(cls)
        if plan is None:
            plan = self._plans[cls] = self._plan(cls)
        values = {
            name: (row[name] if convert is None else convert(row[name]))
            for name, convert in plan
            if name not in given
        }
        return cls(**values, **given)

    def records(self, cls: type[R], rows: Iterable[Any]) -> list[R]:
        return [self.record(cls, row) for row in rows]

    def _plan(self, cls: type[Any]) -> tuple[tuple[str, Convert | None], ...]:
        hints = get_type_hints(cls)
        return tuple((f.name, self._converter(hints[f.name])) for f in dataclasses.fields(cls))

    def _converter(self, hint: Any) -> Convert | None:
        optional = False
        if get_origin(hint) in (Union, types.UnionType):
            args = [a for a in get_args(hint) if a is not type(None)]
            optional = len(args) < len(get_args(hint))
            hint = args[0] if len(args) == 1 else Any
        if hint is datetime:
            read = self._timestamp
            if read is None or not optional:
                return read
            return lambda v: read(v) if v else None
        if hint is Any or get_origin(hint) in (dict, list) or hint in (dict, list):
            return self._json
        if hint is bool:
            return bool
        if isinstance(hint, type) and issubclass(hint, Enum):
            return (lambda v: None if v is None else hint(v)) if optional else hint
        return None
