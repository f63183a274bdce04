"""Replicas on PostgreSQL: the processes sharing the record, their leases and fencing, and the
claims that are not rows of their own (dispatch work, outbox channels, the admission).

Leases are on PostgreSQL's clock (`now()`, `clock_timestamp()`), never a replica's, so
replicas whose clocks disagree still agree on who expired. `fence_expired` is one UPDATE: a
second fencer waits for the first's row lock and then finds the replica fenced already, so
each dead replica is fenced (and reconciled) by exactly one. `record_intent` (runs.py) reads
its replica row FOR SHARE in the transaction that inserts the intent, so it serialises with
the fencing UPDATE: either the intent commits first (the reconciler sees it), or the fence
does (no intent, no call). The rules are the engine's (engine/runs/replicas.py).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from remediator.store.postgres.database import Database, rowcount
from remediator.store.postgres.rows import record
from remediator.store.records import ReplicaRecord, WorkItem, WorkKind

# This replica (the parameter) was fenced. A replica with no row (a store used without
# registering, as tests of the store do) is not.
FENCED = "EXISTS (SELECT 1 FROM replicas WHERE id = ${} AND fenced_at IS NOT NULL)"


# Replicas that hold something: a running run or timer, an episode to dispatch.
_HOLDERS = (
    "SELECT owner FROM runs WHERE state = 'running' AND owner IS NOT NULL UNION "
    "SELECT owner FROM timers WHERE state = 'running' AND owner IS NOT NULL UNION "
    "SELECT dispatch_owner FROM episodes WHERE firing_handled_at IS NULL AND "
    "status = 'firing' AND dispatch_owner IS NOT NULL UNION "
    "SELECT dispatch_owner FROM episodes WHERE resolved_handled_at IS NULL AND "
    "status = 'resolved' AND dispatch_owner IS NOT NULL"
)


def fenced(param: int) -> str:
    return FENCED.format(param)


class ReplicaRepository:
    def __init__(self, db: Database) -> None:
        self.db = db

    async def register(self, name: str, lease_seconds: float) -> None:
        await self.db.execute(
            "INSERT INTO replicas (id, name, started_at, heartbeat_at, lease_until) "
            "VALUES ($1, $2, now(), now(), now() + make_interval(secs => $3)) "
            "ON CONFLICT (id) DO UPDATE SET heartbeat_at = excluded.heartbeat_at, "
            "lease_until = excluded.lease_until WHERE replicas.fenced_at IS NULL",
            self.db.replica,
            name,
            lease_seconds,
        )

    async def heartbeat(self, lease_seconds: float) -> bool:
        status = await self.db.execute(
            "UPDATE replicas SET heartbeat_at = now(), "
            "lease_until = now() + make_interval(secs => $1) WHERE id = $2 AND fenced_at IS NULL",
            lease_seconds,
            self.db.replica,
        )
        return rowcount(status) == 1

    async def fence_expired(self) -> list[str]:
        rows = await self.db.fetch(
            "UPDATE replicas SET fenced_at = now(), fenced_by = $1 WHERE id != $1 "
            "AND lease_until < now() AND fenced_at IS NULL RETURNING id",
            self.db.replica,
        )
        return sorted(str(row[0]) for row in rows)

    async def release(self) -> None:
        await self.db.execute(
            "UPDATE replicas SET lease_until = now(), fenced_at = now(), fenced_by = id "
            "WHERE id = $1 AND fenced_at IS NULL",
            self.db.replica,
        )

    async def replicas(self) -> list[ReplicaRecord]:
        rows = await self.db.fetch(
            "SELECT *, (fenced_at IS NULL AND lease_until > now()) AS live FROM replicas "
            "ORDER BY started_at, id"
        )
        held: dict[str, dict[str, list[Any]]] = {
            row["id"]: {"runs": [], "timers": [], "work": [], "channels": []} for row in rows
        }
        for kind, sql in (
            ("runs", "SELECT owner, id FROM runs WHERE state = 'running' ORDER BY id"),
            ("timers", "SELECT owner, id FROM timers WHERE state = 'running' ORDER BY id"),
            (
                "work",
                "SELECT dispatch_owner, id FROM episodes WHERE firing_handled_at IS NULL AND "
                "status = 'firing' AND dispatch_owner IS NOT NULL UNION ALL "
                "SELECT dispatch_owner, id FROM episodes WHERE resolved_handled_at IS NULL AND "
                "status = 'resolved' AND dispatch_owner IS NOT NULL",
            ),
            ("channels", "SELECT owner, channel FROM outbox_channels WHERE until > now()"),
        ):
            for owner, value in await self.db.fetch(sql):
                if owner in held:
                    held[owner][kind].append(value)
        return [record(ReplicaRecord, row, **held[row["id"]]) for row in rows]

    async def forget_replicas(self, fenced_for_seconds: float) -> int:
        status = await self.db.execute(
            "DELETE FROM replicas WHERE fenced_at < now() - make_interval(secs => $1) "
            f"AND id NOT IN ({_HOLDERS})",
            fenced_for_seconds,
        )
        return rowcount(status)

    @asynccontextmanager
    async def admission(self) -> AsyncIterator[None]:
        # A transaction holding the one admission row: replicas admit one at a time (a row
        # lock ends with its transaction: safe behind PgBouncer in transaction mode).
        async with self.db.transaction() as conn:
            await conn.execute("SELECT id FROM admission WHERE id = 1 FOR UPDATE")
            yield

    async def actions_in_flight(self) -> int:
        return int(
            await self.db.fetchval(
                "SELECT count(*) FROM actions WHERE state = 'intent' AND (owner IS NULL OR "
                "owner NOT IN (SELECT id FROM replicas WHERE fenced_at IS NOT NULL))"
            )
        )

    async def claim_work(self, item: WorkItem) -> bool:
        column = "firing_handled_at" if item.kind is WorkKind.FIRING else "resolved_handled_at"
        # Not SKIP LOCKED: the episode's row is also locked for a moment by digests and marks,
        # and skipping would leave the item to the next sweep; the claim waits for the lock
        # and then sees who has it.
        status = await self.db.execute(
            f"UPDATE episodes SET dispatch_owner = $1 WHERE id = $2 AND {column} IS NULL "
            "AND (dispatch_owner IS NULL OR dispatch_owner = $1 OR dispatch_owner IN "
            "(SELECT id FROM replicas WHERE fenced_at IS NOT NULL))",
            self.db.replica,
            item.episode_id,
        )
        return rowcount(status) == 1

    async def hold_channel(self, channel: str, lease_seconds: float) -> bool:
        taken = await self.db.fetchval(
            "INSERT INTO outbox_channels (channel, owner, until) "
            "VALUES ($1, $2, now() + make_interval(secs => $3)) ON CONFLICT (channel) DO UPDATE "
            "SET owner = excluded.owner, until = excluded.until "
            "WHERE outbox_channels.owner = excluded.owner OR outbox_channels.until < now() "
            "OR outbox_channels.owner IN (SELECT id FROM replicas WHERE fenced_at IS NOT NULL) "
            "RETURNING true",
            channel,
            self.db.replica,
            lease_seconds,
        )
        return bool(taken)
