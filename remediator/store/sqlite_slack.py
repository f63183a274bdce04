"""The Slack-approval part of the SQLite store: recorded clicks and the messages with buttons.

Kept apart from `sqlite.py` like the governance and admin tables.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable
from contextlib import AbstractAsyncContextManager
from datetime import datetime
from typing import Any, Protocol

import aiosqlite

from remediator.store.codec import dumps, now, ts
from remediator.store.sqlite_governance import _audit


class _Backend(Protocol):
    def _write(
        self, *, urgent: bool = False
    ) -> AbstractAsyncContextManager[aiosqlite.Connection]: ...
    async def _read(self, sql: str, params: Iterable[Any] = ()) -> list[sqlite3.Row]: ...


class SlackSQL:
    """Mixed into SQLiteStore; see `Store` in base.py for what each method promises."""

    async def record_slack_click(
        self: _Backend,
        signature: str,
        *,
        user_id: str,
        action: str,
        run_id: int | None,
        episode_id: str,
        timer_kind: str,
        payload: dict[str, Any],
    ) -> int | None:
        at = ts(now())
        # Urgent, like the webhook's intake: Slack waits at most three seconds for the answer.
        async with self._write(urgent=True) as db:
            async with db.execute(
                "SELECT 1 FROM slack_clicks WHERE signature = ?", (signature,)
            ) as cursor:
                if await cursor.fetchone() is not None:
                    return None
            cursor = await db.execute(
                "INSERT INTO timers (kind, episode_id, run_id, due_at, payload, created_at) "
                "VALUES (?,?,?,?,?,?)",
                (timer_kind, episode_id, run_id, at, dumps(payload), at),
            )
            timer_id = cursor.lastrowid
            assert timer_id is not None
            await db.execute(
                "INSERT INTO slack_clicks (signature, received_at, user_id, action, run_id, "
                "timer_id) VALUES (?,?,?,?,?,?)",
                (signature, at, user_id, action, run_id, timer_id),
            )
            return timer_id

    async def set_approval_message(self: _Backend, run_id: int, channel: str, ts_: str) -> None:
        async with self._write() as db:
            await db.execute(
                "INSERT INTO approval_messages (run_id, channel, ts, posted_at) VALUES (?,?,?,?) "
                "ON CONFLICT (run_id) DO UPDATE SET channel = excluded.channel, ts = excluded.ts, "
                "posted_at = excluded.posted_at",
                (run_id, channel, ts_, ts(now())),
            )

    async def approval_message(self: _Backend, run_id: int) -> tuple[str, str] | None:
        rows = await self._read(
            "SELECT channel, ts FROM approval_messages WHERE run_id = ?", (run_id,)
        )
        return (str(rows[0]["channel"]), str(rows[0]["ts"])) if rows else None

    async def claim_run_now(
        self: _Backend, run_id: int, episode_id: str, *, who: str, reason: str
    ) -> tuple[bool, str, datetime]:
        at = now()
        async with self._write() as db:
            async with db.execute("SELECT who, at FROM run_now WHERE run_id = ?", (run_id,)) as c:
                row = await c.fetchone()
            if row is not None:
                return False, str(row[0]), datetime.fromisoformat(row[1])
            await db.execute(
                "INSERT INTO run_now (run_id, episode_id, who, at) VALUES (?,?,?,?)",
                (run_id, episode_id, who, ts(at)),
            )
            await _audit(db, who, "run_now", f"run:{run_id}", reason, {"episode": episode_id})
            return True, who, at
