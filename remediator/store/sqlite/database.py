"""The one SQLite database every repository writes through: its connections, the write lock,
group commit and savepoints.

All writes go through one connection under one lock, so a multi-statement write is one
transaction even though many coroutines share the connection. Writers share one open
transaction; a committer task commits it (one fsync) for everyone queued so far, so intake
batches and background writes pay one fsync per group, not one each (see engine/intake/intake.py).
Reads use their own connection (and thread), so they never queue behind writes; every write
returns only after its commit, so a later read always sees it.
"""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
import uuid
import zlib
from collections.abc import AsyncIterator, Iterable, Sequence
from contextlib import asynccontextmanager
from datetime import datetime
from importlib import resources
from pathlib import Path
from typing import Any

import aiosqlite

from remediator.clock import SYSTEM, Clock
from remediator.store.base import StoreUnavailable
from remediator.store.sqlite.writelock import PriorityLock
from remediator.tasks import stop_tasks

# Columns added to existing tables after a release, so an older state file gains them on
# open: (table, column, declaration). CREATE TABLE IF NOT EXISTS leaves an old table as it is.
ADDED_COLUMNS = (
    ("outbox", "dead_at", "TEXT"),
    # Who holds what (store/sqlite/replicas.py): the replica that claimed a run, a timer,
    # an episode's dispatch, and that recorded an action.
    ("runs", "owner", "TEXT"),
    ("timers", "owner", "TEXT"),
    ("episodes", "dispatch_owner", "TEXT"),
    ("actions", "owner", "TEXT"),
)


class Database:
    def __init__(
        self,
        path: Path,
        *,
        synchronous: str = "full",
        busy_timeout_ms: int = 2000,
        clock: Clock = SYSTEM,
        replica: str | None = None,
    ) -> None:
        self.path = path
        # This process as a replica (store/sqlite/replicas.py): the owner of what it claims.
        self.replica = replica or uuid.uuid4().hex
        # The engine's clock, so that a test advancing a manual clock sees the record's times
        # (due times, windows) move with it.
        self.clock = clock
        self._synchronous = synchronous.upper()
        self._busy_timeout_ms = busy_timeout_ms
        self._db: aiosqlite.Connection | None = None
        self._reader: aiosqlite.Connection | None = None
        self._lock = PriorityLock()
        # Group commit: writers share one open transaction; the committer task commits it
        # (one fsync) for everyone queued so far and resolves `_tx_done` for them.
        self._tx_done: asyncio.Future[None] | None = None
        self._dirty = asyncio.Event()
        self._committer: asyncio.Task[None] | None = None

    def now(self) -> datetime:
        """The time written in the record: the engine's clock (remediator/clock.py)."""
        return self.clock.now()

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
            schema = resources.files(__package__).joinpath("schema.sql").read_text()
            await db.executescript(schema)
            await _add_columns(db)
            await db.commit()
            reader = await aiosqlite.connect(self.path)
            await reader.execute(f"PRAGMA busy_timeout = {int(self._busy_timeout_ms)}")
            await reader.execute("PRAGMA query_only = 1")
        except (sqlite3.Error, OSError) as exc:
            raise StoreUnavailable(f"cannot open state file {self.path}: {exc}") from exc
        self._db = db
        self._reader = reader
        self._committer = asyncio.create_task(self._commit_loop())

    async def close(self) -> None:
        if self._committer is not None:
            await stop_tasks([self._committer])
            self._committer = None
            async with self._lock.hold(urgent=True):
                await self._commit()
        for connection in (self._reader, self._db):
            if connection is not None:
                await connection.close()
        self._db = self._reader = None

    @property
    def is_open(self) -> bool:
        return self._db is not None

    @property
    def connection(self) -> aiosqlite.Connection:
        """The writing connection (inside `write` only, or for a test's PRAGMA)."""
        if self._db is None:
            raise StoreUnavailable("store is not open")
        return self._db

    async def ping(self) -> None:
        async with self._lock.hold(urgent=True):
            db = self.connection
            await self._commit()  # writes pending in the shared transaction go first
            try:
                # BEGIN IMMEDIATE takes the write lock: a locked or read-only file fails here.
                await db.execute("BEGIN IMMEDIATE")
                await db.rollback()
            except sqlite3.Error as exc:
                await _rollback(db)
                raise StoreUnavailable(f"state store not writable: {exc}") from exc

    # -- writes --------------------------------------------------------------------------
    @asynccontextmanager
    async def write(self, *, urgent: bool = False) -> AsyncIterator[aiosqlite.Connection]:
        """One atomic write, durable when the `async with` ends.

        The block runs inside a savepoint of the shared transaction, so a failing block undoes
        only itself; the caller then waits for the group commit that covers its writes.
        `urgent` writes (webhook intake) go before queued background writes.
        """
        async with self._lock.hold(urgent=urgent):
            db = self.connection
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

    async def write1(
        self, sql: str, params: Sequence[Any] = (), *, urgent: bool = False
    ) -> tuple[int | None, int]:
        """A single-statement write (SQLite undoes a failed statement by itself, so no
        savepoint is needed): returns (lastrowid, rowcount) once durable."""
        async with self._lock.hold(urgent=urgent):
            db = self.connection
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

    async def insert(self, sql: str, params: Sequence[Any] = ()) -> int:
        """A single-row INSERT; returns the new row's id once durable."""
        lastrowid, _rowcount = await self.write1(sql, params)
        assert lastrowid is not None
        return lastrowid

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
            await _rollback(db)
            if done is not None and not done.done():
                done.set_exception(StoreUnavailable(f"state commit failed: {exc}"))
            return
        if done is not None and not done.done():
            done.set_result(None)

    # -- reads ---------------------------------------------------------------------------
    async def read(self, sql: str, params: Iterable[Any] = ()) -> list[sqlite3.Row]:
        try:
            if self._reader is None:
                raise StoreUnavailable("store is not open")
            async with self._reader.execute(sql, tuple(params)) as cursor:
                cursor.row_factory = sqlite3.Row
                return list(await cursor.fetchall())
        except sqlite3.Error as exc:
            raise StoreUnavailable(f"state read failed: {exc}") from exc

    async def scalar(self, sql: str, params: Iterable[Any] = ()) -> Any:
        """The first column of the first row (a count, a max)."""
        return (await self.read(sql, params))[0][0]


async def fetch_one(
    db: aiosqlite.Connection, sql: str, params: Sequence[Any] = ()
) -> sqlite3.Row | None:
    """One row read inside a write (`async with database.write() as db`)."""
    async with db.execute(sql, params) as cursor:
        cursor.row_factory = sqlite3.Row
        return await cursor.fetchone()


async def _rollback(db: aiosqlite.Connection) -> None:
    with contextlib.suppress(sqlite3.Error):  # the original error is the one to report
        await db.rollback()


async def _add_columns(db: aiosqlite.Connection) -> None:
    for table, column, declaration in ADDED_COLUMNS:
        async with db.execute(f"PRAGMA table_info({table})") as cursor:
            have = {row[1] for row in await cursor.fetchall()}
        if column not in have:
            await db.execute(f"ALTER TABLE {table} ADD COLUMN {column} {declaration}")


def _compress(body: bytes) -> bytes:
    return zlib.compress(body, 1)
