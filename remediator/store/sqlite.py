"""The embedded store: one SQLite file in WAL mode, nothing else to run.

All writes go through one connection under one asyncio lock, so a multi-statement write is one
transaction even though many coroutines share the connection. Intake writes arrive in batches
(see engine/intake.py) so that one fsync covers many notifications.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import sqlite3
import zlib
from collections.abc import AsyncIterator, Iterable, Mapping, Sequence
from contextlib import asynccontextmanager
from datetime import datetime, timedelta
from importlib import resources
from pathlib import Path
from typing import Any

import aiosqlite

from remediator.alertmanager import (
    Alert,
)
from remediator.store.base import DigestWork, StoreUnavailable
from remediator.store.codec import dumps, now, parse_ts, ts
from remediator.store.journal import Journal, journal_path
from remediator.store.records import (
    ActionRecord,
    ActionState,
    DecisionRecord,
    DigestPlan,
    EpisodeRecord,
    EpisodeState,
    EscalationRecord,
    IncomingNotification,
    JournalEntry,
    NewEpisode,
    OutboxItem,
    RunRecord,
    TimerRecord,
    WorkItem,
    WorkKind,
)
from remediator.store.sqlite_admin import AdminSQL
from remediator.store.sqlite_governance import GovernanceSQL
from remediator.store.sqlite_incidents import IncidentSQL
from remediator.store.sqlite_outbox import OutboxSQL, add_columns, outbox_item
from remediator.store.sqlite_slack import SlackSQL
from remediator.store.sqlite_storm import StormSQL
from remediator.store.writelock import PriorityLock
from remediator.tasks import stop_tasks

_MAX_PARAMS = 900  # below SQLite's historic limit of 999 host parameters
RESEND_TOUCH = timedelta(seconds=60)


class SQLiteStore(GovernanceSQL, AdminSQL, OutboxSQL, SlackSQL, IncidentSQL, StormSQL):
    def __init__(
        self, path: Path, *, synchronous: str = "full", busy_timeout_ms: int = 2000
    ) -> None:
        self.path = path
        self._synchronous = synchronous.upper()
        self._busy_timeout_ms = busy_timeout_ms
        self._db: aiosqlite.Connection | None = None
        # Reads use their own connection (and thread), so they never queue behind writes.
        # Every write returns only after its commit, so a later read always sees it.
        self._reader: aiosqlite.Connection | None = None
        self._lock = PriorityLock()
        # Group commit: writers share one open transaction; the committer task commits it
        # (one fsync) for everyone queued so far and resolves `_tx_done` for them.
        self._tx_done: asyncio.Future[None] | None = None
        self._dirty = asyncio.Event()
        self._committer: asyncio.Task[None] | None = None
        self.journal_file = Journal(journal_path(path), synchronous=synchronous)
        self._digested = 0  # journal sequence number digested through (committed)
        # Re-sends counted but not written yet, by episode: the row is touched at most once per
        # RESEND_TOUCH, and that touch adds them (reads add them too; close writes the rest).
        self._unsaved_notifications: dict[str, int] = {}

    # -- lifecycle -----------------------------------------------------------------------
    async def open(self) -> None:
        try:
            if self.path.parent != Path():
                self.path.parent.mkdir(parents=True, exist_ok=True)
            db = await aiosqlite.connect(self.path)
            await db.execute(f"PRAGMA busy_timeout = {int(self._busy_timeout_ms)}")
            await db.execute("PRAGMA journal_mode = WAL")
            await db.execute(f"PRAGMA synchronous = {self._synchronous}")
            await db.create_function("zlib_compress", 1, _compress, deterministic=True)
            schema = resources.files("remediator.store").joinpath("schema.sql").read_text()
            await db.executescript(schema)
            await add_columns(db)
            await db.commit()
            async with db.execute("SELECT seq FROM digest_state WHERE name = 'journal'") as cur:
                row = await cur.fetchone()
            self._digested = int(row[0]) if row is not None else 0
            reader = await aiosqlite.connect(self.path)
            await reader.execute(f"PRAGMA busy_timeout = {int(self._busy_timeout_ms)}")
            await reader.execute("PRAGMA query_only = 1")
        except (sqlite3.Error, OSError) as exc:
            raise StoreUnavailable(f"cannot open state file {self.path}: {exc}") from exc
        self._db = db
        self._reader = reader
        self._committer = asyncio.create_task(self._commit_loop())
        await self.journal_file.open(self._digested)

    async def close(self) -> None:
        if self._unsaved_notifications and self._db is not None:
            counts, self._unsaved_notifications = self._unsaved_notifications, {}
            with contextlib.suppress(StoreUnavailable):
                async with self._write() as db:
                    await db.executemany(
                        "UPDATE episodes SET notifications = notifications + ? WHERE id = ?",
                        [(n, eid) for eid, n in counts.items()],
                    )
        if self._committer is not None:
            await stop_tasks([self._committer])
            self._committer = None
            async with self._lock.hold(urgent=True):
                await self._commit()
        await self.journal_file.close()
        for connection in (self._reader, self._db):
            if connection is not None:
                await connection.close()
        self._db = self._reader = None

    @property
    def db(self) -> aiosqlite.Connection:
        if self._db is None:
            raise StoreUnavailable("store is not open")
        return self._db

    @asynccontextmanager
    async def _write(self, *, urgent: bool = False) -> AsyncIterator[aiosqlite.Connection]:
        """One atomic write, durable when the `async with` ends.

        The block runs inside a savepoint of the shared transaction, so a failing block undoes
        only itself; the caller then waits for the group commit that covers its writes.
        `urgent` writes (webhook intake) go before queued background writes.
        """
        async with self._lock.hold(urgent=urgent):
            db = self.db
            try:
                self._begin()
                if not db.in_transaction:
                    await db.execute("BEGIN")
                await db.execute("SAVEPOINT w")
            except sqlite3.Error as exc:
                raise StoreUnavailable(f"state write failed: {exc}") from exc
            try:
                yield db
            except BaseException as exc:
                with contextlib.suppress(sqlite3.Error):
                    await db.execute("ROLLBACK TO w")
                    await db.execute("RELEASE w")
                self._dirty.set()  # the others' writes in this transaction still get committed
                if isinstance(exc, sqlite3.Error):
                    raise StoreUnavailable(f"state write failed: {exc}") from exc
                raise
            try:
                await db.execute("RELEASE w")
            except sqlite3.Error as exc:
                raise StoreUnavailable(f"state write failed: {exc}") from exc
            done = self._tx_done
            self._dirty.set()
        assert done is not None
        await asyncio.shield(done)

    async def _write1(
        self, sql: str, params: Sequence[Any] = (), *, urgent: bool = False
    ) -> tuple[int | None, int]:
        """A single-statement write (SQLite undoes a failed statement by itself, so no
        savepoint is needed): returns (lastrowid, rowcount) once durable."""
        async with self._lock.hold(urgent=urgent):
            db = self.db
            try:
                self._begin()
                if not db.in_transaction:
                    await db.execute("BEGIN")
                cursor = await db.execute(sql, params)
            except sqlite3.Error as exc:
                self._dirty.set()
                raise StoreUnavailable(f"state write failed: {exc}") from exc
            result = (cursor.lastrowid, cursor.rowcount)
            done = self._tx_done
            self._dirty.set()
        assert done is not None
        await asyncio.shield(done)
        return result

    def _begin(self) -> None:
        # Before any await: a cancellation mid-BEGIN must still leave a commit to wait for.
        if self._tx_done is None:
            self._tx_done = asyncio.get_running_loop().create_future()

    async def _commit_loop(self) -> None:
        while True:
            await self._dirty.wait()
            # Urgent, like intake: whoever waits for durability should not wait for background
            # writes queued behind; those land in the next commit.
            async with self._lock.hold(urgent=True):
                self._dirty.clear()
                await self._commit()

    async def _commit(self) -> None:
        done, self._tx_done = self._tx_done, None
        db = self._db
        if db is None or not db.in_transaction:
            if done is not None and not done.done():
                done.set_result(None)
            return
        try:
            await db.commit()
        except sqlite3.Error as exc:
            await self._rollback(db)
            if done is not None and not done.done():
                done.set_exception(StoreUnavailable(f"state commit failed: {exc}"))
            return
        if done is not None and not done.done():
            done.set_result(None)

    @staticmethod
    async def _rollback(db: aiosqlite.Connection) -> None:
        with contextlib.suppress(sqlite3.Error):  # the original error is the one to report
            await db.rollback()

    async def _read(self, sql: str, params: Iterable[Any] = ()) -> list[sqlite3.Row]:
        try:
            if self._reader is None:
                raise StoreUnavailable("store is not open")
            async with self._reader.execute(sql, tuple(params)) as cursor:
                cursor.row_factory = sqlite3.Row
                return list(await cursor.fetchall())
        except sqlite3.Error as exc:
            raise StoreUnavailable(f"state read failed: {exc}") from exc

    async def ping(self) -> None:
        async with self._lock.hold(urgent=True):
            db = self.db
            await self._commit()  # writes pending in the shared transaction go first
            try:
                # BEGIN IMMEDIATE takes the write lock: a locked or read-only file fails here.
                await db.execute("BEGIN IMMEDIATE")
                await db.rollback()
            except sqlite3.Error as exc:
                await self._rollback(db)
                raise StoreUnavailable(f"state store not writable: {exc}") from exc
        await self.journal_file.ping()

    # -- intake --------------------------------------------------------------------------
    async def journal(self, batch: Sequence[IncomingNotification]) -> list[str]:
        seqs = await self.journal_file.append([(i.received_at, i.body) for i in batch])
        return [_notification_id(seq) for seq in seqs]

    async def undigested(self, limit: int) -> list[JournalEntry]:
        rows = await self.journal_file.read(self._digested, limit)
        return [JournalEntry(_notification_id(seq), seq, at, body) for seq, at, body in rows]

    async def count_undigested(self) -> int:
        return await self.journal_file.count(self._digested)

    async def _statuses(self, ids: Sequence[str]) -> dict[str, tuple[str, str, int]]:
        """(status, last_seen, no_work) of the known episodes among `ids`."""
        found: dict[str, tuple[str, str, int]] = {}
        for start in range(0, len(ids), _MAX_PARAMS):
            chunk = ids[start : start + _MAX_PARAMS]
            marks = ",".join("?" * len(chunk))
            async with self.db.execute(
                f"SELECT id, status, last_seen, no_work FROM episodes WHERE id IN ({marks})",
                chunk,
            ) as cursor:
                for row in await cursor.fetchall():
                    found[row[0]] = (row[1], row[2], row[3])
        return found

    @asynccontextmanager
    async def digesting(self, episode_ids: Sequence[str]) -> AsyncIterator[DigestWork]:
        async with self._write() as db:
            work = _SQLiteDigest(self, db, await self._statuses(episode_ids))
            yield work
        if work.through:
            self._digested = max(self._digested, work.through)
            await self.journal_file.forget(self._digested)

    async def pending_work(self, kind: WorkKind, limit: int, after: str = "") -> list[WorkItem]:
        column = "firing_handled_at" if kind is WorkKind.FIRING else "resolved_handled_at"
        rows = await self._read(
            f"SELECT *, ? AS work FROM episodes WHERE status = ? AND {column} IS NULL "
            "AND id > ? ORDER BY id LIMIT ?",
            (kind.value, kind.value, after, limit),
        )
        items = []
        for row in rows:
            alert = Alert(
                status=row["status"],
                labels=json.loads(row["labels"]),
                annotations=json.loads(row["annotations"]),
                startsAt=datetime.fromisoformat(row["starts_at"]),
                endsAt=parse_ts(row["resolved_at"]),
                generatorURL=row["generator_url"],
                fingerprint=row["fingerprint"],
            )
            items.append(WorkItem(WorkKind(row["work"]), row["id"], alert))
        return items

    async def mark_handled(self, item: WorkItem) -> None:
        column = "firing_handled_at" if item.kind is WorkKind.FIRING else "resolved_handled_at"
        await self._write1(
            f"UPDATE episodes SET {column} = ? WHERE id = ?", (ts(now()), item.episode_id)
        )

    # -- decisions and runs --------------------------------------------------------------
    async def record_decision(
        self,
        episode_id: str,
        playbook: str | None,
        kind: str,
        reason: str,
        run_id: int | None = None,
    ) -> None:
        await self._write1(
            "INSERT INTO decisions (episode_id, playbook, kind, reason, at, run_id) "
            "VALUES (?,?,?,?,?,?)",
            (episode_id, playbook, kind, reason, ts(now()), run_id),
        )

    async def claim_run(
        self, episode_id: str, playbook: str, target_key: str, mode: str
    ) -> int | None:
        lastrowid, rowcount = await self._write1(
            "INSERT INTO runs (episode_id, playbook, target_key, mode, state, started_at) "
            "VALUES (?,?,?,?,'running',?) ON CONFLICT (episode_id, playbook) DO NOTHING",
            (episode_id, playbook, target_key, mode, ts(now())),
        )
        return lastrowid if rowcount == 1 else None

    async def finish_run(
        self,
        run_id: int,
        state: str,
        *,
        error: str | None = None,
        evidence: dict[str, Any] | None = None,
        escalation: str | None = None,
    ) -> None:
        await self._write1(
            "UPDATE runs SET state = ?, finished_at = ?, error = ?, evidence = ?, "
            "escalation = ? WHERE id = ?",
            (state, ts(now()), error, dumps(evidence or {}), escalation, run_id),
        )

    async def record_call(
        self, run_id: int, episode_id: str, verb: str, resource: str, obj: str, body: Any
    ) -> None:
        await self._write1(
            "INSERT INTO calls (run_id, episode_id, at, verb, resource, object, body) "
            "VALUES (?,?,?,?,?,?,?)",
            (run_id, episode_id, ts(now()), verb, resource, obj, dumps(body)),
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
        at = ts(now())
        lastrowid, _rowcount = await self._write1(
            "INSERT INTO actions (run_id, episode_id, verb, resource, object, summary, body, "
            "change, state, intended_at, finished_at) VALUES (?,?,?,?,?,?,?,?,?,?,?)",
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
            ),
        )
        assert lastrowid is not None
        return lastrowid

    async def record_outcome(
        self, action_id: int, state: str, *, result: Any = None, error: str | None = None
    ) -> None:
        await self._write1(
            "UPDATE actions SET state = ?, finished_at = ?, result = ?, error = ? WHERE id = ?",
            (state, ts(now()), dumps(result), error, action_id),
        )

    async def interrupt_unfinished(self) -> list[ActionRecord]:
        rows = await self._read(
            "SELECT a.*, r.playbook, r.target_key FROM actions a JOIN runs r ON r.id = a.run_id "
            "WHERE a.state = 'intent' ORDER BY a.id"
        )
        at = ts(now())
        async with self._write() as db:
            # A run that died before its first action changed nothing: release its claim so
            # the episode is dispatched again, as if the run had never started.
            await db.execute(
                "INSERT INTO decisions (episode_id, playbook, kind, reason, at, run_id) "
                "SELECT episode_id, playbook, 'skipped', "
                "'interrupted before any action; released to run again', ?, id FROM runs r "
                "WHERE state = 'running' AND NOT EXISTS "
                "(SELECT 1 FROM actions a WHERE a.run_id = r.id AND a.state != 'would')",
                (at,),
            )
            await db.execute(
                "UPDATE episodes SET firing_handled_at = NULL WHERE id IN (SELECT episode_id "
                "FROM runs r WHERE state = 'running' AND NOT EXISTS "
                "(SELECT 1 FROM actions a WHERE a.run_id = r.id AND a.state != 'would'))"
            )
            await db.execute(
                "DELETE FROM runs WHERE state = 'running' AND NOT EXISTS "
                "(SELECT 1 FROM actions a WHERE a.run_id = runs.id AND a.state != 'would')"
            )
            await db.execute(
                "UPDATE actions SET state = 'interrupted', finished_at = ?, "
                "error = 'the daemon stopped between intent and outcome' WHERE state = 'intent'",
                (at,),
            )
            await db.execute(
                "UPDATE runs SET state = 'interrupted', finished_at = ?, "
                "error = 'the daemon stopped during the run' WHERE state = 'running'",
                (at,),
            )
        return [_action(row, state=ActionState.INTERRUPTED) for row in rows]

    # -- escalation and outbox -----------------------------------------------------------
    async def add_escalation(
        self, episode_id: str, run_id: int | None, reason: str, details: dict[str, Any]
    ) -> int:
        lastrowid, _rowcount = await self._write1(
            "INSERT INTO escalations (episode_id, run_id, reason, details, created_at) "
            "VALUES (?,?,?,?,?)",
            (episode_id, run_id, reason, dumps(details), ts(now())),
        )
        assert lastrowid is not None
        return lastrowid

    async def enqueue_outbox(
        self, channel: str, episode_id: str | None, kind: str, payload: dict[str, Any]
    ) -> int:
        at = ts(now())
        lastrowid, _rowcount = await self._write1(
            "INSERT INTO outbox (channel, episode_id, kind, payload, created_at, "
            "next_attempt_at) VALUES (?,?,?,?,?,?)",
            (channel, episode_id, kind, dumps(payload), at, at),
        )
        assert lastrowid is not None
        return lastrowid

    async def due_outbox(self, channel: str, at: datetime, limit: int) -> list[OutboxItem]:
        rows = await self._read(
            "SELECT * FROM outbox WHERE channel = ? AND delivered_at IS NULL "
            "AND dead_at IS NULL AND next_attempt_at <= ? ORDER BY id LIMIT ?",
            (channel, ts(at), limit),
        )
        return [outbox_item(row) for row in rows]

    async def outbox_delivered(self, item_id: int, at: datetime) -> None:
        await self._write1(
            "UPDATE outbox SET delivered_at = ?, attempts = attempts + 1 WHERE id = ?",
            (ts(at), item_id),
        )

    async def outbox_failed(self, item_id: int, error: str, retry_at: datetime) -> None:
        await self._write1(
            "UPDATE outbox SET attempts = attempts + 1, last_error = ?, next_attempt_at = ? "
            "WHERE id = ?",
            (error[:2000], ts(retry_at), item_id),
        )

    async def outbox_pending(self) -> dict[str, int]:
        rows = await self._read(
            "SELECT channel, count(*) AS n FROM outbox WHERE delivered_at IS NULL "
            "AND dead_at IS NULL GROUP BY channel"
        )
        return {row["channel"]: row["n"] for row in rows}

    # -- durable timers ------------------------------------------------------------------
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
        lastrowid, _rowcount = await self._write1(
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
                ts(now()),
                "held" if held else "waiting",
            ),
        )
        assert lastrowid is not None
        return lastrowid

    async def arm_timers(self, episode_id: str, resolved_at: datetime) -> int:
        rows = await self._read(
            "SELECT id, delay_seconds FROM timers WHERE episode_id = ? AND due_at IS NULL "
            "AND state = 'waiting'",
            (episode_id,),
        )
        async with self._write() as db:
            await db.executemany(
                "UPDATE timers SET due_at = ? WHERE id = ?",
                [(ts(resolved_at + timedelta(seconds=row[1])), row[0]) for row in rows],
            )
        return len(rows)

    async def due_timers(self, at: datetime, limit: int) -> list[TimerRecord]:
        rows = await self._read(
            "SELECT * FROM timers WHERE state = 'waiting' AND due_at IS NOT NULL AND due_at <= ? "
            "ORDER BY due_at, id LIMIT ?",
            (ts(at), limit),
        )
        return [_timer(row) for row in rows]

    async def finish_timer(self, timer_id: int, state: str, error: str | None = None) -> None:
        await self._write1(
            "UPDATE timers SET state = ?, finished_at = ?, error = ? WHERE id = ?",
            (state, ts(now()), error, timer_id),
        )

    async def cancel_timers(self, episode_id: str, kind: str | None = None) -> int:
        _lastrowid, rowcount = await self._write1(
            "UPDATE timers SET state = 'cancelled', finished_at = ? WHERE episode_id = ? "
            "AND state IN ('waiting', 'held') AND (? IS NULL OR kind = ?)",
            (ts(now()), episode_id, kind, kind),
        )
        return rowcount

    async def timers_for(self, episode_id: str) -> list[TimerRecord]:
        rows = await self._read(
            "SELECT * FROM timers WHERE episode_id = ? ORDER BY id", (episode_id,)
        )
        return [_timer(row) for row in rows]

    # -- reading the record --------------------------------------------------------------
    async def get_episode(self, episode_id: str) -> EpisodeRecord | None:
        rows = await self._read("SELECT * FROM episodes WHERE id = ?", (episode_id,))
        return self._counted(_episode(rows[0])) if rows else None

    async def list_episodes(
        self,
        *,
        status: str | None = None,
        alertname: str | None = None,
        namespace: str | None = None,
        playbook: str | None = None,
        since: datetime | None = None,
        limit: int = 100,
    ) -> list[EpisodeRecord]:
        where, params = [], []
        if status is not None:
            where.append("e.status = ?")
            params.append(status)
        if alertname is not None:
            where.append("e.alertname = ?")
            params.append(alertname)
        if namespace is not None:
            where.append("e.namespace = ?")
            params.append(namespace)
        if playbook is not None:
            where.append(
                "EXISTS (SELECT 1 FROM runs r WHERE r.episode_id = e.id AND r.playbook = ?)"
            )
            params.append(playbook)
        if since is not None:
            where.append("e.first_seen >= ?")
            params.append(ts(since))
        clause = f"WHERE {' AND '.join(where)}" if where else ""
        rows = await self._read(
            f"SELECT e.* FROM episodes e {clause} ORDER BY e.first_seen DESC LIMIT ?",
            [*params, limit],
        )
        return [self._counted(_episode(row)) for row in rows]

    def _counted(self, episode: EpisodeRecord) -> EpisodeRecord:
        """With the re-sends received since the row was last touched."""
        unsaved = self._unsaved_notifications.get(episode.id)
        if not unsaved:
            return episode
        return dataclasses.replace(episode, notifications=episode.notifications + unsaved)

    async def runs_for(self, episode_id: str) -> list[RunRecord]:
        rows = await self._read(
            "SELECT * FROM runs WHERE episode_id = ? ORDER BY id", (episode_id,)
        )
        return [
            RunRecord(
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
            for row in rows
        ]

    async def actions_for(self, episode_id: str) -> list[ActionRecord]:
        rows = await self._read(
            "SELECT a.*, r.playbook, r.target_key FROM actions a JOIN runs r ON r.id = a.run_id "
            "WHERE a.episode_id = ? ORDER BY a.id",
            (episode_id,),
        )
        return [_action(row) for row in rows]

    async def decisions_for(self, episode_id: str) -> list[DecisionRecord]:
        rows = await self._read(
            "SELECT * FROM decisions WHERE episode_id = ? ORDER BY id", (episode_id,)
        )
        return [
            DecisionRecord(
                id=row["id"],
                episode_id=row["episode_id"],
                playbook=row["playbook"],
                kind=row["kind"],
                reason=row["reason"],
                at=datetime.fromisoformat(row["at"]),
                run_id=row["run_id"],
            )
            for row in rows
        ]

    async def calls_for(self, episode_id: str) -> list[dict[str, Any]]:
        rows = await self._read(
            "SELECT * FROM calls WHERE episode_id = ? ORDER BY id", (episode_id,)
        )
        return [{**dict(row), "body": json.loads(row["body"])} for row in rows]

    async def escalations_for(self, episode_id: str) -> list[EscalationRecord]:
        rows = await self._read(
            "SELECT * FROM escalations WHERE episode_id = ? ORDER BY id", (episode_id,)
        )
        return [
            EscalationRecord(
                id=row["id"],
                episode_id=row["episode_id"],
                run_id=row["run_id"],
                reason=row["reason"],
                details=json.loads(row["details"]),
                created_at=datetime.fromisoformat(row["created_at"]),
            )
            for row in rows
        ]

    async def count_runs(
        self,
        *,
        since: datetime,
        states: Sequence[str],
        target_key: str | None = None,
        playbook: str | None = None,
    ) -> int:
        where = ["started_at >= ?", f"state IN ({','.join('?' * len(states))})"]
        params: list[Any] = [ts(since), *states]
        if target_key is not None:
            where.append("target_key = ?")
            params.append(target_key)
        if playbook is not None:
            where.append("playbook = ?")
            params.append(playbook)
        rows = await self._read(f"SELECT count(*) FROM runs WHERE {' AND '.join(where)}", params)
        return int(rows[0][0])

    async def count_episodes(self) -> int:
        rows = await self._read("SELECT count(*) FROM episodes")
        return int(rows[0][0])

    async def prune(self, older_than: datetime) -> int:
        _lastrowid, rowcount = await self._write1(
            "DELETE FROM notifications WHERE received_at < ?",
            (ts(older_than),),
        )
        return rowcount


def _notification_id(seq: int) -> str:
    return f"n-{seq:012d}"


def _compress(body: bytes) -> bytes:
    return zlib.compress(body, 1)


class _SQLiteDigest:
    """One slice's transaction: the engine reads `known`, plans, and applies here."""

    def __init__(
        self, store: SQLiteStore, db: aiosqlite.Connection, found: dict[str, tuple[str, str, int]]
    ) -> None:
        self._store = store
        self._db = db
        self._last_seen = {eid: last_seen for eid, (_, last_seen, _) in found.items()}
        self.known: Mapping[str, EpisodeState] = {
            eid: EpisodeState(status, bool(no_work)) for eid, (status, _, no_work) in found.items()
        }
        self.through = 0  # the journal's sequence number this slice digests through

    async def apply(self, plan: DigestPlan) -> None:
        db, at = self._db, ts(now())
        unsaved = self._store._unsaved_notifications
        last_seen = self._last_seen
        for eid in [e.id for e in plan.new] + [e.id for e in plan.resolved]:
            last_seen[eid] = at
        # A re-send touches the episode row at most once per RESEND_TOUCH: re-sends come in
        # floods (every group, every peer) and each touch is a random page. The rest is
        # counted in memory (reads add it; the next touch, the resolve or close write it).
        stale = ts(now() - RESEND_TOUCH)
        resends: list[tuple[Any, ...]] = []
        for resent in plan.resent:
            eid = resent.id
            if last_seen.get(eid, at) < stale or resent.truncated:
                resends.append((at, 1 + unsaved.pop(eid, 0), int(resent.truncated), eid))
                last_seen[eid] = at
            else:
                unsaved[eid] = unsaved.get(eid, 0) + 1
        if plan.new:
            await db.executemany(
                "INSERT INTO episodes (id, fingerprint, starts_at, alertname, namespace, "
                "status, labels, annotations, generator_url, first_seen, last_seen, "
                "resolved_at, truncated, first_notification, firing_handled_at, "
                "resolved_handled_at, no_work) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?) "
                "ON CONFLICT (id) DO NOTHING",
                [_episode_row(e, at) for e in plan.new],
            )
        if plan.decisions:
            await db.executemany(
                "INSERT INTO decisions (episode_id, playbook, kind, reason, at) "
                "VALUES (?, NULL, ?, ?, ?)",
                [(eid, kind, reason, at) for eid, kind, reason in plan.decisions],
            )
        if resends:
            await db.executemany(
                "UPDATE episodes SET last_seen = ?, notifications = notifications + ?, "
                "truncated = max(truncated, ?) WHERE id = ?",
                resends,
            )
        if plan.resolved:
            await db.executemany(
                "UPDATE episodes SET status = 'resolved', resolved_at = ?, last_seen = ?, "
                "notifications = notifications + ?, truncated = max(truncated, ?), "
                "resolved_handled_at = ? WHERE id = ?",
                [
                    (
                        ts(e.resolved_at),
                        at,
                        1 + unsaved.pop(e.id, 0),
                        int(e.truncated),
                        at if e.handled else None,
                        e.id,
                    )
                    for e in plan.resolved
                ],
            )
        # The body is kept for audit, compressed in SQLite's thread (zlib lets go of the
        # GIL there), not on the event loop.
        await db.executemany(
            "INSERT INTO notifications (id, received_at, group_key, receiver, status, "
            "alerts, truncated_alerts, new_episodes, digested_at, body) "
            "VALUES (?,?,?,?,?,?,?,?,?,zlib_compress(?))",
            [
                (
                    n.entry.id,
                    ts(n.entry.received_at),
                    n.group_key,
                    n.receiver,
                    n.status,
                    n.alerts,
                    n.truncated_alerts,
                    n.new_episodes,
                    at,
                    n.entry.body,
                )
                for n in plan.notifications
            ],
        )
        self.through = max(n.entry.seq for n in plan.notifications)
        await db.execute("UPDATE digest_state SET seq = ? WHERE name = 'journal'", (self.through,))


