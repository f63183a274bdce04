"""The outbox: reports and escalations waiting for their channel, and its dead letters.

A message is delivered once its channel takes it; Slack or PagerDuty being down never delays a
remediation. A dead letter is an outbox row with `dead_at` set: the channel's queue skips it
(it never blocks the rows behind), and a re-send clears `dead_at` in the same transaction as
its audit row, so the row is delivered again as the oldest of its channel.
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

from remediator.store.codec import dumps
from remediator.store.postgres.database import Database
from remediator.store.postgres.governance import write_audit
from remediator.store.postgres.rows import plain, record, records
from remediator.store.records import EscalationRecord, OutboxItem

_WAITING = "delivered_at IS NULL AND dead_at IS NULL"
_DEAD = "dead_at IS NOT NULL AND delivered_at IS NULL"


class OutboxRepository:
    def __init__(self, db: Database) -> None:
        self.db = db

    # -- escalations ---------------------------------------------------------------------
    async def add_escalation(
        self, episode_id: str, run_id: int | None, reason: str, details: dict[str, Any]
    ) -> int:
        escalation_id: int = await self.db.fetchval(
            "INSERT INTO escalations (episode_id, run_id, reason, details, created_at) "
            "VALUES ($1,$2,$3,$4,$5) RETURNING id",
            episode_id,
            run_id,
            reason,
            dumps(details),
            self.db.now(),
        )
        return escalation_id

    async def escalations_for(self, episode_id: str) -> list[EscalationRecord]:
        rows = await self.db.fetch(
            "SELECT * FROM escalations WHERE episode_id = $1 ORDER BY id", episode_id
        )
        return records(EscalationRecord, rows)

    async def escalations_since(self, since: datetime) -> list[EscalationRecord]:
        rows = await self.db.fetch(
            "SELECT * FROM escalations WHERE created_at >= $1 ORDER BY id", since
        )
        return records(EscalationRecord, rows)

    # -- the queue -----------------------------------------------------------------------
    async def enqueue_outbox(
        self, channel: str, episode_id: str | None, kind: str, payload: dict[str, Any]
    ) -> int:
        at = self.db.now()
        item_id: int = await self.db.fetchval(
            "INSERT INTO outbox (channel, episode_id, kind, payload, created_at, "
            "next_attempt_at) VALUES ($1,$2,$3,$4,$5,$5) RETURNING id",
            channel,
            episode_id,
            kind,
            dumps(payload),
            at,
        )
        return item_id

    async def due_outbox(self, channel: str, at: datetime, limit: int) -> list[OutboxItem]:
        rows = await self.db.fetch(
            f"SELECT * FROM outbox WHERE channel = $1 AND {_WAITING} AND next_attempt_at <= $2 "
            "ORDER BY id LIMIT $3",
            channel,
            at,
            limit,
        )
        return records(OutboxItem, rows)

    async def outbox_delivered(self, item_id: int, at: datetime) -> None:
        await self.db.execute(
            "UPDATE outbox SET delivered_at = $1, attempts = attempts + 1 WHERE id = $2",
            at,
            item_id,
        )

    async def outbox_failed(self, item_id: int, error: str, retry_at: datetime) -> None:
        await self.db.execute(
            "UPDATE outbox SET attempts = attempts + 1, last_error = $1, next_attempt_at = $2 "
            "WHERE id = $3",
            error[:2000],
            retry_at,
            item_id,
        )

    async def outbox_pending(self) -> dict[str, int]:
        rows = await self.db.fetch(
            f"SELECT channel, count(*) AS n FROM outbox WHERE {_WAITING} GROUP BY channel"
        )
        return {row["channel"]: row["n"] for row in rows}

    async def get_outbox_item(self, item_id: int) -> OutboxItem | None:
        row = await self.db.fetchrow("SELECT * FROM outbox WHERE id = $1", item_id)
        return record(OutboxItem, row) if row else None

    async def outbox_for(self, episode_id: str) -> list[dict[str, Any]]:
        rows = await self.db.fetch(
            "SELECT id, channel, kind, payload, created_at, attempts, delivered_at, last_error, "
            "dead_at FROM outbox WHERE episode_id = $1 ORDER BY id",
            episode_id,
        )
        return [{**plain(row), "payload": json.loads(row["payload"])} for row in rows]

    # -- dead letters --------------------------------------------------------------------
    async def outbox_dead(self, item_id: int, error: str, at: datetime) -> None:
        await self.db.execute(
            "UPDATE outbox SET attempts = attempts + 1, last_error = $1, dead_at = $2 "
            "WHERE id = $3 AND delivered_at IS NULL",
            error[:2000],
            at,
            item_id,
        )

    async def dead_letters(self, channel: str | None = None, limit: int = 100) -> list[OutboxItem]:
        rows = await self.db.fetch(
            f"SELECT * FROM outbox WHERE {_DEAD} AND ($1::text IS NULL OR channel = $1) "
            "ORDER BY id DESC LIMIT $2",
            channel,
            limit,
        )
        return records(OutboxItem, rows)

    async def dead_letter_counts(self) -> dict[str, int]:
        rows = await self.db.fetch(
            f"SELECT channel, count(*) AS n FROM outbox WHERE {_DEAD} GROUP BY channel"
        )
        return {row["channel"]: row["n"] for row in rows}

    async def resend_dead_letter(self, item_id: int, *, who: str, reason: str) -> OutboxItem | None:
        at = self.db.now()
        async with self.db.transaction() as conn:
            row = await conn.fetchrow(
                "UPDATE outbox SET dead_at = NULL, attempts = 0, next_attempt_at = $1 "
                f"WHERE id = $2 AND {_DEAD} RETURNING *",
                at,
                item_id,
            )
            if row is None:
                return None
            details = {"channel": row["channel"], "kind": row["kind"]}
            await write_audit(
                conn, who, "resend_dead_letter", f"outbox:{item_id}", reason, details, at=at
            )
        return record(OutboxItem, row)
