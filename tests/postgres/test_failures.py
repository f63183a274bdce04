"""Every way the database step can fail is a recorded, escalated failure; the daemon carries on.

And what an alert label can never do: name a database outside the configuration, or carry SQL.
"""

from __future__ import annotations

from pathlib import Path

import asyncpg
import pytest

from remediator.clients.postgres import PostgresClient, StatementTimeout
from remediator.playbook import Registry
from remediator_testing.servers import PostgresServer, free_port
from tests.conftest import Daemon, MakeDaemon
from tests.outcome import Outcome
from tests.postgres.conftest import Databases, Roles, Sessions
from tests.postgres.helpers import database, fire, past_threshold, start

pytestmark = pytest.mark.servers


def assert_failed(outcome: Outcome, *fragments: str) -> None:
    """Failed (not noop), with the reason in the run, the decision and the escalation."""
    run = outcome.run
    assert run.state == "failed", (run.state, run.error)
    assert outcome.actions == []  # nothing was attempted
    error = run.error or ""
    for fragment in fragments:
        assert fragment in error, error
    assert outcome.decisions[-1].kind == "failed" and outcome.decisions[-1].reason == error
    [escalation] = outcome.escalations
    assert error in escalation.reason


def assert_secret_kept(outcome: Outcome, output: str, *secrets: str) -> None:
    for secret in secrets:
        assert secret not in outcome.everything()
        assert secret not in output


async def assert_daemon_fine(daemon: Daemon, datname: str) -> None:
    response = await daemon.client.get("/healthz")
    assert response.status == 200
    # The next alert is received and handled like any other.
    assert (await fire(daemon, datname, instance="another")).run.state in {"failed", "acted"}


async def test_database_down(
    make_daemon: MakeDaemon,
    registry: Registry,
    roles: Roles,
    capfd: pytest.CaptureFixture[str],
) -> None:
    port = free_port()  # nothing listens there
    password = "s3cret-down"
    dsn = f"postgresql://{roles.remediator.name}:{password}@127.0.0.1:{port}/orders"
    daemon = await start(
        make_daemon, registry, {"orders": {"dsn": dsn, "connect_timeout_seconds": 2}}
    )

    outcome = await fire(daemon, "orders")

    assert_failed(outcome, "DatabaseUnreachable", "database orders: cannot connect")
    assert_secret_kept(outcome, "".join(capfd.readouterr()), password)
    await assert_daemon_fine(daemon, "orders")


async def test_wrong_password(
    make_daemon: MakeDaemon,
    registry: Registry,
    postgres_server: PostgresServer,
    roles: Roles,
    databases: Databases,
    sessions: Sessions,
    capfd: pytest.CaptureFixture[str],
) -> None:
    db = databases.target
    stuck = await sessions.idle_in_transaction(roles.app, db)
    await past_threshold()
    wrong = "not-the-password-%40x"  # URL-quoted: neither form may leak
    dsn = postgres_server.dsn(roles.remediator.name, "x", db).replace(":x@", f":{wrong}@")
    daemon = await start(make_daemon, registry, {db: {"dsn": dsn}})

    outcome = await fire(daemon, db)

    assert_failed(outcome, "AuthenticationFailed", "authentication failed")
    assert await sessions.alive({stuck}) == {stuck}
    assert_secret_kept(
        outcome, "".join(capfd.readouterr()), wrong, "not-the-password-@x", dsn, roles.app.password
    )
    await assert_daemon_fine(daemon, db)


async def test_role_without_pg_signal_backend_terminates_nothing(
    make_daemon: MakeDaemon,
    registry: Registry,
    postgres_server: PostgresServer,
    roles: Roles,
    databases: Databases,
    sessions: Sessions,
) -> None:
    db = databases.target
    # Its own role's session it could signal: the pre-check must stop it before a partial run.
    stuck = {
        await sessions.idle_in_transaction(roles.app, db),
        await sessions.idle_in_transaction(roles.nosignal, db),
    }
    await past_threshold()
    daemon = await start(make_daemon, registry, {db: database(postgres_server, roles.nosignal, db)})

    outcome = await fire(daemon, db)

    assert_failed(outcome, "PrivilegeMissing", "lacks pg_signal_backend", "GRANT")
    assert await sessions.alive(stuck) == stuck


