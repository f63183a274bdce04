"""Slack's part of the record: report threads, the messages that carry Approve/Deny buttons,
signed clicks (each recorded once, with the timer that processes it) and "run now" claims."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from remediator.store.codec import dumps, ts
from remediator.store.sqlite.database import Database, fetch_one
from remediator.store.sqlite.governance import write_audit


class SlackRepository:
    def __init__(self, db: Database) -> None:
        self.db = db

    async def report_thread(self, episode_id: str) -> str | None:
        rows = await self.db.read(
            "SELECT ts FROM report_threads WHERE episode_id = ?", (episode_id,)
        )
        return str(rows[0]["ts"]) if rows else None

    async def set_report_thread(self, episode_id: str, channel: str, ts_: str) -> None:
        await self.db.write1(
            "INSERT OR IGNORE INTO report_threads (episode_id, channel, ts, created_at) "
            "VALUES (?,?,?,?)",
            (episode_id, channel, ts_, ts(self.db.now())),
        )

    async def record_slack_click(
        self,
        signature: str,
        *,
        user_id: str,
        action: str,
        run_id: int | None,
        episode_id: str,
        timer_kind: str,
        payload: dict[str, Any],
    ) -> int | None:
        at = ts(self.db.now())
        # Urgent, like the webhook's intake: Slack waits at most three seconds for the answer.
        async with self.db.write(urgent=True) as db:
            seen = "SELECT 1 FROM slack_clicks WHERE signature = ?"
            if await fetch_one(db, seen, (signature,)) is not None:
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

    async def set_approval_message(self, run_id: int, channel: str, ts_: str) -> None:
        await self.db.write1(
            "INSERT INTO approval_messages (run_id, channel, ts, posted_at) VALUES (?,?,?,?) "
            "ON CONFLICT (run_id) DO UPDATE SET channel = excluded.channel, ts = excluded.ts, "
            "posted_at = excluded.posted_at",
            (run_id, channel, ts_, ts(self.db.now())),
        )

    async def approval_message(self, run_id: int) -> tuple[str, str] | None:
        rows = await self.db.read(
            "SELECT channel, ts FROM approval_messages WHERE run_id = ?", (run_id,)
        )
        return (str(rows[0]["channel"]), str(rows[0]["ts"])) if rows else None

    async def claim_run_now(
        self, run_id: int, episode_id: str, *, who: str, reason: str
    ) -> tuple[bool, str, datetime]:
        at = self.db.now()
        async with self.db.write() as db:
            row = await fetch_one(db, "SELECT who, at FROM run_now WHERE run_id = ?", (run_id,))
            if row is not None:
                return False, str(row[0]), datetime.fromisoformat(row[1])
            await db.execute(
                "INSERT INTO run_now (run_id, episode_id, who, at) VALUES (?,?,?,?)",
                (run_id, episode_id, who, ts(at)),
            )
            details = {"episode": episode_id}
            await write_audit(db, who, "run_now", f"run:{run_id}", reason, details, at=ts(at))
            return True, who, at
