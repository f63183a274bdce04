"""PostgreSQL restarted in the middle of a burst of notifications to two replicas.

With the PostgreSQL backend a 2xx means the notification is committed in PostgreSQL: there is
no local journal that would die with the pod. While PostgreSQL is down, every replica answers
503 with Retry-After (Alertmanager retries) and is not ready; once it is back, the pools
reconnect by themselves and every acknowledged notification is digested exactly once.
"""

from __future__ import annotations

import asyncio
import secrets
from collections import Counter
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import aiohttp
import pytest

from remediator_testing.alerts import alert, notification
from remediator_testing.replicas import ReplicaProcess
from remediator_testing.servers import PostgresServer
from tests.ha.conftest import HA, TOKEN
from tests.kubernetes.helpers import START, labels

NOTIFICATIONS = 240
ALERTS_PER_NOTIFICATION = 2
SENDERS = 8


@pytest.fixture
async def own_postgres() -> AsyncIterator[PostgresServer]:
    """A PostgreSQL of the test's own, since the test stops and starts it."""
    server = PostgresServer()
    await asyncio.to_thread(server.start)
    try:
        yield server
    finally:
        await asyncio.to_thread(server.stop)


@dataclass
class Burst:
    """Alertmanager's side: send each notification until a 2xx, retrying 503s."""

    replicas: list[ReplicaProcess]
    acked: Counter[int] = field(default_factory=Counter)
    # Each 503: (replica, its Retry-After header).
    unavailable: list[tuple[str, str | None]] = field(default_factory=list)
    retried: Counter[int] = field(default_factory=Counter)  # 503s, by notification
    refused: int = 0  # connections that got no answer at all
    sent: int = 0

    async def send(self, index: int) -> None:
        member = self.replicas[index % len(self.replicas)]
        payload = notification(
            [
                alert(
                    labels("BurstAlert", instance=f"i-{index}-{k}", severity="info"),
                    starts_at=START,
                )
                for k in range(ALERTS_PER_NOTIFICATION)
            ],
            groupKey=f"burst-{index}",
        )
        while True:
            try:
                status, headers, _ = await member.post(payload, token=TOKEN, within=15)
            except (aiohttp.ClientError, TimeoutError):
                self.refused += 1
                await asyncio.sleep(0.1)
                continue
            if status == 200:
                self.acked[index] += 1
                return
            assert status == 503, status
            self.unavailable.append((member.hostname, headers.get("Retry-After")))
            self.retried[index] += 1
            # Alertmanager backs off; a tenth of a second keeps the test short.
            await asyncio.sleep(0.1)

    async def run(self, count: int) -> None:
        queue = list(range(count))

        async def sender() -> None:
            while queue:
                index = queue.pop(0)
                self.sent += 1
                await self.send(index)

        await asyncio.gather(*(sender() for _ in range(SENDERS)))


async def test_postgres_restarted_mid_burst_every_acknowledged_notification_is_digested_once(
    own_postgres: PostgresServer, ha: HA
) -> None:
    # (own_postgres first: it is torn down after the replicas are stopped.)
    suffix = secrets.token_hex(4)
    user, password, database = f"ha_{suffix}", secrets.token_urlsafe(12), f"ha_{suffix}"
    own_postgres.create_role(user, password)
    own_postgres.create_database(database, owner=user)
    ha.dsn = own_postgres.dsn(user, password, database)
    # A lease longer than the outage: the replicas are not fenced for a PostgreSQL restart.
    group = await ha.start(2, state={"lease_seconds": 20.0})
    burst = Burst(list(group))
    sending = asyncio.create_task(burst.run(NOTIFICATIONS))
    try:

        def sent(count: int) -> bool:
            if sending.done():  # a sender failed: say why
                sending.result()
            return len(burst.acked) >= count

        await ha.until("a third of the burst acknowledged", lambda: sent(80))
        await asyncio.to_thread(own_postgres.stop_process)
        # While it is down: 503 with Retry-After from both replicas, and neither is ready.
        await ha.until(
            "both replicas to answer 503 a few times",
            lambda: (
                sent(0)
                and all(
                    sum(1 for name, _ in burst.unavailable if name == member.hostname) >= 5
                    for member in group
                )
            ),
        )
        assert all(retry_after for _, retry_after in burst.unavailable), burst.unavailable
        for member in group:
            status, reply = await member.get_json("/readyz")
            assert status == 503, reply
        acked_while_down = len(burst.acked)
        await asyncio.to_thread(own_postgres.start_process)
        await asyncio.wait_for(sending, timeout=90)
    finally:
        sending.cancel()
    assert burst.refused == 0
    assert len(burst.acked) == NOTIFICATIONS and set(burst.acked.values()) == {1}
    assert acked_while_down < NOTIFICATIONS  # the outage was in the middle of the burst

    async def digested() -> bool:
        return await ha.value("SELECT count(*) FROM notifications") >= NOTIFICATIONS and bool(
            await ha.settled(group)
        )

    await ha.until("every acknowledged notification digested", digested, within=60)
    rows = await ha.query("SELECT group_key, count(*) AS n FROM notifications GROUP BY group_key")
    recorded = {row["group_key"]: row["n"] for row in rows}
    assert set(recorded) == {f"burst-{i}" for i in range(NOTIFICATIONS)}
    for i in range(NOTIFICATIONS):
        # Once per delivery that reached PostgreSQL: the acknowledged one, and a 503 whose
        # commit PostgreSQL's shutdown cut off from its answer, if any (at least once, as
        # Alertmanager's own retries are).
        assert 1 <= recorded[f"burst-{i}"] <= 1 + burst.retried[i], (i, burst.retried[i])
    assert sum(recorded.values()) - NOTIFICATIONS <= sum(burst.retried.values())
    [(episodes,)] = await ha.query("SELECT count(*) FROM episodes WHERE alertname = 'BurstAlert'")
    assert episodes == NOTIFICATIONS * ALERTS_PER_NOTIFICATION
    for member in group:
        status, reply = await member.get_json("/readyz")
        assert status == 200, reply