async def test_role_without_pg_read_all_stats_is_a_failure_not_a_noop(
    make_daemon: MakeDaemon,
    registry: Registry,
    postgres_server: PostgresServer,
    roles: Roles,
    databases: Databases,
    sessions: Sessions,
    tmp_path: Path,
) -> None:
    db = databases.target
    stuck = await sessions.idle_in_transaction(roles.app, db)
    await past_threshold()
    dsn_file = tmp_path / "dsn"
    dsn_file.write_text(postgres_server.dsn(roles.nostats.name, roles.nostats.password, db) + "\n")
    daemon = await start(make_daemon, registry, {db: {"dsn_file": str(dsn_file)}})

    outcome = await fire(daemon, db)

    assert_failed(outcome, "PrivilegeMissing", "lacks pg_read_all_stats", "no session would")
    assert await sessions.alive({stuck}) == {stuck}


async def test_a_role_without_either_grant_is_told_both_at_once(
    make_daemon: MakeDaemon,
    registry: Registry,
    postgres_server: PostgresServer,
    roles: Roles,
    databases: Databases,
    sessions: Sessions,
) -> None:
    db = databases.target
    stuck = await sessions.idle_in_transaction(roles.app, db)
    await past_threshold()
    daemon = await start(make_daemon, registry, {db: database(postgres_server, roles.bare, db)})

    outcome = await fire(daemon, db)

    assert_failed(
        outcome,
        "PrivilegeMissing",
        "lacks pg_read_all_stats",
        "lacks pg_signal_backend",
        f"GRANT pg_read_all_stats, pg_signal_backend TO {roles.bare.name}",
    )
    assert await sessions.alive({stuck}) == {stuck}


async def test_unreadable_dsn_file(
    make_daemon: MakeDaemon, registry: Registry, tmp_path: Path
) -> None:
    daemon = await start(make_daemon, registry, {"orders": {"dsn_file": str(tmp_path / "missing")}})

    outcome = await fire(daemon, "orders")

    assert_failed(outcome, "database orders", "cannot read", "missing")


@pytest.mark.parametrize(
    "label",
    [
        "x'; SELECT pg_terminate_backend(pid) FROM pg_stat_activity; --",
        "postgresql://postgres:pw@127.0.0.1:5432/postgres",
        "other",  # exists on the server, but is not configured
        "",
    ],
)
async def test_a_label_cannot_reach_beyond_the_configuration(
    label: str,
    make_daemon: MakeDaemon,
    registry: Registry,
    postgres_server: PostgresServer,
    roles: Roles,
    databases: Databases,
    sessions: Sessions,
) -> None:
    label = databases.other if label == "other" else label
    stuck = {
        await sessions.idle_in_transaction(roles.app, databases.other),
        await sessions.idle_in_transaction(roles.app, databases.target),
    }
    await past_threshold()
    daemon = await start(
        make_daemon,
        registry,
        {databases.target: database(postgres_server, roles.remediator, databases.target)},
    )

    outcome = await fire(daemon, label)

    assert outcome.runs == [] and outcome.actions == []
    [decision] = outcome.decisions
    assert decision.kind == "refused"
    assert "missing or empty" in decision.reason or "is not configured" in decision.reason
    [escalation] = outcome.escalations
    assert escalation.reason == decision.reason
    assert await sessions.alive(stuck) == stuck


async def test_statement_timeout_is_a_typed_failure(
    postgres_server: PostgresServer, roles: Roles, databases: Databases
) -> None:
    role = roles.remediator
    dsn = postgres_server.dsn(role.name, role.password, databases.target)
    client = PostgresClient("orders", lambda: dsn, statement_timeout_ms=200)
    locker = await asyncpg.connect(postgres_server.superuser_dsn)
    try:
        async with client.connect() as conn:
            # Reading pg_roles now waits for this lock until statement_timeout cancels it.
            await locker.execute("BEGIN; LOCK TABLE pg_catalog.pg_authid IN ACCESS EXCLUSIVE MODE")
            with pytest.raises(StatementTimeout, match="database orders: statement cancelled"):
                await conn.privileges()
            await locker.execute("ROLLBACK")
            assert (await conn.privileges()).can_signal  # the connection is still usable
    finally:
        await locker.close()
