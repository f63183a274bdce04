"""The PostgreSQL state store's schema: migrations applied once however many replicas start at
once, a schema newer than the code refused, and `check --online` saying what is wrong."""

from __future__ import annotations

import asyncio

import asyncpg
import pytest

from remediator.config import Settings
from remediator.engine.preflight.state import check_state
from remediator.store import PostgresStore, SchemaTooNew
from remediator.store.postgres.migrate import latest_version, migrations, tables
from remediator_testing.pytest_fixtures import PostgresDatabase
from remediator_testing.servers._common import free_port
from remediator_testing.servers.postgres import quote_ident

pytestmark = pytest.mark.servers


def state(dsn: str) -> Settings:
    return Settings(builtin_playbooks=False, state={"backend": "postgres", "dsn": dsn})


async def test_migrations_are_applied_once_when_replicas_start_together(
    postgres_database: PostgresDatabase,
) -> None:
    stores = [PostgresStore(postgres_database.dsn, pool_min=1, pool_max=2) for _ in range(4)]
    try:
        await asyncio.gather(*(store.open() for store in stores))
        conn = await asyncpg.connect(postgres_database.dsn)
        try:
            rows = await conn.fetch("SELECT version, name FROM schema_migrations ORDER BY 1")
            journal_rows = await conn.fetchval("SELECT count(*) FROM digest_state")
        finally:
            await conn.close()
        assert [(r["version"], r["name"]) for r in rows] == [
            (m.version, m.name) for m in migrations()
        ]
        assert journal_rows == 1  # the initial migration's insert ran once
        # Every starter uses the one schema: a claim on one is a claim on all.
        claims = await asyncio.gather(
            *(store.claim_run("ep-1", "scale", "Deployment/shop/a", "auto") for store in stores)
        )
        assert sum(claim is not None for claim in claims) == 1
    finally:
        await asyncio.gather(*(store.close() for store in stores))


async def test_a_schema_newer_than_the_code_is_refused_and_check_says_so(
    postgres_database: PostgresDatabase,
) -> None:
    store = PostgresStore(postgres_database.dsn)
    await store.open()
    await store.close()
    newer = latest_version() + 1
    conn = await asyncpg.connect(postgres_database.dsn)
    try:
        await conn.execute(
            "INSERT INTO schema_migrations (version, name) VALUES ($1, 'from_the_future')", newer
        )
    finally:
        await conn.close()
    with pytest.raises(SchemaTooNew, match=f"version {newer}, newer than this release"):
        await PostgresStore(postgres_database.dsn).open()
    [finding] = await check_state(state(postgres_database.dsn))
    assert not finding.ok and f"version {newer}" in finding.message, finding


async def test_check_reports_a_server_it_cannot_reach(postgres_database: PostgresDatabase) -> None:
    port = postgres_database.server.port
    dsn = postgres_database.dsn.replace(f":{port}/", f":{free_port()}/")
    [finding] = await check_state(state(dsn))
    assert not finding.ok and finding.message.startswith("cannot connect"), finding
    with pytest.raises(Exception, match="cannot open the PostgreSQL state store"):
        await PostgresStore(dsn).open()


async def test_check_names_the_grants_a_role_lacks(postgres_database: PostgresDatabase) -> None:
    server, db = postgres_database.server, postgres_database.name
    role, password = f"{db}_ro", "ro-password"
    server.create_role(role, password)
    ident = quote_ident(role)
    try:
        dsn = server.dsn(role, password, db)
        # A fresh database: the role may connect, but not create the tables.
        [finding] = await check_state(state(dsn))
        assert not finding.ok and "cannot create tables" in finding.message, finding
        with pytest.raises(Exception, match="permission denied"):
            await PostgresStore(dsn).open()
        # The owner migrated it: now the role cannot write what exists.
        owner = PostgresStore(postgres_database.dsn)
        await owner.open()
        await owner.close()
        server.psql(f"GRANT USAGE ON SCHEMA public TO {ident}", database=db)
        [finding] = await check_state(state(dsn))
        assert not finding.ok and "cannot read and write" in finding.message, finding
        assert "GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA public" in (
            finding.message
        )
        # With the grants it names, the role runs the daemon.
        server.psql(
            f"GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA public TO {ident}; "
            f"GRANT USAGE ON ALL SEQUENCES IN SCHEMA public TO {ident}",
            database=db,
        )
        [finding] = await check_state(state(dsn))
        assert finding.ok, finding
        store = PostgresStore(dsn)
        await store.open()
        try:
            assert await store.claim_run("ep-1", "scale", "Deployment/shop/a", "auto") == 1
        finally:
            await store.close()
    finally:
        server.psql(f"DROP OWNED BY {ident}", database=db)
        server.psql(f"DROP ROLE {ident}")


def test_the_migrations_ship_in_the_package() -> None:
    assert migrations()[0].version == 1 and migrations()[0].name == "initial"
    assert {"intake_journal", "episodes", "runs", "schema_migrations"} <= set(tables())
