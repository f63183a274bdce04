"""Runs and what they record: the claim of an (episode, playbook), its decisions, the calls it
read, the actions it intended and their outcomes, and the rate-limit ledger over them.

The claim (`claim_run`, a unique (episode, playbook) row) is the idempotency point: re-sent
notifications act at most once per episode.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from remediator.store.base import Fenced
from remediator.store.codec import dumps, ts
from remediator.store.records import (
    ActionRecord,
    ActionState,
    DecisionKind,
    DecisionRecord,
    RunRecord,
    RunState,
)
from remediator.store.sqlite.database import Database
from remediator.store.sqlite.replicas import FENCED, STOPPED
from remediator.store.sqlite.rows import record, records

# An action that may have changed the world: everything but a dry run or a refusal.
_REAL = "('intent', 'succeeded', 'failed', 'interrupted')"
_ACTIONS = "SELECT a.*, r.playbook, r.target_key FROM actions a JOIN runs r ON r.id = a.run_id "
# A run `running` with no real action yet changed nothing: a crash releases it.
_ACTED = "EXISTS (SELECT 1 FROM actions a WHERE a.run_id = runs.id AND a.state != 'would')"
_UNTOUCHED = f"state = 'running' AND NOT {_ACTED}"
# The run is still running under another replica (its parameters: run id, this replica).
_NOT_MINE = (
    "EXISTS (SELECT 1 FROM runs WHERE id = ? AND state = 'running' AND owner IS NOT NULL "
    "AND owner != ?)"
)


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
        await self.db.write1(
            "INSERT INTO decisions (episode_id, playbook, kind, reason, at, run_id) "
            "VALUES (?,?,?,?,?,?)",
            (episode_id, playbook, kind, reason, ts(self.db.now()), run_id),
        )

    async def claim_run(
        self, episode_id: str, playbook: str, target_key: str, mode: str
    ) -> int | None:
        lastrowid, rowcount = await self.db.write1(
            "INSERT INTO runs (episode_id, playbook, target_key, mode, state, started_at, owner) "
            "VALUES (?,?,?,?,'running',?,?) ON CONFLICT (episode_id, playbook) DO NOTHING",
            (episode_id, playbook, target_key, mode, ts(self.db.now()), self.db.replica),
        )
        return lastrowid if rowcount == 1 else None

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
        await self.db.write1(
            "UPDATE runs SET state = ?, finished_at = ?, error = ?, evidence = ?, "
            f"escalation = ? WHERE id = ? AND NOT {FENCED}",
            (
                state,
                ts(self.db.now()),
                error,
                dumps(evidence or {}),
                escalation,
                run_id,
                self.db.replica,
            ),
        )

    async def save_evidence(self, run_id: int, evidence: dict[str, Any]) -> None:
        await self.db.write1(
            f"UPDATE runs SET evidence = ? WHERE id = ? AND NOT {FENCED}",
            (dumps(evidence), run_id, self.db.replica),
        )

    # -- calls and actions ---------------------------------------------------------------
    async def record_call(
        self, run_id: int, episode_id: str, verb: str, resource: str, obj: str, body: Any
    ) -> None:
        await self.db.write1(
            "INSERT INTO calls (run_id, episode_id, at, verb, resource, object, body) "
            "VALUES (?,?,?,?,?,?,?)",
            (run_id, episode_id, ts(self.db.now()), verb, resource, obj, dumps(body)),
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
        at = ts(self.db.now())
        me = self.db.replica
        # One statement: the intent exists only if, when it was written, this replica was
        # not fenced, its lease held and the run was not another replica's.
        lastrowid, rowcount = await self.db.write1(
            "INSERT INTO actions (run_id, episode_id, verb, resource, object, summary, body, "
            "change, state, intended_at, finished_at, owner) SELECT ?,?,?,?,?,?,?,?,?,?,?,? "
            f"WHERE NOT {STOPPED} AND NOT {_NOT_MINE}",
            (
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
                me,
                run_id,
                me,
            ),
        )
        if rowcount != 1 or lastrowid is None:
            raise Fenced(await self._why_fenced(run_id))
        return lastrowid

    async def _why_fenced(self, run_id: int) -> str:
        me = self.db.replica
        rows = await self.db.read("SELECT fenced_at, fenced_by FROM replicas WHERE id = ?", (me,))
        if rows and rows[0]["fenced_at"] is not None:
            return f"replica {me} was fenced by {rows[0]['fenced_by']} at {rows[0]['fenced_at']}"
        owner = await self.db.read("SELECT owner FROM runs WHERE id = ?", (run_id,))
        if owner and owner[0]["owner"] not in (None, me):
            return f"run {run_id} belongs to replica {owner[0]['owner']}"
        return f"the lease of replica {me} is past"

    async def record_outcome(
        self, action_id: int, state: ActionState, *, result: Any = None, error: str | None = None
    ) -> None:
        await self.db.write1(
            "UPDATE actions SET state = ?, finished_at = ?, result = ?, error = ? "
            "WHERE id = ? AND state IN ('intent', 'would')",
            (state, ts(self.db.now()), dumps(result), error, action_id),
        )

    # -- start-up reconciliation ---------------------------------------------------------
    async def unfinished_runs(self, owner: str | None = None) -> list[RunRecord]:
        rows = await self.db.read(
            f"SELECT * FROM runs WHERE state = 'running' AND {_ACTED} "
            "AND (? IS NULL OR owner = ?) ORDER BY id",
            (owner, owner),
        )
        return records(RunRecord, rows)

    async def interrupt_unfinished(self, owner: str | None = None) -> list[ActionRecord]:
        # `owner`: only that replica's runs, and the intents it recorded (a later step of a
        # finished run, a revert, is recorded by whichever replica ran its timer).
        mine = "(? IS NULL OR owner = ?)"
        by = (owner, owner)
        rows = await self.db.read(
            _ACTIONS + "WHERE a.state = 'intent' AND (? IS NULL OR a.owner = ?) ORDER BY a.id",
            by,
        )
        at = ts(self.db.now())
        untouched = f"{_UNTOUCHED} AND {mine}"
        async with self.db.write() as db:
            # A run that died before its first action changed nothing: release its claim so
            # the episode is dispatched again, as if the run had never started.
            await db.execute(
                "INSERT INTO decisions (episode_id, playbook, kind, reason, at, run_id) "
                "SELECT episode_id, playbook, 'skipped', "
                "'interrupted before any action; released to run again', ?, id FROM runs "
                f"WHERE {untouched}",
                (at, *by),
            )
            await db.execute(
                "UPDATE episodes SET firing_handled_at = NULL, dispatch_owner = NULL "
                f"WHERE id IN (SELECT episode_id FROM runs WHERE {untouched})",
                by,
            )
            await db.execute(f"DELETE FROM runs WHERE {untouched}", by)
            await db.execute(
                "UPDATE actions SET state = 'interrupted', finished_at = ?, "
                "error = 'the daemon stopped between intent and outcome' WHERE state = 'intent' "
                f"AND {mine}",
                (at, *by),
            )
            await db.execute(
                "UPDATE runs SET state = 'interrupted', finished_at = ?, "
                f"error = 'the daemon stopped during the run' WHERE state = 'running' AND {mine}",
                (at, *by),
            )
        return [record(ActionRecord, row, state=ActionState.INTERRUPTED) for row in rows]

    # -- reading the record --------------------------------------------------------------
    async def runs_for(self, episode_id: str) -> list[RunRecord]:
        rows = await self.db.read(
            "SELECT * FROM runs WHERE episode_id = ? ORDER BY id", (episode_id,)
        )
        return records(RunRecord, rows)

    async def actions_for(self, episode_id: str) -> list[ActionRecord]:
        rows = await self.db.read(_ACTIONS + "WHERE a.episode_id = ? ORDER BY a.id", (episode_id,))
        return records(ActionRecord, rows)

    async def actions_on(self, object_key: str, after_id: int) -> list[ActionRecord]:
        rows = await self.db.read(
            _ACTIONS + "WHERE a.id > ? AND a.object = ? ORDER BY a.id", (after_id, object_key)
        )
        return records(ActionRecord, rows)

    async def decisions_for(self, episode_id: str) -> list[DecisionRecord]:
        rows = await self.db.read(
            "SELECT * FROM decisions WHERE episode_id = ? ORDER BY id", (episode_id,)
        )
        return records(DecisionRecord, rows)

    async def calls_for(self, episode_id: str) -> list[dict[str, Any]]:
        rows = await self.db.read(
            "SELECT * FROM calls WHERE episode_id = ? ORDER BY id", (episode_id,)
        )
        return [{**dict(row), "body": json.loads(row["body"])} for row in rows]

    async def count_runs(
        self,
        *,
        since: datetime,
        states: Sequence[RunState],
        target_key: str | None = None,
        playbook: str | None = None,
    ) -> int:
        where = ["started_at >= ?", f"state IN ({','.join('?' * len(states))})"]
        params: list[Any] = [ts(since), *states]
        for clause, value in (("target_key = ?", target_key), ("playbook = ?", playbook)):
            if value is not None:
                where.append(clause)
                params.append(value)
        return int(
            await self.db.scalar(f"SELECT count(*) FROM runs WHERE {' AND '.join(where)}", params)
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
        rows = await self.db.read(sql, params)
        return [datetime.fromisoformat(row["first"]) for row in rows]
