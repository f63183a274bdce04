"""Intake on PostgreSQL: the journal is a table that any replica digests, each notification
exactly once; an outage of PostgreSQL answers 503 and loses nothing acknowledged."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
import pytest

from remediator.alertmanager import validate_notification
from remediator.engine.intake import digest_plan
from remediator.store import PostgresStore, SliceTaken
from remediator.store.records import IncomingNotification, WorkKind
from remediator_testing.alerts import alert, body, notification
from remediator_testing.pytest_fixtures import PostgresDatabase
from remediator_testing.servers import PostgresServer
from tests.conftest import MakeDaemon
from tests.foundation.test_webhook import LAG, lag_registry

pytestmark = pytest.mark.servers

T0 = datetime(2026, 11, 22, 3, 0, tzinfo=UTC)


def firing(deployment: str, minutes: int = 0) -> dict[str, Any]:
    return alert({**LAG, "deployment": deployment}, starts_at=T0 + timedelta(minutes=minutes))


async def test_a_slice_another_replica_digested_is_taken_and_writes_nothing(
    postgres_database: PostgresDatabase,
) -> None:
    a, b = PostgresStore(postgres_database.dsn), PostgresStore(postgres_database.dsn)
    await a.open()
    await b.open()
    try:
        bodies = [notification([firing(f"app-{i}")]) for i in range(3)]
        batch = [IncomingNotification(validate_notification(body(p)), body(p), T0) for p in bodies]
        ids = await a.journal(batch)
        assert ids == sorted(ids) and len(set(ids)) == 3
        read_a, read_b = await a.undigested(10), await b.undigested(10)
        assert [e.id for e in read_a] == [e.id for e in read_b] == ids
        for store, entries in ((a, read_a), (b, read_b)):
            slice_ = digest_plan.keyed([(e, validate_notification(e.body)) for e in entries])
            if store is a:
                async with store.digesting(slice_.episode_ids) as work:
                    await work.apply(digest_plan.plan_digest(slice_, work.known, None, T0))
                continue
            with pytest.raises(SliceTaken):
                async with store.digesting(slice_.episode_ids) as work:
                    # It already knows the episodes the other replica wrote.
                    assert len(work.known) == 3
                    await work.apply(digest_plan.plan_digest(slice_, work.known, None, T0))
        assert await a.count_undigested() == await b.count_undigested() == 0
        assert await b.count_episodes() == 3
        conn = await asyncpg.connect(postgres_database.dsn)
        try:
            assert await conn.fetchval("SELECT count(*) FROM notifications") == 3
            assert await conn.fetchval("SELECT count(*) FROM decisions") == 0
        finally:
            await conn.close()
    finally:
        await a.close()
        await b.close()


@pytest.mark.parametrize("state_backend", ["postgres"])
async def test_two_digesters_on_one_database_digest_each_notification_once(
    make_daemon: MakeDaemon, postgres_database: PostgresDatabase
) -> None:
    calls: list[str] = []
    daemons = [await make_daemon(lag_registry(calls), config={"mode": "auto"}) for _ in range(2)]
    # Every notification twice (HA Alertmanager peers), once to each daemon, at the same time;
    # each daemon's digester reads whatever either journaled. Eight alerts a playbook handles
    # (distinct targets, below the storm breaker's threshold) and forty none does.
    alerts = [firing(f"app-{i}") for i in range(8)]
    alerts += [alert({"alertname": f"Other{i}", "namespace": "shop"}) for i in range(40)]
    payloads = [notification([a]) for a in alerts]
    statuses = await asyncio.gather(
        *(daemon.post(payload) for payload in payloads for daemon in daemons)
    )
    assert [status for status, _ in statuses] == [200] * 96
    for daemon in daemons:
        await daemon.settle()
    assert sum(d.engine.metrics.digest_failures._value.get() for d in daemons) == 0
    for daemon in daemons:
        await daemon.client.close()  # writes the re-sends each one counted in memory
    conn = await asyncpg.connect(postgres_database.dsn)
    try:
        assert await conn.fetchval("SELECT count(*) FROM intake_journal") == 0
        assert await conn.fetchval("SELECT count(*) FROM notifications") == 96
        counts = await conn.fetch("SELECT notifications FROM episodes")
        assert sorted(row[0] for row in counts) == [2] * 48
        runs = await conn.fetch("SELECT episode_id, count(*) FROM runs GROUP BY 1")
        assert len(runs) == 8 and {row[1] for row in runs} == {1}
    finally:
        await conn.close()
    assert len(calls) == 8  # one action per episode, whichever daemon ran it


@dataclass
class OwnPostgres:
    server: PostgresServer
    dsn: str


@pytest.fixture
def own_postgres() -> Iterator[OwnPostgres]:
    """A PostgreSQL of this test's own, which it stops and starts again."""
    with PostgresServer() as server:
        server.create_role("remediator", "state-password")
        server.create_database("state", owner="remediator")
        yield OwnPostgres(server, server.dsn("remediator", "state-password", "state"))


