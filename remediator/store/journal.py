"""The intake journal: what the webhook waits for, in a SQLite file of its own.

A batch of notifications is one multi-row INSERT on an autocommit connection: one statement,
one transaction, one fsync, one trip to the connection's thread. Kept apart from the decision
record, so that appending never waits behind the digester's or the dispatcher's transactions,
which share that file's single writer. Rows are deleted once the decision record says they
were digested (see `SQLiteStore.digest`).
"""

from __future__ import annotations

import contextlib
import sqlite3
from collections.abc import Sequence
from pathlib import Path

import aiosqlite

from remediator.store.base import StoreUnavailable

_SCHEMA = """
CREATE TABLE IF NOT EXISTS journal (
    -- AUTOINCREMENT: a sequence number is never reused, even once every row is deleted,
    -- because the decision record remembers how far it has digested by this number.
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    received_at TEXT NOT NULL,
    body BLOB NOT NULL
);
"""
_MAX_ROWS = 4096  # two parameters a row, far below SQLite's 32766


def journal_path(state: Path) -> Path:
    return state.with_name(state.name + ".intake")


class Journal:
    def __init__(self, path: Path, *, synchronous: str, busy_timeout_ms: int) -> None:
        self.path = path
        self._synchronous = synchronous.upper()
        self.busy_timeout_ms = busy_timeout_ms
        self._db: aiosqlite.Connection | None = None
        self._reader: aiosqlite.Connection | None = None

    async def open(self, digested_through: int) -> None:
        try:
            db = await aiosqlite.connect(self.path, isolation_level=None)
            await db.execute(f"PRAGMA busy_timeout = {int(self.busy_timeout_ms)}")
            await db.execute("PRAGMA journal_mode = WAL")
            await db.execute(f"PRAGMA synchronous = {self._synchronous}")
            # Checkpoints run from `forget`, on the reader's thread: run automatically, they
            # would land inside an append, and the webhook answer would wait for them.
            await db.execute("PRAGMA wal_autocheckpoint = 0")
            await db.execute("PRAGMA journal_size_limit = 16777216")  # the WAL, once reset
            await db.executescript(_SCHEMA)
            # A journal file deleted or replaced by hand would number from 1 again, behind
            # what is already digested: those notifications would be skipped for good.
            await db.execute(
                "INSERT INTO sqlite_sequence (name, seq) SELECT 'journal', ? WHERE NOT EXISTS "
                "(SELECT 1 FROM sqlite_sequence WHERE name = 'journal')",
                (digested_through,),
            )
            await db.execute(
                "UPDATE sqlite_sequence SET seq = max(seq, ?) WHERE name = 'journal'",
                (digested_through,),
            )
            reader = await aiosqlite.connect(self.path)
            await reader.execute(f"PRAGMA busy_timeout = {int(self.busy_timeout_ms)}")
            await reader.execute("PRAGMA query_only = 1")
        except (sqlite3.Error, OSError) as exc:
            raise StoreUnavailable(f"cannot open intake journal {self.path}: {exc}") from exc
        self._db, self._reader = db, reader

    async def set_busy_timeout(self, ms: int) -> None:
        self.busy_timeout_ms = ms
        if self._db is not None:
            await self._db.execute(f"PRAGMA busy_timeout = {int(ms)}")

    async def close(self) -> None:
        for connection in (self._reader, self._db):
            if connection is not None:
                await connection.close()
        self._db = self._reader = None

    async def ping(self) -> None:
        if self._db is None:
            raise StoreUnavailable("intake journal is not open")
        try:
            await self._db.execute("BEGIN IMMEDIATE")  # takes the write lock, or fails
            await self._db.execute("ROLLBACK")
        except sqlite3.Error as exc:
            with contextlib.suppress(sqlite3.Error):
                await self._db.execute("ROLLBACK")
            raise StoreUnavailable(f"intake journal not writable: {exc}") from exc

    async def append(self, rows: Sequence[tuple[str, bytes]]) -> list[int]:
        """(received_at, body) rows, durable on return; their sequence numbers, in order."""
        if self._db is None:
            raise StoreUnavailable("intake journal is not open")
        seqs: list[int] = []
        for start in range(0, len(rows), _MAX_ROWS):
            chunk = rows[start : start + _MAX_ROWS]
            sql = "INSERT INTO journal (received_at, body) VALUES " + ",".join(
                ["(?,?)"] * len(chunk)
            )
            params = [value for row in chunk for value in row]
            try:
                cursor = await self._db.execute(sql, params)
            except sqlite3.Error as exc:
                raise StoreUnavailable(f"intake journal write failed: {exc}") from exc
            # One statement, one writer: the rows took consecutive numbers ending here.
            last = cursor.lastrowid
            assert last is not None
            seqs.extend(range(last - len(chunk) + 1, last + 1))
        return seqs

    async def read(self, after: int, limit: int) -> list[tuple[int, str, bytes]]:
        if self._reader is None:
            raise StoreUnavailable("intake journal is not open")
        try:
            rows = await self._reader.execute_fetchall(
                "SELECT seq, received_at, body FROM journal WHERE seq > ? ORDER BY seq LIMIT ?",
                (after, limit),
            )
        except sqlite3.Error as exc:
            raise StoreUnavailable(f"intake journal read failed: {exc}") from exc
        return [(int(r[0]), str(r[1]), bytes(r[2])) for r in rows]

    async def count(self, after: int) -> int:
        if self._reader is None:
            raise StoreUnavailable("intake journal is not open")
        try:
            rows = await self._reader.execute_fetchall(
                "SELECT count(*) FROM journal WHERE seq > ?", (after,)
            )
        except sqlite3.Error as exc:
            raise StoreUnavailable(f"intake journal read failed: {exc}") from exc
        return int(next(iter(rows))[0])

    async def forget(self, through: int) -> None:
        """Delete what the decision record has digested (it holds its own copy)."""
        if self._db is None:
            return
        # Only space is at stake: the next call deletes these too.
        with contextlib.suppress(sqlite3.Error):
            await self._db.execute("DELETE FROM journal WHERE seq <= ?", (through,))
        if self._reader is not None:
            # PASSIVE: copies what no reader needs back into the file, never blocks an append.
            with contextlib.suppress(sqlite3.Error):
                await self._reader.execute("PRAGMA wal_checkpoint(PASSIVE)")
