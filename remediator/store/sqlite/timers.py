"""Durable timers: a revert, a follow-up, a Slack click or a GitOps check that must run later,
even after a restart. A timer with no due time waits for its episode to resolve; a `held` one
waits for its run to have acted (`release_timers`)."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from remediator.store.codec import dumps, parse_ts, ts
from remediator.store.records import TimerRecord, TimerState
from remediator.store.sqlite.database import Database
from remediator.store.sqlite.replicas import FENCED
from remediator.store.sqlite.rows import records


class TimerRepository:
    def __init__(self, db: Database) -> None:
        self.db = db

    async def add_timer(
        self,
        kind: str,
        episode_id: str,
        *,
        due_at: datetime | None,
        run_id: int | None = None,
        playbook: str | None = None,
        delay_seconds: float = 0.0,
        payload: dict[str, Any] | None = None,
        held: bool = False,
    ) -> int:
        return await self.db.insert(
            "INSERT INTO timers (kind, episode_id, run_id, playbook, delay_seconds, due_at, "
            "payload, created_at, state) VALUES (?,?,?,?,?,?,?,?,?)",
            (
                kind,
                episode_id,
                run_id,
                playbook,
                delay_seconds,
                ts(due_at) if due_at is not None else None,
                dumps(payload or {}),
                ts(self.db.now()),
                TimerState.HELD if held else TimerState.WAITING,
            ),
        )

    async def arm_timers(self, episode_id: str, resolved_at: datetime) -> int:
        rows = await self.db.read(
            "SELECT id, delay_seconds FROM timers WHERE episode_id = ? AND due_at IS NULL "
            "AND state = 'waiting'",
            (episode_id,),
        )
        async with self.db.write() as db:
            await db.executemany(
                "UPDATE timers SET due_at = ? WHERE id = ?",
                [(ts(resolved_at + timedelta(seconds=row[1])), row[0]) for row in rows],
            )
        return len(rows)

    async def release_timers(self, run_id: int, kind: str, *, arm: bool) -> int:
        rows = await self.db.read(
            "SELECT t.id, t.delay_seconds, e.resolved_at FROM timers t "
            "JOIN episodes e ON e.id = t.episode_id "
            "WHERE t.run_id = ? AND t.kind = ? AND t.state = 'held'",
            (run_id, kind),
        )
        at = ts(self.db.now())
        async with self.db.write() as db:
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

    async def due_timers(self, at: datetime, limit: int) -> list[TimerRecord]:
        rows = await self.db.read(
            "SELECT * FROM timers WHERE state = 'waiting' AND due_at IS NOT NULL AND due_at <= ? "
            "ORDER BY due_at, id LIMIT ?",
            (ts(at), limit),
        )
        return records(TimerRecord, rows)

    async def claim_timer(self, timer_id: int) -> bool:
        _lastrowid, rowcount = await self.db.write1(
            "UPDATE timers SET state = 'running', owner = ? WHERE id = ? AND state = 'waiting'",
            (self.db.replica, timer_id),
        )
        return rowcount == 1

    async def requeue_running_timers(self, owner: str | None = None) -> int:
        _lastrowid, rowcount = await self.db.write1(
            "UPDATE timers SET state = 'waiting', owner = NULL WHERE state = 'running' "
            "AND (? IS NULL OR owner = ?)",
            (owner, owner),
        )
        return rowcount

    async def finish_timer(
        self, timer_id: int, state: TimerState, error: str | None = None
    ) -> None:
        # A timer requeued from a fenced replica is another runner's now: a fenced replica
        # finishes nothing.
        me = self.db.replica
        await self.db.write1(
            "UPDATE timers SET state = ?, finished_at = ?, error = ? WHERE id = ? "
            f"AND (owner IS NULL OR owner = ?) AND NOT {FENCED}",
            (state, ts(self.db.now()), error, timer_id, me, me),
        )

    async def cancel_timers(self, episode_id: str, kind: str | None = None) -> int:
        _lastrowid, rowcount = await self.db.write1(
            "UPDATE timers SET state = 'cancelled', finished_at = ? WHERE episode_id = ? "
            "AND state IN ('waiting', 'held') AND (? IS NULL OR kind = ?)",
            (ts(self.db.now()), episode_id, kind, kind),
        )
        return rowcount

    async def timers_for(self, episode_id: str) -> list[TimerRecord]:
        rows = await self.db.read(
            "SELECT * FROM timers WHERE episode_id = ? ORDER BY id", (episode_id,)
        )
        return records(TimerRecord, rows)

    async def incident_timers(self, incident_id: int, kind: str) -> list[TimerRecord]:
        rows = await self.db.read(
            "SELECT * FROM timers WHERE kind = ? AND run_id IN (SELECT run_id FROM "
            "incident_episodes WHERE incident_id = ? AND run_id IS NOT NULL) ORDER BY id",
            (kind, incident_id),
        )
        return records(TimerRecord, rows)
