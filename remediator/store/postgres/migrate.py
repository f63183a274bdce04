"""Versioned schema migrations, applied at start by one replica at a time.

The migrations are the files `migrations/NNNN_name.sql` of this package, applied in order of
NNNN, each recorded in `schema_migrations`. A start runs, in one transaction: create
`schema_migrations` if it is missing, `LOCK TABLE schema_migrations IN ACCESS EXCLUSIVE MODE`
(a transaction lock: the other starters wait here until this one commits, then find nothing
left to do; unlike a session advisory lock it is safe behind PgBouncer in transaction mode),
apply what is missing, commit. A database whose highest version is above this code's was
migrated by a newer release: the daemon refuses to start on it (`SchemaTooNew`).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import cache
from importlib import resources

import asyncpg

_FILE = re.compile(r"^(\d{4})_(\w+)\.sql$")
_CREATE = (
    "CREATE TABLE IF NOT EXISTS schema_migrations (version integer PRIMARY KEY, "
    "name text NOT NULL, applied_at timestamptz NOT NULL DEFAULT now())"
)
# Two first starters creating schema_migrations at once: one fails on the catalog's unique
# index and tries again (then finds the table, and waits on the lock).
_RACES = (asyncpg.UniqueViolationError, asyncpg.DuplicateTableError)


class SchemaTooNew(Exception):
    """The database's schema is newer than this release knows: upgrade the daemon."""


@dataclass(frozen=True)
class Migration:
    version: int
    name: str
    sql: str


@cache
def migrations() -> tuple[Migration, ...]:
    """This release's migrations, in order."""
    found = []
    for entry in resources.files(__package__).joinpath("migrations").iterdir():
        match = _FILE.match(entry.name)
        if match:
            found.append(Migration(int(match[1]), match[2], entry.read_text(encoding="utf-8")))
    found.sort(key=lambda m: m.version)
    versions = [m.version for m in found]
    assert len(set(versions)) == len(versions), f"duplicate migration versions: {versions}"
    return tuple(found)


_TABLE = re.compile(r"CREATE TABLE (?:IF NOT EXISTS )?(\w+)", re.IGNORECASE)


def tables() -> list[str]:
    """The tables the migrations create (and schema_migrations), for `check`."""
    names = ["schema_migrations"]
    for migration in migrations():
        names += [n for n in _TABLE.findall(migration.sql) if n not in names]
    return names


def latest_version() -> int:
    return migrations()[-1].version


async def applied_version(conn: asyncpg.Connection) -> int | None:
    """The database's schema version; None when it was never migrated."""
    exists = await conn.fetchval("SELECT to_regclass('schema_migrations') IS NOT NULL")
    if not exists:
        return None
    version: int | None = await conn.fetchval("SELECT max(version) FROM schema_migrations")
    return version


def too_new(version: int) -> SchemaTooNew:
    return SchemaTooNew(
        f"the state database's schema is version {version}, newer than this release knows "
        f"({latest_version()}): it was migrated by a newer remediator; run that release or newer"
    )


async def migrate(conn: asyncpg.Connection, *, attempts: int = 5) -> list[int]:
    """Apply the missing migrations; returns the versions applied (empty: up to date)."""
    for attempt in range(attempts):
        try:
            return await _migrate(conn)
        except _RACES:
            if attempt == attempts - 1:
                raise
    raise AssertionError("unreachable")


async def _migrate(conn: asyncpg.Connection) -> list[int]:
    applied: list[int] = []
    async with conn.transaction():
        # Only when missing: CREATE needs the privilege even if the table exists, and a role
        # granted only read and write on the tables must still start.
        if not await conn.fetchval("SELECT to_regclass('schema_migrations') IS NOT NULL"):
            await conn.execute(_CREATE)
        await conn.execute("LOCK TABLE schema_migrations IN ACCESS EXCLUSIVE MODE")
        have = await conn.fetchval("SELECT coalesce(max(version), 0) FROM schema_migrations")
        if have > latest_version():
            raise too_new(have)
        for migration in migrations():
            if migration.version <= have:
                continue
            await conn.execute(migration.sql)
            await conn.execute(
                "INSERT INTO schema_migrations (version, name) VALUES ($1, $2)",
                migration.version,
                migration.name,
            )
            applied.append(migration.version)
    return applied
