"""Pool exhaustion as it usually looks: PostgreSQL refuses the daemon's own connection because
every slot is taken. Step 2 (terminate) cannot run, so the runbook's step 3 (restart the
application's Deployment) is taken at once, against the emulator, and reported."""

from __future__ import annotations

import secrets
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import asyncpg
import pytest

from remediator.playbook import Registry
from remediator_testing.fakes import FakeSlack
from remediator_testing.kube import KubeEmulator
from remediator_testing.servers import PostgresServer
from tests.conftest import MakeDaemon
from tests.postgres.helpers import fire, start
from tests.postgres.test_next_step import restarted, through_emulator
from tests.reports.helpers import CHANNEL, SLACK_TOKEN, reporting, text_of

pytestmark = pytest.mark.servers

SLOTS = 3  # max_connections 5, of which 2 are reserved for superusers
DB = "shopdb"


@dataclass(frozen=True)
class Full:
    server: PostgresServer
    app: tuple[str, str]
    remediator: tuple[str, str]


@pytest.fixture(scope="module")
def small_server() -> Iterator[Full]:
    server = PostgresServer(
        settings={"max_connections": "5", "superuser_reserved_connections": "2"}
    )
    server.start()
    try:
        app = ("app", secrets.token_urlsafe(12))
        remediator = ("remediator", secrets.token_urlsafe(12))
        server.create_role(*app)
        server.create_role(*remediator, in_roles=["pg_signal_backend", "pg_read_all_stats"])
        server.create_database(DB)
        yield Full(server, app, remediator)
    finally:
        server.stop()


@pytest.fixture
async def every_slot_taken(small_server: Full) -> AsyncIterator[list[Any]]:
    """The application holds every slot a non-superuser may have, idle in transaction."""
    conns = []
    try:
        for _ in range(SLOTS):
            conn = await asyncpg.connect(small_server.server.dsn(*small_server.app, DB))
            await conn.execute("BEGIN")
            conns.append(conn)
        yield conns
    finally:
        for conn in conns:
            conn.terminate()


@pytest.fixture
async def slack() -> AsyncIterator[FakeSlack]:
    async with FakeSlack(SLACK_TOKEN, channels=[CHANNEL]) as fake:
        yield fake


def databases(small_server: Full) -> dict[str, dict[str, Any]]:
    return {DB: {"dsn": small_server.server.dsn(*small_server.remediator, DB)}}


async def test_a_full_server_goes_on_to_restart_the_application(
    make_daemon: MakeDaemon,
    registry: Registry,
    small_server: Full,
    every_slot_taken: list[Any],
    emu: KubeEmulator,
    slack: FakeSlack,
    tmp_path: Path,
) -> None:
    emu.add_deployment("shop", "orders", replicas=2)
    # The daemon's role gets no slot: this is the situation under test.
    with pytest.raises(asyncpg.TooManyConnectionsError, match="remaining connection slots"):
        await asyncpg.connect(small_server.server.dsn(*small_server.remediator, DB))
    daemon = await start(
        make_daemon,
        registry,
        databases(small_server),
        params={"follow_up_seconds": 30},
        config={**through_emulator(emu, tmp_path), **reporting(slack)},
    )

    outcome = await fire(daemon, DB)

    assert outcome.run.state == "acted", outcome.run.error
    assert restarted(emu)
    [restart] = outcome.actions
    assert (restart.verb, restart.object, restart.state) == (
        "patch",
        "Deployment/shop/orders",
        "succeeded",
    )
    evidence = outcome.run.evidence
    assert "remaining connection slots are reserved" in evidence["database_refused"]
    assert evidence["restart_because"].startswith(
        "the database refused remediator's own connection because every connection slot is taken"
    )
    assert evidence["restart"]["done"] is True
    assert outcome.escalations == []  # the restart is the remedy; humans come if it fails
    # Step 4 is armed: if the pool stays exhausted, humans.
    timers = await daemon.engine.store.timers_for(outcome.episode.id)
    [follow] = [t for t in timers if t.kind == "follow_up"]
    assert follow.state == "waiting" and "Deployment/shop/orders" in str(follow.payload)
    # And the report says what happened and why.
    messages = await slack.wait_for(2)
    shown = "\n".join(text_of(m) for m in messages)
    assert "every connection slot is taken" in shown and "Deployment/shop/orders" in shown


async def test_without_the_restart_step_a_full_server_fails_and_escalates(
    make_daemon: MakeDaemon,
    registry: Registry,
    small_server: Full,
    every_slot_taken: list[Any],
    emu: KubeEmulator,
    slack: FakeSlack,
    tmp_path: Path,
) -> None:
    emu.add_deployment("shop", "orders", replicas=2)
    daemon = await start(
        make_daemon,
        registry,
        databases(small_server),
        params={"restart_deployment": False},
        config={**through_emulator(emu, tmp_path), **reporting(slack)},
    )

    outcome = await fire(daemon, DB)

    assert outcome.run.state == "failed"
    assert "PoolExhausted" in (outcome.run.error or "")
    assert not restarted(emu)
    [escalation] = outcome.escalations
    assert "remaining connection slots are reserved" in escalation.reason


async def test_in_shadow_mode_a_full_server_records_the_next_step_and_changes_nothing(
    make_daemon: MakeDaemon,
    registry: Registry,
    small_server: Full,
    every_slot_taken: list[Any],
    emu: KubeEmulator,
    slack: FakeSlack,
    tmp_path: Path,
) -> None:
    emu.add_deployment("shop", "orders", replicas=2)
    daemon = await start(
        make_daemon,
        registry,
        databases(small_server),
        mode="shadow",
        config={**through_emulator(emu, tmp_path), **reporting(slack, mode="shadow")},
    )

    outcome = await fire(daemon, DB)

    assert outcome.run.state == "noop", (outcome.run.state, outcome.run.error)
    assert not restarted(emu) and outcome.actions == []
    assert outcome.run.evidence["next_step"].startswith(
        "the database refused remediator's own connection"
    )
    assert outcome.escalations == []
