"""Rows to records for SQLite, which keeps times as ISO 8601 text and JSON as text
(the mapping itself is store/rows.py's)."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

from remediator.store.rows import RowMapper


def _json(value: str | None) -> Any:
    return json.loads(value) if value else None


_MAPPER = RowMapper(timestamp=datetime.fromisoformat, json=_json)
record = _MAPPER.record
records = _MAPPER.records
