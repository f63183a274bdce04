"""Runs and what they record: the claim of an (episode, playbook), its decisions, the calls it
read, the actions it intended and their outcomes, and the rate-limit ledger over them.

The claim (`claim_run`, a unique (episode, playbook) row, INSERT ... ON CONFLICT DO NOTHING) is
the idempotency point: re-sent notifications and every replica act at most once per episode.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from remediator.store.base import Fenced
from remediator.store.codec import dumps
from remediator.store.postgres.database import Database
from remediator.store.postgres.replicas import fenced
from remediator.store.postgres.rows import plain, record, records
from remediator.store.records import (
    ActionRecord,
    ActionState,
    DecisionKind,
    DecisionRecord,
    RunRecord,
    RunState,
)

# An action that may have changed the world: everything but a dry run or a refusal.
_REAL = "('intent', 'succeeded', 'failed', 'interrupted')"
_ACTIONS = "SELECT a.*, r.playbook, r.target_key FROM actions a JOIN runs r ON r.id = a.run_id "
# A run `running` with no real action yet changed nothing: a crash releases it.
_ACTED = "EXISTS (SELECT 1 FROM actions a WHERE a.run_id = runs.id AND a.state != 'would')"
_UNTOUCHED = f"state = 'running' AND NOT {_ACTED}"


def acting_runs_query(
    since: datetime | None,
    target_key: str | None,
    playbook: str | None,
    episode_id: str | None,
    exclude_run: int | None,
) -> tuple[str, list[Any]]:
    """The rate-limit ledger's query (answered from the `actions_real` or `actions_episode`
    index, never by scanning every action the retention keeps)."""
    where = [f"a.state IN {_REAL}"]
    params: list[Any] = []
    for clause, value in (
        ("a.intended_at >= ${}", since),
        ("r.target_key = ${}", target_key),
        ("r.playbook = ${}", playbook),
        ("a.episode_id = ${}", episode_id),
        ("r.id != ${}", exclude_run),
    ):
        if value is not None:
            params.append(value)
            where.append(clause.format(len(params)))
    sql = (
        "SELECT min(a.intended_at) AS first FROM actions a JOIN runs r ON r.id = a.run_id "
        f"WHERE {' AND '.join(where)} GROUP BY r.id ORDER BY first"
    )
    return sql, params


class RunRepository:
    def __init__(self, db: Database) -> None:
        self.db = db

    # -- decisions and runs --------------------------------------------------------------
    async def record_decision(
        self,
        episode_id: str,
        playbook: str | None,
        kind: DecisionKind,
        reason: str,
        run_id: int | None = None,
    ) -> None:
        await self.db.execute(
            "INSERT INTO decisions (episode_id, playbook, kind, reason, at, run_id) "
            "VALUES ($1,$2,$3,$4,$5,$6)",
            episode_id,
            playbook,
            kind,
            reason,
            self.db.now(),
            run_id,
        )

    async def claim_run(
        self, episode_id: str, playbook: str, target_key: str, mode: str
    ) -> int | None:
        run_id: int | None = await self.db.fetchval(
            "INSERT INTO runs (episode_id, playbook, target_key, mode, state, started_at, owner) "
            "VALUES ($1,$2,$3,$4,'running',$5,$6) ON CONFLICT (episode_id, playbook) DO NOTHING "
            "RETURNING id",
            episode_id,
            playbook,
            target_key,
            mode,
            self.db.now(),
            self.db.replica,
        )
        return run_id

    async def finish_run(
        self,
        run_id: int,
        state: RunState,
        *,
        error: str | None = None,
        evidence: dict[str, Any] | None = None,
        escalation: str | None = None,
    ) -> None:
        # A fenced replica's run was reconciled by another: what it says now is not recorded.
        await self.db.execute(
            "UPDATE runs SET state = $1, finished_at = $2, error = $3, evidence = $4, "
            f"escalation = $5 WHERE id = $6 AND NOT {fenced(7)}",
            state,
            self.db.now(),
            error,
            dumps(evidence or {}),
            escalation,
            run_id,
            self.db.replica,
        )

    async def save_evidence(self, run_id: int, evidence: dict[str, Any]) -> None:
        await self.db.execute(
            f"UPDATE runs SET evidence = $1 WHERE id = $2 AND NOT {fenced(3)}",
            dumps(evidence),
            run_id,
            self.db.replica,
        )

    # -- calls and actions ---------------------------------------------------------------
    async def record_call(
        self, run_id: int, episode_id: str, verb: str, resource: str, obj: str, body: Any
    ) -> None:
        await self.db.execute(
            "INSERT INTO calls (run_id, episode_id, at, verb, resource, object, body) "
            "VALUES ($1,$2,$3,$4,$5,$6,$7)",
            run_id,
            episode_id,
            self.db.now(),
            verb,
            resource,
            obj,
            dumps(body),
        )

    async def record_intent(
        self,
        run_id: int,
        episode_id: str,
        *,
        verb: str,
        resource: str,
        obj: str,
        summary: str,
        body: Any,
        change: dict[str, Any],
        dry_run: bool,
    ) -> int:
        state = ActionState.WOULD if dry_run else ActionState.INTENT
        at = self.db.now()
        me = self.db.replica
        async with self.db.transaction() as conn:
            # The replica row FOR SHARE: the fencing UPDATE waits for this transaction, or this
            # one waits for the fence and then reads it. Its lease on PostgreSQL's clock.
            replica = await conn.fetchrow(
                "SELECT fenced_at, fenced_by, lease_until > clock_timestamp() AS leased "
                "FROM replicas WHERE id = $1 FOR SHARE",
                me,
            )
            if replica is not None and replica["fenced_at"] is not None:
                raise Fenced(
                    f"replica {me} was fenced by {replica['fenced_by']} at "
                    f"{replica['fenced_at'].isoformat()}"
                )
            if replica is not None and not replica["leased"]:
                raise Fenced(f"the lease of replica {me} is past")
            owner = await conn.fetchval(
                "SELECT owner FROM runs WHERE id = $1 AND state = 'running' FOR SHARE", run_id
            )
            if owner is not None and owner != me:
                raise Fenced(f"run {run_id} belongs to replica {owner}")
            action_id: int = await conn.fetchval(
                "INSERT INTO actions (run_id, episode_id, verb, resource, object, summary, body, "
                "change, state, intended_at, finished_at, owner) "
                "VALUES ($1,$2,$3,$4,$5,$6,$7,$8,$9,$10,$11,$12) RETURNING id",
                run_id,
                episode_id,
                verb,
                resource,
                obj,
                summary,
                dumps(body),
                dumps(change),
                state,
                at,
                at if dry_run else None,
                me,
            )
        return action_id

    async def record_outcome(
        self, action_id: int, state: ActionState, *, result: Any = None, error: str | None = None
    ) -> None:
        await self.db.execute(
            "UPDATE actions SET state = $1, finished_at = $2, result = $3, error = $4 "
            "WHERE id = $5 AND state IN ('intent', 'would')",
            state,
            self.db.now(),
            dumps(result),
            error,
            action_id,
        )

    # -- start-up reconciliation ---------------------------------------------------------
    async def unfinished_runs(self, owner: str | None = None) -> list[RunRecord]:
        rows = await self.db.fetch(
            f"SELECT * FROM runs WHERE state = 'running' AND {_ACTED} "
            "AND ($1::text IS NULL OR owner = $1) ORDER BY id",
            owner,
        )
        return records(RunRecord, rows)

    async def interrupt_unfinished(self, owner: str | None = None) -> list[ActionRecord]:
        # `owner`: only that replica's runs, and the intents it recorded (a later step of a
        # finished run, a revert, is recorded by whichever replica ran its timer).
        mine = "($2::text IS NULL OR owner = $2)"
        untouched = f"{_UNTOUCHED} AND {mine}"
        at = self.db.now()
        async with self.db.transaction() as conn:
            rows = await conn.fetch(
                _ACTIONS + "WHERE a.state = 'intent' AND ($1::text IS NULL OR a.owner = $1) "
                "ORDER BY a.id",
                owner,
            )
            # A run that died before its first action changed nothing: release its claim so
            # the episode is dispatched again, as if the run had never started.
            await conn.execute(
                "INSERT INTO decisions (episode_id, playbook, kind, reason, at, run_id) "
                "SELECT episode_id, playbook, 'skipped', "
                "'interrupted before any action; released to run again', $1, id FROM runs "
                f"WHERE {untouched}",
                at,
                owner,
            )
            await conn.execute(
                "UPDATE episodes SET firing_handled_at = NULL, dispatch_owner = NULL "
                f"WHERE id IN (SELECT episode_id FROM runs WHERE {untouched.replace('$2', '$1')})",
                owner,
            )
            await conn.execute(f"DELETE FROM runs WHERE {untouched.replace('$2', '$1')}", owner)
            await conn.execute(
                "UPDATE actions SET state = 'interrupted', finished_at = $1, "
                "error = 'the daemon stopped between intent and outcome' WHERE state = 'intent' "
                f"AND {mine}",
                at,
                owner,
            )
            await conn.execute(
                "UPDATE runs SET state = 'interrupted', finished_at = $1, "
                f"error = 'the daemon stopped during the run' WHERE state = 'running' AND {mine}",
                at,
                owner,
            )
        return [record(ActionRecord, row, state=ActionState.INTERRUPTED) for row in rows]

    # -- reading the record --------------------------------------------------------------
    async def runs_for(self, episode_id: str) -> list[RunRecord]:
        rows = await self.db.fetch(
            "SELECT * FROM runs WHERE episode_id = $1 ORDER BY id", episode_id
        )
        return records(RunRecord, rows)

    async def actions_for(self, episode_id: str) -> list[ActionRecord]:
        rows = await self.db.fetch(_ACTIONS + "WHERE a.episode_id = $1 ORDER BY a.id", episode_id)
        return records(ActionRecord, rows)

    async def actions_on(self, object_key: str, after_id: int) -> list[ActionRecord]:
        rows = await self.db.fetch(
            _ACTIONS + "WHERE a.id > $1 AND a.object = $2 ORDER BY a.id", after_id, object_key
        )
        return records(ActionRecord, rows)

    async def decisions_for(self, episode_id: str) -> list[DecisionRecord]:
        rows = await self.db.fetch(
            "SELECT * FROM decisions WHERE episode_id = $1 ORDER BY id", episode_id
        )
        return records(DecisionRecord, rows)

    async def calls_for(self, episode_id: str) -> list[dict[str, Any]]:
        rows = await self.db.fetch(
            "SELECT * FROM calls WHERE episode_id = $1 ORDER BY id", episode_id
        )
        return [{**plain(row), "body": json.loads(row["body"])} for row in rows]

    async def count_runs(
        self,
        *,
        since: datetime,
        states: Sequence[RunState],
        target_key: str | None = None,
        playbook: str | None = None,
    ) -> int:
        where = ["started_at >= $1", "state = ANY($2::text[])"]
        params: list[Any] = [since, list(states)]
        for clause, value in (("target_key = ${}", target_key), ("playbook = ${}", playbook)):
            if value is not None:
                params.append(value)
                where.append(clause.format(len(params)))
        return int(
            await self.db.fetchval(
                f"SELECT count(*) FROM runs WHERE {' AND '.join(where)}", *params
            )
        )

    # -- the rate-limit ledger -----------------------------------------------------------
    async def acting_runs(
        self,
        *,
        since: datetime | None = None,
        target_key: str | None = None,
        playbook: str | None = None,
        episode_id: str | None = None,
        exclude_run: int | None = None,
    ) -> list[datetime]:
        sql, params = acting_runs_query(since, target_key, playbook, episode_id, exclude_run)
        rows = await self.db.fetch(sql, *params)
        return [row["first"] for row in rows]
