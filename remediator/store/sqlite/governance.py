"""The governance record: kill switches, approvals, verifications, playbook modes and the audit
log. Every operator mutation writes its audit row in the same transaction as the change, so
the audit log can never disagree with the state it describes."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import aiosqlite

from remediator.store.codec import dumps, ts
from remediator.store.records import (
    ApprovalRecord,
    ApprovalState,
    AuditRecord,
    KillSwitchRecord,
    RunState,
    Scope,
    VerificationRecord,
)
from remediator.store.sqlite.database import Database, fetch_one
from remediator.store.sqlite.rows import record, records


async def write_audit(
    db: aiosqlite.Connection,
    who: str,
    action: str,
    subject: str,
    reason: str,
    details: dict[str, Any] | None = None,
    *,
    at: str,
) -> None:
    """The audit row of an operator mutation, inside the mutation's own write."""
    await db.execute(
        "INSERT INTO audit (at, who, action, subject, reason, details) VALUES (?,?,?,?,?,?)",
        (at, who, action, subject, reason, dumps(details or {})),
    )


class GovernanceRepository:
    def __init__(self, db: Database) -> None:
        self.db = db

    # -- kill switches -------------------------------------------------------------------
    async def add_kill_switch(
        self, scope: Scope, key: str, *, reason: str, who: str, expires_at: datetime | None
    ) -> KillSwitchRecord:
        at = self.db.now()
        expires = ts(expires_at) if expires_at else None
        async with self.db.write() as db:
            cursor = await db.execute(
                "INSERT INTO kill_switches (scope, key, reason, who, created_at, expires_at) "
                "VALUES (?,?,?,?,?,?)",
                (scope, key, reason, who, ts(at), expires),
            )
            assert cursor.lastrowid is not None
            details = {"expires_at": expires}
            await write_audit(db, who, "pause", f"{scope}:{key}", reason, details, at=ts(at))
            return KillSwitchRecord(cursor.lastrowid, scope, key, reason, who, at, expires_at)

    async def lift_kill_switch(
        self, switch_id: int, *, who: str, reason: str
    ) -> KillSwitchRecord | None:
        at = ts(self.db.now())
        async with self.db.write() as db:
            cursor = await db.execute(
                "UPDATE kill_switches SET lifted_at = ?, lifted_by = ? WHERE id = ? "
                "AND lifted_at IS NULL AND (expires_at IS NULL OR expires_at > ?)",
                (at, who, switch_id, at),
            )
            if cursor.rowcount != 1:
                return None
            row = await fetch_one(db, "SELECT * FROM kill_switches WHERE id = ?", (switch_id,))
            assert row is not None
            await write_audit(db, who, "resume", f"{row['scope']}:{row['key']}", reason, at=at)
            return record(KillSwitchRecord, row)

    async def kill_switches(self, *, at: datetime | None = None) -> list[KillSwitchRecord]:
        if at is None:
            rows = await self.db.read("SELECT * FROM kill_switches ORDER BY id")
        else:
            rows = await self.db.read(
                "SELECT * FROM kill_switches WHERE lifted_at IS NULL "
                "AND (expires_at IS NULL OR expires_at > ?) ORDER BY id",
                (ts(at),),
            )
        return records(KillSwitchRecord, rows)

    # -- approvals -----------------------------------------------------------------------
    async def add_approval(
        self, run_id: int, episode_id: str, playbook: str, target_key: str, expires_at: datetime
    ) -> ApprovalRecord:
        at = self.db.now()
        await self.db.write1(
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
        self, run_id: int, state: ApprovalState, *, who: str, reason: str
    ) -> ApprovalRecord | None:
        at = ts(self.db.now())
        async with self.db.write() as db:
            row = await fetch_one(
                db,
                "UPDATE approvals SET state = ?, decided_at = ?, decided_by = ?, reason = ? "
                "WHERE run_id = ? AND state = 'pending' RETURNING *",
                (state, at, who, reason, run_id),
            )
            if row is None:
                return None
            if state == ApprovalState.APPROVED:
                # Running again: a crash during the approved run is reconciled like any other.
                # By this replica, which runs it (its intents are fenced on the run's owner).
                await db.execute(
                    "UPDATE runs SET state = ?, owner = ? WHERE id = ?",
                    (RunState.RUNNING, self.db.replica, run_id),
                )
            details = {"episode": row["episode_id"]}
            await write_audit(db, who, state, f"run:{run_id}", reason, details, at=at)
            return record(ApprovalRecord, row)

    async def get_approval(self, run_id: int) -> ApprovalRecord | None:
        rows = await self.db.read("SELECT * FROM approvals WHERE run_id = ?", (run_id,))
        return record(ApprovalRecord, rows[0]) if rows else None

    async def approvals(self, *, state: ApprovalState | None = None) -> list[ApprovalRecord]:
        rows = await self.db.read(
            "SELECT * FROM approvals WHERE (? IS NULL OR state = ?) ORDER BY requested_at",
            (state, state),
        )
        return records(ApprovalRecord, rows)

    # -- verifications -------------------------------------------------------------------
    async def record_verification(
        self,
        *,
        episode_id: str,
        run_id: int,
        playbook: str,
        target_key: str,
        query: str,
        result: str,
        detail: str,
    ) -> int:
        return await self.db.insert(
            "INSERT INTO verifications (episode_id, run_id, playbook, target_key, query, "
            "result, detail, at) VALUES (?,?,?,?,?,?,?,?)",
            (episode_id, run_id, playbook, target_key, query, result, detail, ts(self.db.now())),
        )

    async def verifications_for(self, episode_id: str) -> list[VerificationRecord]:
        rows = await self.db.read(
            "SELECT * FROM verifications WHERE episode_id = ? ORDER BY id", (episode_id,)
        )
        return records(VerificationRecord, rows)

    async def recent_verifications(self, since: datetime) -> list[str]:
        rows = await self.db.read(
            "SELECT result FROM verifications WHERE at >= ? ORDER BY id DESC", (ts(since),)
        )
        return [row["result"] for row in rows]

    # -- playbook mode overrides ---------------------------------------------------------
    async def playbook_modes(self) -> dict[str, str]:
        rows = await self.db.read("SELECT playbook, mode FROM playbook_modes")
        return {row["playbook"]: row["mode"] for row in rows}

    async def set_playbook_mode(
        self, playbook: str, mode: str | None, *, who: str, reason: str
    ) -> None:
        at = ts(self.db.now())
        async with self.db.write() as db:
            if mode is None:
                await db.execute("DELETE FROM playbook_modes WHERE playbook = ?", (playbook,))
            else:
                await db.execute(
                    "INSERT INTO playbook_modes (playbook, mode, who, reason, at) "
                    "VALUES (?,?,?,?,?) ON CONFLICT (playbook) DO UPDATE SET mode = "
                    "excluded.mode, who = excluded.who, reason = excluded.reason, at = excluded.at",
                    (playbook, mode, who, reason, at),
                )
            details = {"mode": mode}
            await write_audit(db, who, "set_mode", f"playbook:{playbook}", reason, details, at=at)

    # -- audit ---------------------------------------------------------------------------
    async def record_audit(
        self,
        who: str,
        action: str,
        subject: str,
        reason: str,
        details: dict[str, Any] | None = None,
    ) -> None:
        at = ts(self.db.now())
        async with self.db.write() as db:
            await write_audit(db, who, action, subject, reason, details, at=at)

    async def audit_log(self, limit: int = 100) -> list[AuditRecord]:
        rows = await self.db.read("SELECT * FROM audit ORDER BY id DESC LIMIT ?", (limit,))
        return records(AuditRecord, rows)