async def test_postgres_down_answers_503_and_loses_nothing_acknowledged(
    own_postgres: OwnPostgres, make_daemon: MakeDaemon
) -> None:
    daemon = await make_daemon(
        lag_registry([]), config={"state": {"backend": "postgres", "dsn": own_postgres.dsn}}
    )
    acknowledged = 0
    for i in range(5):
        status, _ = await daemon.post(notification([firing(f"before-{i}")]))
        assert status == 200
        acknowledged += 1
    await asyncio.to_thread(own_postgres.server.stop_process)
    try:
        resp = await daemon.client.post(
            "/webhook",
            json=notification([firing("during")]),
            headers={"Authorization": "Bearer test-token"},
        )
        assert resp.status == 503 and int(resp.headers["Retry-After"]) > 0
        assert (await daemon.client.get("/readyz")).status == 503
    finally:
        await asyncio.to_thread(own_postgres.server.start_process)
    # Alertmanager sends it again until it is acknowledged: the pool reconnects by itself.
    async with asyncio.timeout(30):
        while (await daemon.post(notification([firing("during")])))[0] != 200:
            await asyncio.sleep(0.1)
    acknowledged += 1
    for i in range(5):
        status, _ = await daemon.post(notification([firing(f"after-{i}")]))
        assert status == 200
        acknowledged += 1
    async with asyncio.timeout(30):
        while (await daemon.client.get("/readyz")).status != 200:
            await asyncio.sleep(0.1)
    await daemon.settle()
    episodes = await daemon.engine.store.list_episodes()
    assert len(episodes) == acknowledged == 11
    assert await daemon.engine.store.count_undigested() == 0


async def test_dispatch_work_is_claimed_by_one_replica_until_it_is_fenced(
    postgres_database: PostgresDatabase,
) -> None:
    a = PostgresStore(postgres_database.dsn, replica="a")
    b = PostgresStore(postgres_database.dsn, replica="b")
    await a.open()
    await b.open()
    try:
        await a.register("a/1", 30)
        await b.register("b/1", 30)
        payload = notification([firing("orders")])
        await a.journal(
            [IncomingNotification(validate_notification(body(payload)), body(payload), T0)]
        )
        [entry] = await a.undigested(10)
        slice_ = digest_plan.keyed([(entry, validate_notification(entry.body))])
        async with a.digesting(slice_.episode_ids) as work:
            await work.apply(digest_plan.plan_digest(slice_, work.known, None, T0))
        [item] = await b.pending_work(WorkKind.FIRING, 10)
        assert await a.claim_work(item) and await a.claim_work(item)  # again: still a's
        assert not await b.claim_work(item)
        assert [r.work for r in await b.replicas()] == [[item.episode_id], []]
        await b.database.execute("UPDATE replicas SET fenced_at = now() WHERE id = 'a'")
        assert await b.claim_work(item)  # a fenced replica's work comes back
        await a.mark_handled(item)  # the fenced one marks nothing
        assert await b.pending_work(WorkKind.FIRING, 10) == [item]
        await b.mark_handled(item)
        assert await b.pending_work(WorkKind.FIRING, 10) == []
        assert not await b.claim_work(item)  # handled: nothing left to claim
    finally:
        await a.close()
        await b.close()


@pytest.mark.parametrize("state_backend", ["postgres"])
async def test_a_nul_in_a_label_does_not_stop_the_digest(
    make_daemon: MakeDaemon,
) -> None:
    """PostgreSQL's text holds no NUL (SQLite's does): a label with one is kept as U+FFFD,
    never a write that fails forever with every notification behind it waiting."""
    daemon = await make_daemon(lag_registry([]))
    hostile = notification([firing("a\u0000b")], receiver="r\u0000")
    assert (await daemon.post(hostile))[0] == 200
    assert (await daemon.post(notification([firing("orders")])))[0] == 200
    await daemon.settle()
    episodes = await daemon.engine.store.list_episodes()
    assert sorted(e.labels["deployment"] for e in episodes) == ["a\u0000b", "orders"]
    assert sorted(e.alertname for e in episodes) == ["KafkaLagHigh"] * 2
