"""Slack's part of the record: report threads, the messages that carry Approve/Deny buttons,
signed clicks (each recorded once, with the timer that processes it) and "run now" claims."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from remediator.store.codec import dumps
from remediator.store.postgres.database import Database
from remediator.store.postgres.governance import write_audit


class SlackRepository:
    def __init__(self, db: Database) -> None:
        self.db = db

    async def report_thread(self, episode_id: str) -> str | None:
        value = await self.db.fetchval(
            "SELECT ts FROM report_threads WHERE episode_id = $1", episode_id
        )
        return None if value is None else str(value)

    async def set_report_thread(self, episode_id: str, channel: str, ts_: str) -> None:
        await self.db.execute(
            "INSERT INTO report_threads (episode_id, channel, ts, created_at) "
            "VALUES ($1,$2,$3,$4) ON CONFLICT (episode_id) DO NOTHING",
            episode_id,
            channel,
            ts_,
            self.db.now(),
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
        at = self.db.now()
        async with self.db.transaction() as conn:
            # The signature's row first: a replay (on this replica or another) inserts
            # nothing, waiting for the first one's commit if it is still in flight.
            fresh = await conn.fetchval(
                "INSERT INTO slack_clicks (signature, received_at, user_id, action, run_id, "
                "timer_id) VALUES ($1,$2,$3,$4,$5,0) ON CONFLICT (signature) DO NOTHING "
                "RETURNING true",
                signature,
                at,
                user_id,
                action,
                run_id,
            )
            if not fresh:
                return None
            timer_id: int = await conn.fetchval(
                "INSERT INTO timers (kind, episode_id, run_id, due_at, payload, created_at) "
                "VALUES ($1,$2,$3,$4,$5,$4) RETURNING id",
                timer_kind,
                episode_id,
                run_id,
                at,
                dumps(payload),
            )
            await conn.execute(
                "UPDATE slack_clicks SET timer_id = $1 WHERE signature = $2", timer_id, signature
            )
        return timer_id

    async def set_approval_message(self, run_id: int, channel: str, ts_: str) -> None:
        await self.db.execute(
            "INSERT INTO approval_messages (run_id, channel, ts, posted_at) "
            "VALUES ($1,$2,$3,$4) ON CONFLICT (run_id) DO UPDATE SET channel = excluded.channel, "
            "ts = excluded.ts, posted_at = excluded.posted_at",
            run_id,
            channel,
            ts_,
            self.db.now(),
        )

    async def approval_message(self, run_id: int) -> tuple[str, str] | None:
        row = await self.db.fetchrow(
            "SELECT channel, ts FROM approval_messages WHERE run_id = $1", run_id
        )
        return (str(row["channel"]), str(row["ts"])) if row else None

    async def claim_run_now(
        self, run_id: int, episode_id: str, *, who: str, reason: str
    ) -> tuple[bool, str, datetime]:
        at = self.db.now()
        async with self.db.transaction() as conn:
            fresh = await conn.fetchval(
                "INSERT INTO run_now (run_id, episode_id, who, at) VALUES ($1,$2,$3,$4) "
                "ON CONFLICT (run_id) DO NOTHING RETURNING true",
                run_id,
                episode_id,
                who,
                at,
            )
            if not fresh:
                row = await conn.fetchrow("SELECT who, at FROM run_now WHERE run_id = $1", run_id)
                assert row is not None
                return False, str(row["who"]), row["at"]
            details = {"episode": episode_id}
            await write_audit(conn, who, "run_now", f"run:{run_id}", reason, details, at=at)
        return True, who, at
