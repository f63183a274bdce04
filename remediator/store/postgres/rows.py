"""Rows to records for PostgreSQL: times come back as datetimes, JSON columns (`json`) as the
text that was written (the mapping itself is store/rows.py's)."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

from remediator.store.codec import ts
from remediator.store.rows import RowMapper


def _json(value: str | None) -> Any:
    return json.loads(value) if value else None


_MAPPER = RowMapper(timestamp=None, json=_json)
record = _MAPPER.record
records = _MAPPER.records


def plain(row: Any) -> dict[str, Any]:
    """A row as a dict the way SQLite's reads it: times as ISO 8601 text."""
    return {k: ts(v) if isinstance(v, datetime) else v for k, v in dict(row).items()}
