"""The governance record: kill switches, approvals, verifications, playbook modes and the audit
log. Every operator mutation writes its audit row in the same transaction as the change, so
the audit log can never disagree with the state it describes."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import asyncpg

from remediator.store.codec import dumps, ts
from remediator.store.postgres.database import Database
from remediator.store.postgres.rows import record, records
from remediator.store.records import (
    ApprovalRecord,
    ApprovalState,
    AuditRecord,
    KillSwitchRecord,
    RunState,
    Scope,
    VerificationRecord,
)


async def write_audit(
    conn: asyncpg.Connection,
    who: str,
    action: str,
    subject: str,
    reason: str,
    details: dict[str, Any] | None = None,
    *,
    at: datetime,
) -> None:
    """The audit row of an operator mutation, inside the mutation's own transaction."""
    await conn.execute(
        "INSERT INTO audit (at, who, action, subject, reason, details) VALUES ($1,$2,$3,$4,$5,$6)",
        at,
        who,
        action,
        subject,
        reason,
        dumps(details or {}),
    )


class GovernanceRepository:
    def __init__(self, db: Database) -> None:
        self.db = db

    # -- kill switches -------------------------------------------------------------------
    async def add_kill_switch(
        self, scope: Scope, key: str, *, reason: str, who: str, expires_at: datetime | None
    ) -> KillSwitchRecord:
        at = self.db.now()
        async with self.db.transaction() as conn:
            switch_id = await conn.fetchval(
                "INSERT INTO kill_switches (scope, key, reason, who, created_at, expires_at) "
                "VALUES ($1,$2,$3,$4,$5,$6) RETURNING id",
                scope,
                key,
                reason,
                who,
                at,
                expires_at,
            )
            details = {"expires_at": _iso(expires_at)}
            await write_audit(conn, who, "pause", f"{scope}:{key}", reason, details, at=at)
        return KillSwitchRecord(switch_id, scope, key, reason, who, at, expires_at)

    async def lift_kill_switch(
        self, switch_id: int, *, who: str, reason: str
    ) -> KillSwitchRecord | None:
        at = self.db.now()
        async with self.db.transaction() as conn:
            row = await conn.fetchrow(
                "UPDATE kill_switches SET lifted_at = $1, lifted_by = $2 WHERE id = $3 "
                "AND lifted_at IS NULL AND (expires_at IS NULL OR expires_at > $1) RETURNING *",
                at,
                who,
                switch_id,
            )
            if row is None:
                return None
            await write_audit(conn, who, "resume", f"{row['scope']}:{row['key']}", reason, at=at)
        return record(KillSwitchRecord, row)

    async def kill_switches(self, *, at: datetime | None = None) -> list[KillSwitchRecord]:
        if at is None:
            rows = await self.db.fetch("SELECT * FROM kill_switches ORDER BY id")
        else:
            rows = await self.db.fetch(
                "SELECT * FROM kill_switches WHERE lifted_at IS NULL "
                "AND (expires_at IS NULL OR expires_at > $1) ORDER BY id",
                at,
            )
        return records(KillSwitchRecord, rows)

    # -- approvals -----------------------------------------------------------------------
    async def add_approval(
        self, run_id: int, episode_id: str, playbook: str, target_key: str, expires_at: datetime
    ) -> ApprovalRecord:
        at = self.db.now()
        await self.db.execute(
            "INSERT INTO approvals (run_id, episode_id, playbook, target_key, requested_at, "
            "expires_at, state) VALUES ($1,$2,$3,$4,$5,$6,$7) ON CONFLICT (run_id) DO UPDATE "
            "SET requested_at = excluded.requested_at, expires_at = excluded.expires_at, "
            "state = excluded.state, decided_at = NULL, decided_by = NULL, reason = NULL",
            run_id,
            episode_id,
            playbook,
            target_key,
            at,
            expires_at,
            ApprovalState.PENDING,
        )
        return ApprovalRecord(
            run_id, episode_id, playbook, target_key, at, expires_at, ApprovalState.PENDING
        )

    async def decide_approval(
        self, run_id: int, state: ApprovalState, *, who: str, reason: str
    ) -> ApprovalRecord | None:
        at = self.db.now()
        async with self.db.transaction() as conn:
            # One decision: the UPDATE takes the row's lock, a second decider waits for it,
            # then finds the state no longer pending.
            row = await conn.fetchrow(
                "UPDATE approvals SET state = $1, decided_at = $2, decided_by = $3, reason = $4 "
                "WHERE run_id = $5 AND state = 'pending' RETURNING *",
                state,
                at,
                who,
                reason,
                run_id,
            )
            if row is None:
                return None
            if state == ApprovalState.APPROVED:
                # Running again: a crash during the approved run is reconciled like any other.
                # By this replica, which runs it (its intents are fenced on the run's owner).
                await conn.execute(
                    "UPDATE runs SET state = $1, owner = $2 WHERE id = $3",
                    RunState.RUNNING,
                    self.db.replica,
                    run_id,
                )
            details = {"episode": row["episode_id"]}
            await write_audit(conn, who, state, f"run:{run_id}", reason, details, at=at)
        return record(ApprovalRecord, row)

    async def get_approval(self, run_id: int) -> ApprovalRecord | None:
        row = await self.db.fetchrow("SELECT * FROM approvals WHERE run_id = $1", run_id)
        return record(ApprovalRecord, row) if row else None

    async def approvals(self, *, state: ApprovalState | None = None) -> list[ApprovalRecord]:
        rows = await self.db.fetch(
            "SELECT * FROM approvals WHERE ($1::text IS NULL OR state = $1) "
            "ORDER BY requested_at, run_id",
            state,
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
        verification_id: int = await self.db.fetchval(
            "INSERT INTO verifications (episode_id, run_id, playbook, target_key, query, "
            "result, detail, at) VALUES ($1,$2,$3,$4,$5,$6,$7,$8) RETURNING id",
            episode_id,
            run_id,
            playbook,
            target_key,
            query,
            result,
            detail,
            self.db.now(),
        )
        return verification_id

    async def verifications_for(self, episode_id: str) -> list[VerificationRecord]:
        rows = await self.db.fetch(
            "SELECT * FROM verifications WHERE episode_id = $1 ORDER BY id", episode_id
        )
        return records(VerificationRecord, rows)

    async def recent_verifications(self, since: datetime) -> list[str]:
        rows = await self.db.fetch(
            "SELECT result FROM verifications WHERE at >= $1 ORDER BY id DESC", since
        )
        return [row["result"] for row in rows]

    # -- playbook mode overrides ---------------------------------------------------------
    async def playbook_modes(self) -> dict[str, str]:
        rows = await self.db.fetch("SELECT playbook, mode FROM playbook_modes")
        return {row["playbook"]: row["mode"] for row in rows}

    async def set_playbook_mode(
        self, playbook: str, mode: str | None, *, who: str, reason: str
    ) -> None:
        at = self.db.now()
        async with self.db.transaction() as conn:
            if mode is None:
                await conn.execute("DELETE FROM playbook_modes WHERE playbook = $1", playbook)
            else:
                await conn.execute(
                    "INSERT INTO playbook_modes (playbook, mode, who, reason, at) "
                    "VALUES ($1,$2,$3,$4,$5) ON CONFLICT (playbook) DO UPDATE SET mode = "
                    "excluded.mode, who = excluded.who, reason = excluded.reason, at = excluded.at",
                    playbook,
                    mode,
                    who,
                    reason,
                    at,
                )
            details = {"mode": mode}
            await write_audit(conn, who, "set_mode", f"playbook:{playbook}", reason, details, at=at)

    # -- audit ---------------------------------------------------------------------------
    async def record_audit(
        self,
        who: str,
        action: str,
        subject: str,
        reason: str,
        details: dict[str, Any] | None = None,
    ) -> None:
        at = self.db.now()
        async with self.db.transaction() as conn:
            await write_audit(conn, who, action, subject, reason, details, at=at)

    async def audit_log(self, limit: int = 100) -> list[AuditRecord]:
        rows = await self.db.fetch("SELECT * FROM audit ORDER BY id DESC LIMIT $1", limit)
        return records(AuditRecord, rows)


def _iso(value: datetime | None) -> str | None:
    """A time inside an audit row's details, written as SQLite's store writes it."""
    return ts(value) if value is not None else None
