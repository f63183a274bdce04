"""Incidents: the trouble of one target under one playbook, across its alert episodes (the
rules are engine/runs/incidents.py's)."""

from __future__ import annotations

import sqlite3
from typing import Any

import aiosqlite

from remediator.store.codec import ts
from remediator.store.records import IncidentRecord, IncidentState
from remediator.store.sqlite.database import Database, fetch_one
from remediator.store.sqlite.governance import write_audit
from remediator.store.sqlite.rows import record

_OPEN_OF = "SELECT * FROM incidents WHERE playbook = ? AND target_key = ? AND state != 'closed'"


class IncidentRepository:
    def __init__(self, db: Database) -> None:
        self.db = db

    async def current_incident(self, playbook: str, target_key: str) -> IncidentRecord | None:
        rows = await self.db.read(_OPEN_OF, (playbook, target_key))
        return _incident(rows[0]) if rows else None

    async def open_incident(
        self, playbook: str, target_key: str, episode_id: str, run_id: int | None
    ) -> IncidentRecord:
        at = ts(self.db.now())
        async with self.db.write() as db:
            await db.execute(
                "INSERT INTO incidents (playbook, target_key, state, opened_at, last_seen) "
                "VALUES (?,?,?,?,?) ON CONFLICT DO NOTHING",
                (playbook, target_key, IncidentState.OPEN, at, at),
            )
            row = await fetch_one(db, _OPEN_OF, (playbook, target_key))
            assert row is not None
            await _join(db, row["id"], episode_id, run_id, "acted", at)
        return _incident(row)

    async def join_incident(
        self, incident_id: int, episode_id: str, run_id: int | None, how: str
    ) -> None:
        async with self.db.write() as db:
            await _join(db, incident_id, episode_id, run_id, how, ts(self.db.now()))

    async def hold_incident(self, incident_id: int, reason: str) -> None:
        await self.db.write1(
            "UPDATE incidents SET state = ?, held_at = coalesce(held_at, ?), "
            "held_reason = coalesce(held_reason, ?) WHERE id = ? AND state != 'closed'",
            (IncidentState.HELD, ts(self.db.now()), reason, incident_id),
        )

    async def close_incident(
        self, incident_id: int, *, who: str, reason: str, audit: bool = False
    ) -> IncidentRecord | None:
        at = ts(self.db.now())
        async with self.db.write() as db:
            row = await fetch_one(
                db,
                "UPDATE incidents SET state = 'closed', closed_at = ?, closed_by = ?, "
                "close_reason = ? WHERE id = ? AND state != 'closed' RETURNING *",
                (at, who, reason, incident_id),
            )
            if row is None:
                return None
            if audit:
                subject = f"incident:{incident_id} {row['playbook']} {row['target_key']}"
                await write_audit(db, who, "clear_incident", subject, reason, at=at)
        return _incident(row)

    async def get_incident(self, incident_id: int) -> IncidentRecord | None:
        rows = await self.db.read("SELECT * FROM incidents WHERE id = ?", (incident_id,))
        if not rows:
            return None
        members = await self.db.read(
            "SELECT episode_id, run_id, joined_at, how FROM incident_episodes "
            "WHERE incident_id = ? ORDER BY rowid",
            (incident_id,),
        )
        return _incident(rows[0], [dict(m) for m in members])

    async def list_incidents(
        self, *, state: IncidentState | None = None, limit: int = 100
    ) -> list[IncidentRecord]:
        rows = await self.db.read(
            "SELECT * FROM incidents WHERE (? IS NULL OR state = ?) ORDER BY id DESC LIMIT ?",
            (state, state, limit),
        )
        return [_incident(row) for row in rows]

    async def incident_of_run(self, run_id: int) -> IncidentRecord | None:
        rows = await self.db.read(
            "SELECT i.* FROM incidents i JOIN incident_episodes m ON m.incident_id = i.id "
            "WHERE m.run_id = ? ORDER BY i.id DESC LIMIT 1",
            (run_id,),
        )
        return _incident(rows[0]) if rows else None


def _incident(row: sqlite3.Row, episodes: list[dict[str, Any]] | None = None) -> IncidentRecord:
    return record(IncidentRecord, row, episodes=episodes or [])


async def _join(
    db: aiosqlite.Connection,
    incident_id: int,
    episode_id: str,
    run_id: int | None,
    how: str,
    at: str,
) -> None:
    await db.execute(
        "INSERT INTO incident_episodes (incident_id, episode_id, run_id, joined_at, how) "
        "VALUES (?,?,?,?,?)",
        (incident_id, episode_id, run_id, at, how),
    )
    await db.execute("UPDATE incidents SET last_seen = ? WHERE id = ?", (at, incident_id))
