"""Incidents: the trouble of one target under one playbook, across its alert episodes (the
rules are engine/runs/incidents.py's). At most one incident of a (playbook, target) is not
closed: a unique partial index, so replicas opening one at once share it."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import asyncpg

from remediator.store.postgres.database import Database
from remediator.store.postgres.governance import write_audit
from remediator.store.postgres.rows import plain, record
from remediator.store.records import IncidentRecord, IncidentState

_OPEN_OF = "SELECT * FROM incidents WHERE playbook = $1 AND target_key = $2 AND state != 'closed'"


class IncidentRepository:
    def __init__(self, db: Database) -> None:
        self.db = db

    async def current_incident(self, playbook: str, target_key: str) -> IncidentRecord | None:
        row = await self.db.fetchrow(_OPEN_OF, playbook, target_key)
        return _incident(row) if row else None

    async def open_incident(
        self, playbook: str, target_key: str, episode_id: str, run_id: int | None
    ) -> IncidentRecord:
        at = self.db.now()
        async with self.db.transaction() as conn:
            await conn.execute(
                "INSERT INTO incidents (playbook, target_key, state, opened_at, last_seen) "
                "VALUES ($1,$2,$3,$4,$4) ON CONFLICT DO NOTHING",
                playbook,
                target_key,
                IncidentState.OPEN,
                at,
            )
            row = await conn.fetchrow(_OPEN_OF, playbook, target_key)
            assert row is not None
            await _join(conn, row["id"], episode_id, run_id, "acted", at)
        return _incident(row)

    async def join_incident(
        self, incident_id: int, episode_id: str, run_id: int | None, how: str
    ) -> None:
        async with self.db.transaction() as conn:
            await _join(conn, incident_id, episode_id, run_id, how, self.db.now())

    async def hold_incident(self, incident_id: int, reason: str) -> None:
        await self.db.execute(
            "UPDATE incidents SET state = $1, held_at = coalesce(held_at, $2), "
            "held_reason = coalesce(held_reason, $3) WHERE id = $4 AND state != 'closed'",
            IncidentState.HELD,
            self.db.now(),
            reason,
            incident_id,
        )

    async def close_incident(
        self, incident_id: int, *, who: str, reason: str, audit: bool = False
    ) -> IncidentRecord | None:
        at = self.db.now()
        async with self.db.transaction() as conn:
            row = await conn.fetchrow(
                "UPDATE incidents SET state = 'closed', closed_at = $1, closed_by = $2, "
                "close_reason = $3 WHERE id = $4 AND state != 'closed' RETURNING *",
                at,
                who,
                reason,
                incident_id,
            )
            if row is None:
                return None
            if audit:
                subject = f"incident:{incident_id} {row['playbook']} {row['target_key']}"
                await write_audit(conn, who, "clear_incident", subject, reason, at=at)
        return _incident(row)

    async def get_incident(self, incident_id: int) -> IncidentRecord | None:
        row = await self.db.fetchrow("SELECT * FROM incidents WHERE id = $1", incident_id)
        if row is None:
            return None
        members = await self.db.fetch(
            "SELECT episode_id, run_id, joined_at, how FROM incident_episodes "
            "WHERE incident_id = $1 ORDER BY id",
            incident_id,
        )
        return _incident(row, [plain(m) for m in members])

    async def list_incidents(
        self, *, state: IncidentState | None = None, limit: int = 100
    ) -> list[IncidentRecord]:
        rows = await self.db.fetch(
            "SELECT * FROM incidents WHERE ($1::text IS NULL OR state = $1) "
            "ORDER BY id DESC LIMIT $2",
            state,
            limit,
        )
        return [_incident(row) for row in rows]

    async def incident_of_run(self, run_id: int) -> IncidentRecord | None:
        row = await self.db.fetchrow(
            "SELECT i.* FROM incidents i JOIN incident_episodes m ON m.incident_id = i.id "
            "WHERE m.run_id = $1 ORDER BY i.id DESC LIMIT 1",
            run_id,
        )
        return _incident(row) if row else None


def _incident(row: Any, episodes: list[dict[str, Any]] | None = None) -> IncidentRecord:
    return record(IncidentRecord, row, episodes=episodes or [])


async def _join(
    conn: asyncpg.Connection,
    incident_id: int,
    episode_id: str,
    run_id: int | None,
    how: str,
    at: datetime,
) -> None:
    await conn.execute(
        "INSERT INTO incident_episodes (incident_id, episode_id, run_id, joined_at, how) "
        "VALUES ($1,$2,$3,$4,$5)",
        incident_id,
        episode_id,
        run_id,
        at,
        how,
    )
    await conn.execute("UPDATE incidents SET last_seen = $1 WHERE id = $2", at, incident_id)
