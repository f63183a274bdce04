"""A real PostgreSQL with the roles the playbook meets in production, and real sessions.

Roles are created once per test session; every test gets its own two databases (the target
and "another database") and closes every connection it opened.
"""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import asyncpg
import pytest

from remediator.playbook import Registry, load_file
from remediator_testing.servers import PostgresServer
from remediator_testing.servers.postgres import SUPERUSER, quote_ident

PLAYBOOK = Path(__file__).resolve().parents[2] / "playbooks" / "pg_idle_in_transaction.py"
PLAYBOOK_NAME = "pg-idle-in-transaction"


@dataclass(frozen=True)
class Role:
    name: str
    password: str


@dataclass(frozen=True)
class Roles:
    app: Role  # the application
    app2: Role  # a second application role, for the user filter
    remediator: Role  # pg_signal_backend + pg_read_all_stats: what the daemon should use
    nosignal: Role  # pg_read_all_stats only
    nostats: Role  # pg_signal_backend only
    bare: Role  # neither
    superuser: Role


@pytest.fixture(scope="session")
def roles(postgres_server: PostgresServer) -> Roles:
    suffix = secrets.token_hex(3)

    def make(kind: str, *in_roles: str) -> Role:
        role = Role(f"pb_{kind}_{suffix}", secrets.token_urlsafe(12))
        postgres_server.create_role(role.name, role.password, in_roles=in_roles)
        return role

    return Roles(
        app=make("app"),
        app2=make("app2"),
        remediator=make("remediator", "pg_signal_backend", "pg_read_all_stats"),
        nosignal=make("nosignal", "pg_read_all_stats"),
        nostats=make("nostats", "pg_signal_backend"),
        bare=make("bare"),
        superuser=Role(SUPERUSER, postgres_server.password),
    )


@dataclass(frozen=True)
class Databases:
    target: str
    other: str


@pytest.fixture
def databases(postgres_server: PostgresServer) -> Iterator[Databases]:
    suffix = secrets.token_hex(4)
    dbs = Databases(target=f"app_{suffix}", other=f"other_{suffix}")
    for name in (dbs.target, dbs.other):
        postgres_server.create_database(name)
    yield dbs
    for name in (dbs.target, dbs.other):
        postgres_server.psql(f"DROP DATABASE {quote_ident(name)} WITH (FORCE)")


class Sessions:
    """Opens application sessions in known states; closes all of them at the end of a test."""

    def __init__(self, server: PostgresServer) -> None:
        self.server = server
        self._conns: list[Any] = []
        self._tasks: list[asyncio.Task[Any]] = []

    async def open(self, role: Role, database: str, application: str = "shop") -> Any:
        conn = await asyncpg.connect(
            self.server.dsn(role.name, role.password, database),
            server_settings={"application_name": application},
        )
        self._conns.append(conn)
        return conn

    async def idle_in_transaction(self, role: Role, database: str, app: str = "shop") -> int:
        conn = await self.open(role, database, app)
        await conn.execute("BEGIN")
        await conn.fetchval("SELECT 1")
        return int(conn.get_server_pid())

    async def aborted(self, role: Role, database: str, app: str = "shop") -> int:
        conn = await self.open(role, database, app)
        await conn.execute("BEGIN")
        with pytest.raises(asyncpg.DivisionByZeroError):
            await conn.fetchval("SELECT 1/0")
        return int(conn.get_server_pid())

    async def idle(self, role: Role, database: str, app: str = "shop") -> int:
        conn = await self.open(role, database, app)
        await conn.fetchval("SELECT 1")
        return int(conn.get_server_pid())

    async def active(self, role: Role, database: str, app: str = "shop") -> int:
        conn = await self.open(role, database, app)
        pid = int(conn.get_server_pid())
        self._tasks.append(asyncio.create_task(conn.fetchval("SELECT pg_sleep(60)")))
        while await self.state(pid) != "active":
            await asyncio.sleep(0.02)
        return pid

    async def superuser_fetch(self, sql: str, *args: Any) -> list[Any]:
        conn = await asyncpg.connect(self.server.superuser_dsn)
        try:
            return list(await conn.fetch(sql, *args))
        finally:
            await conn.close()

    async def state(self, pid: int) -> str | None:
        rows = await self.superuser_fetch("SELECT state FROM pg_stat_activity WHERE pid = $1", pid)
        return rows[0]["state"] if rows else None

    async def alive(self, pids: set[int]) -> set[int]:
        """Which of `pids` the server's own pg_stat_activity still shows."""
        rows = await self.superuser_fetch(
            "SELECT pid FROM pg_stat_activity WHERE pid = ANY($1::int[])", sorted(pids)
        )
        return {row["pid"] for row in rows}

    async def close(self) -> None:
        # terminate(): also for sessions the playbook killed, whose sockets are already dead.
        for conn in self._conns:
            conn.terminate()
        for outcome in await asyncio.gather(*self._tasks, return_exceptions=True):
            assert isinstance(outcome, asyncpg.ConnectionDoesNotExistError | asyncpg.PostgresError)


@pytest.fixture
async def sessions(postgres_server: PostgresServer) -> AsyncIterator[Sessions]:
    opened = Sessions(postgres_server)
    try:
        yield opened
    finally:
        await opened.close()


@pytest.fixture
def registry() -> Registry:
    """The shipped playbook file, loaded into a fresh registry (as the daemon loads it)."""
    fresh = Registry()
    problem = load_file(PLAYBOOK, fresh)
    assert problem is None, problem
    return fresh
