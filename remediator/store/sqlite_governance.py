"""The governance part of the SQLite store: kill switches, the breaker, approvals, verifications.

Kept apart from `sqlite.py` (the decision record) because it is a separate concern with its own
tables. Every operator mutation writes its audit row in the same transaction as the change, so
the audit log can never disagree with the state it describes.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterable
from contextlib import AbstractAsyncContextManager
from datetime import datetime
from typing import Any, Protocol

import aiosqlite

from remediator.store.codec import dumps, now, parse_ts, ts
from remediator.store.records import (
    ApprovalRecord,
    ApprovalState,
    AuditRecord,
    BreakerRecord,
    KillSwitchRecord,
    VerificationRecord,
)

# An action that may have changed the world: everything but a dry run or a refusal.
_REAL = "('intent', 'succeeded', 'failed', 'interrupted')"


def acting_runs_query(
    since: datetime | None,
    target_key: str | None,
    playbook: str | None,
    episode_id: str | None,
    exclude_run: int | None,
) -> tuple[str, list[Any]]:
    """The rate-limit ledger's query. It runs before every action, so it must be answered
    from an index (`actions_real`, or `actions_episode`), never by scanning every action
    the retention keeps."""
    where = [f"a.state IN {_REAL}"]
    params: list[Any] = []
    for clause, value in (
        ("a.intended_at >= ?", ts(since) if since else None),
        ("r.target_key = ?", target_key),
        ("r.playbook = ?", playbook),
        ("a.episode_id = ?", episode_id),  # the run's episode; indexed on actions
        ("r.id != ?", exclude_run),
    ):
        if value is not None:
            where.append(clause)
            params.append(value)
    sql = (
        "SELECT min(a.intended_at) AS first FROM actions a JOIN runs r ON r.id = a.run_id "
        f"WHERE {' AND '.join(where)} GROUP BY r.id ORDER BY first"
    )
    return sql, params


class _Backend(Protocol):
    def _write(self) -> AbstractAsyncContextManager[aiosqlite.Connection]: ...
    async def _read(self, sql: str, params: Iterable[Any] = ()) -> list[sqlite3.Row]: ...


async def _audit(
    db: aiosqlite.Connection,
    who: str,
    action: str,
    subject: str,
    reason: str,
    details: dict[str, Any] | None = None,
) -> None:
    await db.execute(
        "INSERT INTO audit (at, who, action, subject, reason, details) VALUES (?,?,?,?,?,?)",
        (ts(now()), who, action, subject, reason, dumps(details or {})),
    )


class GovernanceSQL:
    """Mixed into SQLiteStore; see `Store` in base.py for what each method promises."""

    # -- kill switches -------------------------------------------------------------------
    async def add_kill_switch(
        self: _Backend,
        scope: str,
        key: str,
        *,
        reason: str,
        who: str,
        expires_at: datetime | None,
    ) -> KillSwitchRecord:
        at = now()
        async with self._write() as db:
            cursor = await db.execute(
                "INSERT INTO kill_switches (scope, key, reason, who, created_at, expires_at) "
                "VALUES (?,?,?,?,?,?)",
                (scope, key, reason, who, ts(at), ts(expires_at) if expires_at else None),
            )
            assert cursor.lastrowid is not None
            details = {"expires_at": ts(expires_at) if expires_at else None}
            await _audit(db, who, "pause", f"{scope}:{key}", reason, details)
            return KillSwitchRecord(cursor.lastrowid, scope, key, reason, who, at, expires_at)

    async def lift_kill_switch(
        self: _Backend, switch_id: int, *, who: str, reason: str
    ) -> KillSwitchRecord | None:
        at = now()
        async with self._write() as db:
            cursor = await db.execute(
                "UPDATE kill_switches SET lifted_at = ?, lifted_by = ? WHERE id = ? "
                "AND lifted_at IS NULL AND (expires_at IS NULL OR expires_at > ?)",
                (ts(at), who, switch_id, ts(at)),
            )
            if cursor.rowcount != 1:
                return None
            async with db.execute("SELECT * FROM kill_switches WHERE id = ?", (switch_id,)) as c:
                c.row_factory = sqlite3.Row
                row = await c.fetchone()
            assert row is not None
            await _audit(db, who, "resume", f"{row['scope']}:{row['key']}", reason)
            return _switch(row)

    async def kill_switches(
        self: _Backend, *, at: datetime | None = None
    ) -> list[KillSwitchRecord]:
        if at is None:
            rows = await self._read("SELECT * FROM kill_switches ORDER BY id")
        else:
            rows = await self._read(
                "SELECT * FROM kill_switches WHERE lifted_at IS NULL "
                "AND (expires_at IS NULL OR expires_at > ?) ORDER BY id",
                (ts(at),),
            )
        return [_switch(row) for row in rows]

    # -- rate-limit ledger ---------------------------------------------------------------
    async def acting_runs(
        self: _Backend,
        *,
        since: datetime | None = None,
        target_key: str | None = None,
        playbook: str | None = None,
        episode_id: str | None = None,
        exclude_run: int | None = None,
    ) -> list[datetime]:
        sql, params = acting_runs_query(since, target_key, playbook, episode_id, exclude_run)
        rows = await self._read(sql, params)
        return [datetime.fromisoformat(row["first"]) for row in rows]

    # -- the storm breaker ---------------------------------------------------------------
    async def open_breaker(
        self: _Backend, reason: str, details: dict[str, Any], expires_at: datetime | None
    ) -> BreakerRecord | None:
        at = now()
        async with self._write() as db:
            async with db.execute("SELECT 1 FROM breaker WHERE closed_at IS NULL") as cursor:
                if await cursor.fetchone() is not None:
                    return None
            cursor = await db.execute(
                "INSERT INTO breaker (opened_at, reason, details, expires_at) VALUES (?,?,?,?)",
                (ts(at), reason, dumps(details), ts(expires_at) if expires_at else None),
            )
            assert cursor.lastrowid is not None
            await _audit(db, "storm-breaker", "breaker_open", "breaker", reason, details)
            return BreakerRecord(cursor.lastrowid, at, reason, details, expires_at)

    async def current_breaker(self: _Backend) -> BreakerRecord | None:
        rows = await self._read("SELECT * FROM breaker WHERE closed_at IS NULL ORDER BY id")
        return _breaker(rows[0]) if rows else None

    async def close_breaker(
        self: _Backend, *, who: str, reason: str, at: datetime | None = None
    ) -> BreakerRecord | None:
        at = at or now()
        async with self._write() as db:
            cursor = await db.execute(
                "UPDATE breaker SET closed_at = ?, closed_by = ?, close_reason = ? "
                "WHERE closed_at IS NULL RETURNING *",
                (ts(at), who, reason),
            )
            cursor.row_factory = sqlite3.Row
            row = await cursor.fetchone()
            await cursor.close()
            if row is None:
                return None
            await _audit(db, who, "breaker_close", "breaker", reason)
            return _breaker(row)

    async def last_breaker_close(self: _Backend) -> datetime | None:
        rows = await self._read("SELECT max(closed_at) FROM breaker")
        return parse_ts(rows[0][0])

    # -- approvals -----------------------------------------------------------------------
    async def add_approval(
        self: _Backend,
        run_id: int,
        episode_id: str,
        playbook: str,
        target_key: str,
        expires_at: datetime,
    ) -> ApprovalRecord:
        at = now()
        async with self._write() as db:
            await db.execute(
                "INSERT INTO approvals (run_id, episode_id, playbook, target_key, requested_at, "
                "expires_at, state) VALUES (?,?,?,?,?,?,?) ON CONFLICT (run_id) DO UPDATE SET "
                "requested_at = excluded.requested_at, expires_at = excluded.expires_at, "
                "state = excluded.state, decided_at = NULL, decided_by = NULL, reason = NULL",
                (run_id, episode_id, playbook, target_key, ts(at), ts(expires_at), "pending"),
            )
        return ApprovalRecord(
            run_id, episode_id, playbook, target_key, at, expires_at, ApprovalState.PENDING
        )

    async def decide_approval(
        self: _Backend, run_id: int, state: str, *, who: str, reason: str
    ) -> ApprovalRecord | None:
        at = now()
        async with self._write() as db:
            cursor = await db.execute(
                "UPDATE approvals SET state = ?, decided_at = ?, decided_by = ?, reason = ? "
                "WHERE run_id = ? AND state = 'pending' RETURNING *",
                (state, ts(at), who, reason, run_id),
            )
            cursor.row_factory = sqlite3.Row
            row = await cursor.fetchone()
            await cursor.close()
            if row is None:
                return None
            if state == ApprovalState.APPROVED:
                # Running again: a crash during the approved run is reconciled like any other.
                await db.execute("UPDATE runs SET state = 'running' WHERE id = ?", (run_id,))
            await _audit(db, who, state, f"run:{run_id}", reason, {"episode": row["episode_id"]})
            return _approval(row)

    async def get_approval(self: _Backend, run_id: int) -> ApprovalRecord | None:
        rows = await self._read("SELECT * FROM approvals WHERE run_id = ?", (run_id,))
        return _approval(rows[0]) if rows else None

    async def approvals(self: _Backend, *, state: str | None = None) -> list[ApprovalRecord]:
        rows = await self._read(
            "SELECT * FROM approvals WHERE (? IS NULL OR state = ?) ORDER BY requested_at",
            (state, state),
        )
        return [_approval(row) for row in rows]

    # -- verifications -------------------------------------------------------------------
    async def record_verification(
        self: _Backend,
        *,
        episode_id: str,
        run_id: int,
        playbook: str,
        target_key: str,
        query: str,
        result: str,
        detail: str,
    ) -> int:
        async with self._write() as db:
            cursor = await db.execute(
                "INSERT INTO verifications (episode_id, run_id, playbook, target_key, query, "
                "result, detail, at) VALUES (?,?,?,?,?,?,?,?)",
                (episode_id, run_id, playbook, target_key, query, result, detail, ts(now())),
            )
            assert cursor.lastrowid is not None
            return cursor.lastrowid

    async def verifications_for(self: _Backend, episode_id: str) -> list[VerificationRecord]:
        rows = await self._read(
            "SELECT * FROM verifications WHERE episode_id = ? ORDER BY id", (episode_id,)
        )
        return [_verification(row) for row in rows]

    async def recent_verifications(self: _Backend, since: datetime) -> list[str]:
        rows = await self._read(
            "SELECT result FROM verifications WHERE at >= ? ORDER BY id DESC", (ts(since),)
        )
        return [row["result"] for row in rows]

    # -- audit ---------------------------------------------------------------------------
    async def audit_log(self: _Backend, limit: int = 100) -> list[AuditRecord]:
        rows = await self._read("SELECT * FROM audit ORDER BY id DESC LIMIT ?", (limit,))
        return [
            AuditRecord(
                id=row["id"],
                at=datetime.fromisoformat(row["at"]),
                who=row["who"],
                action=row["action"],
                subject=row["subject"],
                reason=row["reason"],
                details=json.loads(row["details"]),
            )
            for row in rows
        ]


def _switch(row: sqlite3.Row) -> KillSwitchRecord:
    return KillSwitchRecord(
        id=row["id"],
        scope=row["scope"],
        key=row["key"],
        reason=row["reason"],
        who=row["who"],
        created_at=datetime.fromisoformat(row["created_at"]),
        expires_at=parse_ts(row["expires_at"]),
        lifted_at=parse_ts(row["lifted_at"]),
        lifted_by=row["lifted_by"],
    )


def _breaker(row: sqlite3.Row) -> BreakerRecord:
    return BreakerRecord(
        id=row["id"],
        opened_at=datetime.fromisoformat(row["opened_at"]),
        reason=row["reason"],
        details=json.loads(row["details"]),
        expires_at=parse_ts(row["expires_at"]),
        closed_at=parse_ts(row["closed_at"]),
        closed_by=row["closed_by"],
        close_reason=row["close_reason"],
    )


def _approval(row: sqlite3.Row) -> ApprovalRecord:
    return ApprovalRecord(
        run_id=row["run_id"],
        episode_id=row["episode_id"],
        playbook=row["playbook"],
        target_key=row["target_key"],
        requested_at=datetime.fromisoformat(row["requested_at"]),
        expires_at=datetime.fromisoformat(row["expires_at"]),
        state=row["state"],
        decided_at=parse_ts(row["decided_at"]),
        decided_by=row["decided_by"],
        reason=row["reason"],
    )


def _verification(row: sqlite3.Row) -> VerificationRecord:
    return VerificationRecord(
        id=row["id"],
        episode_id=row["episode_id"],
        run_id=row["run_id"],
        playbook=row["playbook"],
        target_key=row["target_key"],
        query=row["query"],
        result=row["result"],
        detail=row["detail"],
        at=datetime.fromisoformat(row["at"]),
    )