def _episode_row(episode: NewEpisode, at: str) -> tuple[Any, ...]:
    alert, firing = episode.alert, episode.resolved_at is None
    labels = alert["labels"]
    return (
        episode.id,
        episode.fingerprint,
        episode.starts_at,
        labels.get("alertname", ""),
        labels.get("namespace"),
        alert["status"],
        dumps(labels),
        dumps(alert.get("annotations", {})),
        alert.get("generatorURL", ""),
        at,
        at,
        None if episode.resolved_at is None else ts(episode.resolved_at),
        int(episode.truncated),
        episode.notification_id,
        None if episode.wanted else at,  # nothing to dispatch: no playbook, or resolved on arrival
        None if firing else at,
        int(firing and not episode.wanted),
    )


def _episode(row: sqlite3.Row) -> EpisodeRecord:
    return EpisodeRecord(
        id=row["id"],
        fingerprint=row["fingerprint"],
        starts_at=datetime.fromisoformat(row["starts_at"]),
        alertname=row["alertname"],
        status=row["status"],
        labels=json.loads(row["labels"]),
        annotations=json.loads(row["annotations"]),
        generator_url=row["generator_url"],
        first_seen=datetime.fromisoformat(row["first_seen"]),
        last_seen=datetime.fromisoformat(row["last_seen"]),
        resolved_at=parse_ts(row["resolved_at"]),
        notifications=row["notifications"],
        truncated=bool(row["truncated"]),
    )


def _action(row: sqlite3.Row, state: str | None = None) -> ActionRecord:
    return ActionRecord(
        id=row["id"],
        run_id=row["run_id"],
        episode_id=row["episode_id"],
        playbook=row["playbook"],
        target_key=row["target_key"],
        verb=row["verb"],
        resource=row["resource"],
        object=row["object"],
        summary=row["summary"],
        body=json.loads(row["body"]),
        change=json.loads(row["change"]),
        state=state or row["state"],
        intended_at=datetime.fromisoformat(row["intended_at"]),
        finished_at=parse_ts(row["finished_at"]),
        result=json.loads(row["result"]) if row["result"] else None,
        error=row["error"],
    )


def _timer(row: sqlite3.Row) -> TimerRecord:
    return TimerRecord(
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
