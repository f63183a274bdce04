"""Replicas on SQLite: the one process is the only replica, with the same rows as a shared store.

Leases are on SQLite's own clock (`'now'`), not the engine's (a test's manual clock must not
expire a lease), as PostgreSQL's leases are on its `now()`. What only matters when several
processes share the record is trivially true here: the admission is the engine's own lock,
the dispatch of an item and an outbox channel are always this process's to take (a previous
process that held them is gone: start-up reconciliation took over what it left). Fencing is
real: `record_intent` (store/sqlite/runs.py) refuses an intent of a fenced replica, so the
code path a shared store relies on runs, and is tested, here too.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from remediator.store.records import ReplicaRecord, WorkItem
from remediator.store.sqlite.database import Database
from remediator.store.sqlite.rows import record

# SQLite's clock as text that sorts like the time it says (every lease is written this way).
NOW = "(strftime('%Y-%m-%dT%H:%M:%f', 'now') || '+00:00')"


def lease_end(seconds: float) -> tuple[str, str]:
    """SQL for now + `seconds`, and its parameter."""
    return "(strftime('%Y-%m-%dT%H:%M:%f', 'now', ?) || '+00:00')", f"{seconds:+.3f} seconds"


# This replica (the parameter) may not act: fenced, or its lease is past. A replica with no
# row (a store used without registering, as tests of the store do) is not stopped.
STOPPED = (
    "EXISTS (SELECT 1 FROM replicas WHERE id = ? AND "
    f"(fenced_at IS NOT NULL OR lease_until <= {NOW}))"
)
FENCED = "EXISTS (SELECT 1 FROM replicas WHERE id = ? AND fenced_at IS NOT NULL)"
# Replicas that hold something: a running run or timer, an episode to dispatch (each half as
# its partial index says, never a scan of every episode).
_HOLDERS = (
    "SELECT owner FROM runs WHERE state = 'running' AND owner IS NOT NULL UNION "
    "SELECT owner FROM timers WHERE state = 'running' AND owner IS NOT NULL UNION "
    "SELECT dispatch_owner FROM episodes WHERE firing_handled_at IS NULL AND "
    "status = 'firing' AND dispatch_owner IS NOT NULL UNION "
    "SELECT dispatch_owner FROM episodes WHERE resolved_handled_at IS NULL AND "
    "status = 'resolved' AND dispatch_owner IS NOT NULL"
)


class ReplicaRepository:
    def __init__(self, db: Database) -> None:
        self.db = db

    async def register(self, name: str, lease_seconds: float) -> None:
        until, modifier = lease_end(lease_seconds)
        await self.db.write1(
            "INSERT INTO replicas (id, name, started_at, heartbeat_at, lease_until) "
            f"VALUES (?, ?, {NOW}, {NOW}, {until}) ON CONFLICT (id) DO UPDATE SET "
            "heartbeat_at = excluded.heartbeat_at, lease_until = excluded.lease_until "
            "WHERE replicas.fenced_at IS NULL",
            (self.db.replica, name, modifier),
            urgent=True,
        )

    async def heartbeat(self, lease_seconds: float) -> bool:
        until, modifier = lease_end(lease_seconds)
        _lastrowid, rowcount = await self.db.write1(
            f"UPDATE replicas SET heartbeat_at = {NOW}, lease_until = {until} "
            "WHERE id = ? AND fenced_at IS NULL",
            (modifier, self.db.replica),
            urgent=True,  # a heartbeat queued behind a burst of writes could miss its lease
        )
        return rowcount == 1

    async def fence_expired(self) -> list[str]:
        me = self.db.replica
        async with self.db.write(urgent=True) as db:
            rows = await db.execute_fetchall(
                f"UPDATE replicas SET fenced_at = {NOW}, fenced_by = ? WHERE id != ? AND "
                f"lease_until < {NOW} AND fenced_at IS NULL RETURNING id",
                (me, me),
            )
        return sorted(str(row[0]) for row in rows)

    async def release(self) -> None:
        await self.db.write1(
            f"UPDATE replicas SET lease_until = {NOW}, fenced_at = {NOW}, fenced_by = id "
            "WHERE id = ? AND fenced_at IS NULL",
            (self.db.replica,),
            urgent=True,
        )

    async def replicas(self) -> list[ReplicaRecord]:
        rows = await self.db.read(
            f"SELECT *, (fenced_at IS NULL AND lease_until > {NOW}) AS live FROM replicas "
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
                # Each half as its partial index says (episodes_pending_*), never a scan.
                "SELECT dispatch_owner, id FROM episodes WHERE firing_handled_at IS NULL AND "
                "status = 'firing' AND dispatch_owner IS NOT NULL UNION ALL "
                "SELECT dispatch_owner, id FROM episodes WHERE resolved_handled_at IS NULL AND "
                "status = 'resolved' AND dispatch_owner IS NOT NULL",
            ),
            ("channels", f"SELECT owner, channel FROM outbox_channels WHERE until > {NOW}"),
        ):
            for owner, value in await self.db.read(sql):
                if owner in held:
                    held[owner][kind].append(value)
        return [record(ReplicaRecord, row, **held[row["id"]]) for row in rows]

    async def forget_replicas(self, fenced_for_seconds: float) -> int:
        before, modifier = lease_end(-fenced_for_seconds)
        _lastrowid, rowcount = await self.db.write1(
            f"DELETE FROM replicas WHERE fenced_at IS NOT NULL AND fenced_at < {before} "
            f"AND id NOT IN ({_HOLDERS})",
            (modifier,),
        )
        return rowcount

    @asynccontextmanager
    async def admission(self) -> AsyncIterator[None]:
        # One process: the engine's admission lock (engine/runs/run.py) already serialises.
        with contextlib.nullcontext():
            yield

    async def actions_in_flight(self) -> int:
        return int(
            await self.db.scalar(
                "SELECT count(*) FROM actions WHERE state = 'intent' AND (owner IS NULL OR "
                "owner NOT IN (SELECT id FROM replicas WHERE fenced_at IS NOT NULL))"
            )
        )

    async def claim_work(self, item: WorkItem) -> bool:
        # The only process: whatever an earlier one claimed, start-up took over.
        return True

    async def hold_channel(self, channel: str, lease_seconds: float) -> bool:
        return True
