"""How values are written to and read from SQLite text columns (shared by the SQLite modules)."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any


def ts(value: datetime) -> str:
    return value.astimezone(UTC).isoformat(timespec="microseconds")


def parse_ts(value: str | None) -> datetime | None:
    return datetime.fromisoformat(value) if value else None


# One encoder for every write: json.dumps with options builds a new encoder per call.
_ENCODE = json.JSONEncoder(separators=(",", ":"), default=str).encode


def dumps(value: Any) -> str:
    return _ENCODE(value)
