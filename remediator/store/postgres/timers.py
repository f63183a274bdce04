"""Durable timers: a revert, a follow-up, a Slack click or a GitOps check that must run later,
even after a restart. A timer with no due time waits for its episode to resolve; a `held` one
waits for its run to have acted (`release_timers`). `claim_timer` takes a waiting timer in one
UPDATE, so one runner (of any replica) runs it."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from remediator.store.codec import dumps
from remediator.store.postgres.database import Database, rowcount
from remediator.store.postgres.replicas import fenced
from remediator.store.postgres.rows import records
from remediator.store.records import TimerRecord, TimerState


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
        timer_id: int = await self.db.fetchval(
            "INSERT INTO timers (kind, episode_id, run_id, playbook, delay_seconds, due_at, "
            "payload, created_at, state) VALUES ($1,$2,$3,$4,$5,$6,$7,$8,$9) RETURNING id",
            kind,
            episode_id,
            run_id,
            playbook,
            delay_seconds,
            due_at,
            dumps(payload or {}),
            self.db.now(),
            TimerState.HELD if held else TimerState.WAITING,
        )
        return timer_id

    async def arm_timers(self, episode_id: str, resolved_at: datetime) -> int:
        status = await self.db.execute(
            "UPDATE timers SET due_at = $1::timestamptz + make_interval(secs => delay_seconds) "
            "WHERE episode_id = $2 AND due_at IS NULL AND state = 'waiting'",
            resolved_at,
            episode_id,
        )
        return rowcount(status)

    async def release_timers(self, run_id: int, kind: str, *, arm: bool) -> int:
        if not arm:
            status = await self.db.execute(
                "UPDATE timers SET state = 'cancelled', finished_at = $1 "
                "WHERE run_id = $2 AND kind = $3 AND state = 'held'",
                self.db.now(),
                run_id,
                kind,
            )
            return rowcount(status)
        # The episode may have resolved while the run was still going: due from then.
        status = await self.db.execute(
            "UPDATE timers t SET state = 'waiting', "
            "due_at = e.resolved_at + make_interval(secs => t.delay_seconds) "
            "FROM episodes e WHERE e.id = t.episode_id "
            "AND t.run_id = $1 AND t.kind = $2 AND t.state = 'held'",
            run_id,
            kind,
        )
        return rowcount(status)

    async def due_timers(self, at: datetime, limit: int) -> list[TimerRecord]:
        rows = await self.db.fetch(
            "SELECT * FROM timers WHERE state = 'waiting' AND due_at IS NOT NULL "
            "AND due_at <= $1 ORDER BY due_at, id LIMIT $2",
            at,
            limit,
        )
        return records(TimerRecord, rows)

    async def claim_timer(self, timer_id: int) -> bool:
        # SKIP LOCKED: a replica claiming it at the same moment has it; do not wait to find out.
        status = await self.db.execute(
            "UPDATE timers SET state = 'running', owner = $1 WHERE id = (SELECT id FROM timers "
            "WHERE id = $2 AND state = 'waiting' FOR UPDATE SKIP LOCKED)",
            self.db.replica,
            timer_id,
        )
        return rowcount(status) == 1

    async def requeue_running_timers(self, owner: str | None = None) -> int:
        status = await self.db.execute(
            "UPDATE timers SET state = 'waiting', owner = NULL WHERE state = 'running' "
            "AND ($1::text IS NULL OR owner = $1)",
            owner,
        )
        return rowcount(status)

    async def finish_timer(
        self, timer_id: int, state: TimerState, error: str | None = None
    ) -> None:
        # A timer requeued from a fenced replica is another runner's now: a fenced replica
        # finishes nothing.
        await self.db.execute(
            "UPDATE timers SET state = $1, finished_at = $2, error = $3 WHERE id = $4 "
            f"AND (owner IS NULL OR owner = $5) AND NOT {fenced(5)}",
            state,
            self.db.now(),
            error,
            timer_id,
            self.db.replica,
        )

    async def cancel_timers(self, episode_id: str, kind: str | None = None) -> int:
        status = await self.db.execute(
            "UPDATE timers SET state = 'cancelled', finished_at = $1 WHERE episode_id = $2 "
            "AND state IN ('waiting', 'held') AND ($3::text IS NULL OR kind = $3)",
            self.db.now(),
            episode_id,
            kind,
        )
        return rowcount(status)

    async def timers_for(self, episode_id: str) -> list[TimerRecord]:
        rows = await self.db.fetch(
            "SELECT * FROM timers WHERE episode_id = $1 ORDER BY id", episode_id
        )
        return records(TimerRecord, rows)

    async def incident_timers(self, incident_id: int, kind: str) -> list[TimerRecord]:
        rows = await self.db.fetch(
            "SELECT * FROM timers WHERE kind = $1 AND run_id IN (SELECT run_id FROM "
            "incident_episodes WHERE incident_id = $2 AND run_id IS NOT NULL) ORDER BY id",
            kind,
            incident_id,
        )
        return records(TimerRecord, rows)
