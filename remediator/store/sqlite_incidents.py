"""The incident part of the SQLite store, and what start-up reconciliation reads and writes.

Incidents group the episodes of one target under one playbook (engine/incidents.py holds the
rules); a revert declared by a run waits `held` until the engine knows the run changed
something (see `release_timers`).
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterable
from contextlib import AbstractAsyncContextManager
from datetime import datetime, timedelta
from typing import Any, Protocol

import aiosqlite

from remediator.store.codec import dumps, now, parse_ts, ts
from remediator.store.records import IncidentRecord, IncidentState, RunRecord, TimerRecord
from remediator.store.sqlite_governance import _audit


class _Backend(Protocol):
    def _write(self) -> AbstractAsyncContextManager[aiosqlite.Connection]: ...
    async def _read(self, sql: str, params: Iterable[Any] = ()) -> list[sqlite3.Row]: ...


class IncidentSQL:
    """Mixed into SQLiteStore; see `Store` in base.py for what each method promises."""

    # -- start-up reconciliation ---------------------------------------------------------
    async def unfinished_runs(self: _Backend) -> list[RunRecord]:
        rows = await self._read(
            "SELECT * FROM runs r WHERE state = 'running' AND EXISTS "
            "(SELECT 1 FROM actions a WHERE a.run_id = r.id AND a.state != 'would') ORDER BY id"
        )
        return [run_record(row) for row in rows]

    async def save_evidence(self: _Backend, run_id: int, evidence: dict[str, Any]) -> None:
        async with self._write() as db:
            await db.execute("UPDATE runs SET evidence = ? WHERE id = ?", (dumps(evidence), run_id))

    async def release_timers(self: _Backend, run_id: int, kind: str, *, arm: bool) -> int:
        rows = await self._read(
            "SELECT t.id, t.delay_seconds, e.resolved_at FROM timers t "
            "JOIN episodes e ON e.id = t.episode_id "
            "WHERE t.run_id = ? AND t.kind = ? AND t.state = 'held'",
            (run_id, kind),
        )
        at = ts(now())
        async with self._write() as db:
            for row in rows:
                if not arm:
                    await db.execute(
                        "UPDATE timers SET state = 'cancelled', finished_at = ? WHERE id = ?",
                        (at, row["id"]),
                    )
                    continue
                # The episode may have resolved while the run was still going: due from then.
                resolved = parse_ts(row["resolved_at"])
                due = (
                    ts(resolved + timedelta(seconds=row["delay_seconds"]))
                    if resolved is not None
                    else None
                )
                await db.execute(
                    "UPDATE timers SET state = 'waiting', due_at = ? WHERE id = ?",
                    (due, row["id"]),
                )
        return len(rows)

    async def claim_timer(self: _Backend, timer_id: int) -> bool:
        async with self._write() as db:
            cursor = await db.execute(
                "UPDATE timers SET state = 'running' WHERE id = ? AND state = 'waiting'",
                (timer_id,),
            )
            return cursor.rowcount == 1

    async def requeue_running_timers(self: _Backend) -> int:
        async with self._write() as db:
            cursor = await db.execute("UPDATE timers SET state = 'waiting' WHERE state = 'running'")
            return cursor.rowcount

    # -- incidents -----------------------------------------------------------------------
    async def current_incident(
        self: _Backend, playbook: str, target_key: str
    ) -> IncidentRecord | None:
        rows = await self._read(
            "SELECT * FROM incidents WHERE playbook = ? AND target_key = ? AND state != 'closed'",
            (playbook, target_key),
        )
        return incident_record(rows[0]) if rows else None

    async def open_incident(
        self: _Backend, playbook: str, target_key: str, episode_id: str, run_id: int | None
    ) -> IncidentRecord:
        at = ts(now())
        async with self._write() as db:
            await db.execute(
                "INSERT INTO incidents (playbook, target_key, state, opened_at, last_seen) "
                "VALUES (?,?,?,?,?) ON CONFLICT DO NOTHING",
                (playbook, target_key, IncidentState.OPEN, at, at),
            )
            async with db.execute(
                "SELECT * FROM incidents WHERE playbook = ? AND target_key = ? "
                "AND state != 'closed'",
                (playbook, target_key),
            ) as cursor:
                cursor.row_factory = sqlite3.Row
                row = await cursor.fetchone()
            assert row is not None
            await _join(db, row["id"], episode_id, run_id, "acted", at)
        return incident_record(row)

    async def join_incident(
        self: _Backend, incident_id: int, episode_id: str, run_id: int | None, how: str
    ) -> None:
        async with self._write() as db:
            await _join(db, incident_id, episode_id, run_id, how, ts(now()))

    async def hold_incident(self: _Backend, incident_id: int, reason: str) -> None:
        async with self._write() as db:
            await db.execute(
                "UPDATE incidents SET state = ?, held_at = coalesce(held_at, ?), "
                "held_reason = coalesce(held_reason, ?) WHERE id = ? AND state != 'closed'",
                (IncidentState.HELD, ts(now()), reason, incident_id),
            )

    async def close_incident(
        self: _Backend, incident_id: int, *, who: str, reason: str, audit: bool = False
    ) -> IncidentRecord | None:
        async with self._write() as db:
            cursor = await db.execute(
                "UPDATE incidents SET state = 'closed', closed_at = ?, closed_by = ?, "
                "close_reason = ? WHERE id = ? AND state != 'closed'",
                (ts(now()), who, reason, incident_id),
            )
            if cursor.rowcount != 1:
                return None
            async with db.execute("SELECT * FROM incidents WHERE id = ?", (incident_id,)) as c:
                c.row_factory = sqlite3.Row
                row = await c.fetchone()
            assert row is not None
            if audit:
                subject = f"incident:{incident_id} {row['playbook']} {row['target_key']}"
                await _audit(db, who, "clear_incident", subject, reason)
        return incident_record(row)

    async def get_incident(self: _Backend, incident_id: int) -> IncidentRecord | None:
        rows = await self._read("SELECT * FROM incidents WHERE id = ?", (incident_id,))
        if not rows:
            return None
        members = await self._read(
            "SELECT episode_id, run_id, joined_at, how FROM incident_episodes "
            "WHERE incident_id = ? ORDER BY rowid",
            (incident_id,),
        )
        return incident_record(rows[0], [dict(m) for m in members])

    async def list_incidents(
        self: _Backend, *, state: str | None = None, limit: int = 100
    ) -> list[IncidentRecord]:
        rows = await self._read(
            "SELECT * FROM incidents WHERE (? IS NULL OR state = ?) ORDER BY id DESC LIMIT ?",
            (state, state, limit),
        )
        return [incident_record(row) for row in rows]

    async def incident_of_run(self: _Backend, run_id: int) -> IncidentRecord | None:
        rows = await self._read(
            "SELECT i.* FROM incidents i JOIN incident_episodes m ON m.incident_id = i.id "
            "WHERE m.run_id = ? ORDER BY i.id DESC LIMIT 1",
            (run_id,),
        )
        return incident_record(rows[0]) if rows else None

    async def incident_timers(self: _Backend, incident_id: int, kind: str) -> list[TimerRecord]:
        rows = await self._read(
            "SELECT * FROM timers WHERE kind = ? AND run_id IN (SELECT run_id FROM "
            "incident_episodes WHERE incident_id = ? AND run_id IS NOT NULL) ORDER BY id",
            (kind, incident_id),
        )
        return [
            TimerRecord(
                id=row["id"],
                kind=row["kind"],
                episode_id=row["episode_id"],
                run_id=row["run_id"],
                playbook=row["playbook"],
                due_at=parse_ts(row["due_at"]),
                state=row["state"],
                payload=json.loads(row["payload"]),
                created_at=datetime.fromisoformat(row["created_at"]),
            )
            for row in rows
        ]


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


def incident_record(
    row: sqlite3.Row, episodes: list[dict[str, Any]] | None = None
) -> IncidentRecord:
    return IncidentRecord(
        id=row["id"],
        playbook=row["playbook"],
        target_key=row["target_key"],
        state=row["state"],
        opened_at=datetime.fromisoformat(row["opened_at"]),
        last_seen=datetime.fromisoformat(row["last_seen"]),
        held_at=parse_ts(row["held_at"]),
        held_reason=row["held_reason"],
        closed_at=parse_ts(row["closed_at"]),
        closed_by=row["closed_by"],
        close_reason=row["close_reason"],
        episodes=episodes or [],
    )


def run_record(row: sqlite3.Row) -> RunRecord:
    return RunRecord(
        id=row["id"],
        episode_id=row["episode_id"],
        playbook=row["playbook"],
        target_key=row["target_key"],
        mode=row["mode"],
        state=row["state"],
        started_at=datetime.fromisoformat(row["started_at"]),
        finished_at=parse_ts(row["finished_at"]),
        error=row["error"],
        evidence=json.loads(row["evidence"]),
        escalation=row["escalation"],
    )
