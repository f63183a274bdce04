"""Dead letters of the SQLite outbox: messages a channel refused for good, or that could not
be rendered, kept with their error until an operator re-sends them.

Kept apart from `sqlite.py` like the admin and governance tables. A dead letter is an outbox
row with `dead_at` set: the channel's queue skips it (it never blocks the rows behind), and a
re-send clears `dead_at` in the same transaction as its audit row, so the row is delivered
again as the oldest of its channel.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterable
from contextlib import AbstractAsyncContextManager
from datetime import datetime
from typing import Any, Protocol

import aiosqlite

from remediator.store.codec import now, parse_ts, ts
from remediator.store.records import OutboxItem
from remediator.store.sqlite_governance import _audit

# Columns added to existing tables after a release, so an older state file gains them on
# open: (table, column, declaration). CREATE TABLE IF NOT EXISTS leaves an old table as it is.
ADDED_COLUMNS = (("outbox", "dead_at", "TEXT"),)


async def add_columns(db: aiosqlite.Connection) -> None:
    for table, column, declaration in ADDED_COLUMNS:
        async with db.execute(f"PRAGMA table_info({table})") as cursor:
            have = {row[1] for row in await cursor.fetchall()}
        if column not in have:
            await db.execute(f"ALTER TABLE {table} ADD COLUMN {column} {declaration}")


def outbox_item(row: sqlite3.Row) -> OutboxItem:
    return OutboxItem(
        id=row["id"],
        channel=row["channel"],
        episode_id=row["episode_id"],
        kind=row["kind"],
        payload=json.loads(row["payload"]),
        created_at=datetime.fromisoformat(row["created_at"]),
        attempts=row["attempts"],
        next_attempt_at=datetime.fromisoformat(row["next_attempt_at"]),
        last_error=row["last_error"],
        dead_at=parse_ts(row["dead_at"]),
        delivered_at=parse_ts(row["delivered_at"]),
    )


class _Backend(Protocol):
    def _write(self) -> AbstractAsyncContextManager[aiosqlite.Connection]: ...
    async def _read(self, sql: str, params: Iterable[Any] = ()) -> list[sqlite3.Row]: ...


class OutboxSQL:
    """Mixed into SQLiteStore; see `Store` in base.py for what each method promises."""

    async def outbox_dead(self: _Backend, item_id: int, error: str, at: datetime) -> None:
        async with self._write() as db:
            await db.execute(
                "UPDATE outbox SET attempts = attempts + 1, last_error = ?, dead_at = ? "
                "WHERE id = ? AND delivered_at IS NULL",
                (error[:2000], ts(at), item_id),
            )

    async def dead_letters(
        self: _Backend, channel: str | None = None, limit: int = 100
    ) -> list[OutboxItem]:
        where, params = "dead_at IS NOT NULL AND delivered_at IS NULL", []
        if channel is not None:
            where += " AND channel = ?"
            params.append(channel)
        rows = await self._read(
            f"SELECT * FROM outbox WHERE {where} ORDER BY id DESC LIMIT ?", (*params, limit)
        )
        return [outbox_item(row) for row in rows]

    async def dead_letter_counts(self: _Backend) -> dict[str, int]:
        rows = await self._read(
            "SELECT channel, count(*) AS n FROM outbox "
            "WHERE dead_at IS NOT NULL AND delivered_at IS NULL GROUP BY channel"
        )
        return {row["channel"]: row["n"] for row in rows}

    async def get_outbox_item(self: _Backend, item_id: int) -> OutboxItem | None:
        rows = await self._read("SELECT * FROM outbox WHERE id = ?", (item_id,))
        return outbox_item(rows[0]) if rows else None

    async def resend_dead_letter(
        self: _Backend, item_id: int, *, who: str, reason: str
    ) -> OutboxItem | None:
        at = now()
        async with self._write() as db:
            async with db.execute(
                "UPDATE outbox SET dead_at = NULL, attempts = 0, next_attempt_at = ? "
                "WHERE id = ? AND dead_at IS NOT NULL AND delivered_at IS NULL "
                "RETURNING *",
                (ts(at), item_id),
            ) as cursor:
                cursor.row_factory = sqlite3.Row
                row = await cursor.fetchone()
            if row is None:
                return None
            details = {"channel": row["channel"], "kind": row["kind"]}
            await _audit(db, who, "resend_dead_letter", f"outbox:{item_id}", reason, details)
        return outbox_item(row)
