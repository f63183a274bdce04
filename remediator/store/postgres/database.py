"""The one PostgreSQL database every repository writes through: an asyncpg pool, transactions,
and every driver or network error mapped to `StoreUnavailable`.

The API the repositories use (and the replica coordination builds on) is small:

- `async with db.transaction() as conn:` one transaction on one pooled connection; it commits
  when the block ends and rolls back when it raises. Use `conn.execute/fetch/fetchrow/fetchval/
  executemany` inside; errors of the driver or the network raised inside map to
  `StoreUnavailable` (an exception of our own, such as `SliceTaken`, passes as it is).
- `db.execute/executemany/fetch/fetchrow/fetchval(sql, *args)`: one statement in its own
  (implicit) transaction, errors mapped the same way.
- `db.replica`: this process's replica id (uuid4 hex), the owner of what it claims.
- `db.now()`: the time written in the record, the engine's clock (a test's ManualClock moves
  it). Leases and fencing must use PostgreSQL's `now()` instead, never a replica's clock.

A write returns once committed, so a later read on any connection (or replica) sees it. The
pool reconnects by itself: a connection lost while PostgreSQL was down is discarded when it
fails, and the next acquire opens a new one once the server answers again.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Iterable, Iterator, Sequence
from contextlib import asynccontextmanager, contextmanager
from datetime import datetime
from typing import Any

import asyncpg

from remediator.clock import SYSTEM, Clock
from remediator.store.base import StoreUnavailable
from remediator.store.postgres.migrate import migrate

# What a down, restarting, unreachable or overloaded PostgreSQL raises: the store is
# unavailable (503 and retry), never a crash.
DRIVER_ERRORS: tuple[type[BaseException], ...] = (
    asyncpg.PostgresError,
    asyncpg.InterfaceError,
    asyncpg.exceptions.InternalClientError,
    OSError,
    TimeoutError,
)


@contextmanager
def unavailable(what: str) -> Iterator[None]:
    """Map the driver's and the network's errors raised inside to StoreUnavailable."""
    try:
        yield
    except DRIVER_ERRORS as exc:
        raise StoreUnavailable(f"{what}: {type(exc).__name__}: {exc}") from exc


class Database:
    def __init__(
        self,
        dsn: str,
        *,
        min_size: int = 1,
        max_size: int = 10,
        connect_timeout: float = 5.0,
        command_timeout: float = 10.0,
        clock: Clock = SYSTEM,
        migrate_on_open: bool = True,
        replica: str | None = None,
    ) -> None:
        self._dsn = dsn
        # This process as a replica (replicas.py): the owner of what it claims.
        self.replica = replica or uuid.uuid4().hex
        self.clock = clock
        self._min_size = min_size
        self._max_size = max_size
        self._connect_timeout = connect_timeout
        self._command_timeout = command_timeout
        self._migrate = migrate_on_open
        self._pool: asyncpg.Pool | None = None

    def now(self) -> datetime:
        """The time written in the record: the engine's clock (remediator/clock.py)."""
        return self.clock.now()

    # -- lifecycle -----------------------------------------------------------------------
    async def open(self) -> None:
        """Connect, and bring the schema up to date (store/postgres/migrate.py). Raises
        StoreUnavailable when PostgreSQL cannot be reached, SchemaTooNew when the database
        was migrated by a newer release."""
        with unavailable("cannot open the PostgreSQL state store"):
            pool = await asyncpg.create_pool(
                self._dsn,
                min_size=self._min_size,
                max_size=self._max_size,
                timeout=self._connect_timeout,
                command_timeout=self._command_timeout,
                server_settings={"application_name": "remediator", "jit": "off"},
                init=_init_connection,
            )
        try:
            if self._migrate:
                with unavailable("cannot migrate the PostgreSQL state store"):
                    async with pool.acquire(timeout=self._connect_timeout) as conn:
                        await migrate(conn)
        except BaseException:
            await pool.close()
            raise
        self._pool = pool

    async def close(self) -> None:
        pool, self._pool = self._pool, None
        if pool is not None:
            try:
                await pool.close()
            except DRIVER_ERRORS:
                pool.terminate()

    @property
    def is_open(self) -> bool:
        return self._pool is not None

    @property
    def pool(self) -> asyncpg.Pool:
        if self._pool is None:
            raise StoreUnavailable("store is not open")
        return self._pool

    async def ping(self) -> None:
        """Raise StoreUnavailable unless PostgreSQL answers and takes writes (not a standby,
        not read-only)."""
        with unavailable("state store not reachable"):
            async with self.pool.acquire(timeout=self._connect_timeout) as conn:
                writable = await conn.fetchval(
                    "SELECT NOT pg_is_in_recovery() "
                    "AND current_setting('transaction_read_only') = 'off'"
                )
        if not writable:
            raise StoreUnavailable("state store is read-only (a standby, or read-only mode)")

    # -- transactions --------------------------------------------------------------------
    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[asyncpg.Connection]:
        """One transaction: committed when the block ends, rolled back if it raises."""
        with unavailable("state write failed"):
            async with (
                self.pool.acquire(timeout=self._connect_timeout) as conn,
                conn.transaction(),
            ):
                yield conn

    # -- single statements ---------------------------------------------------------------
    async def execute(self, sql: str, *args: Any) -> str:
        """One statement; returns its status ("UPDATE 3"): see `rowcount`."""
        with unavailable("state write failed"):
            result: str = await self.pool.execute(sql, *args)
            return result

    async def executemany(self, sql: str, args: Iterable[Sequence[Any]]) -> None:
        with unavailable("state write failed"):
            await self.pool.executemany(sql, args)

    async def fetch(self, sql: str, *args: Any) -> list[asyncpg.Record]:
        with unavailable("state read failed"):
            rows: list[asyncpg.Record] = await self.pool.fetch(sql, *args)
            return rows

    async def fetchrow(self, sql: str, *args: Any) -> asyncpg.Record | None:
        with unavailable("state read failed"):
            return await self.pool.fetchrow(sql, *args)

    async def fetchval(self, sql: str, *args: Any) -> Any:
        with unavailable("state read failed"):
            return await self.pool.fetchval(sql, *args)


async def _init_connection(conn: asyncpg.Connection) -> None:
    await conn.set_type_codec(
        "text", schema="pg_catalog", encoder=_encode_text, decoder=_decode_text, format="binary"
    )


def _encode_text(value: str) -> bytes:
    """Text as PostgreSQL can hold it. Alert labels are the sender's: a NUL (which SQLite keeps
    and PostgreSQL's text refuses) or a lone surrogate would make every write of that
    notification fail, and the digest behind it stop; they become U+FFFD instead."""
    try:
        encoded = value.encode("utf-8")
    except UnicodeEncodeError:
        encoded = value.encode("utf-8", "replace")
    return encoded.replace(b"\x00", "\ufffd".encode()) if b"\x00" in encoded else encoded


def _decode_text(data: bytes) -> str:
    return data.decode("utf-8")


def rowcount(status: str) -> int:
    """The row count of a command status ("UPDATE 3", "INSERT 0 1", "DELETE 0")."""
    tail = status.rsplit(" ", 1)[-1]
    return int(tail) if tail.isdigit() else 0
