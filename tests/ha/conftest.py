"""Several `remediator serve` processes on one PostgreSQL database: the HA deployment, for real.

`ha.start(count)` starts the replicas (`remediator_testing.replicas.Replicas`) on one config: the
state on the test's own database (`postgres_database`), Kubernetes through the emulator as the
shipped service account, pages to a fake PagerDuty and reports to a fake Slack, short leases so
that failover happens in seconds. `ha.query` reads the shared record; `ha.until` waits for an
event and, when it times out, says what every replica logged.
"""

from __future__ import annotations

import asyncio
import inspect
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import asyncpg
import pytest

from remediator_testing.fakes import FakePagerDuty, FakeSlack
from remediator_testing.kube import KubeEmulator
from remediator_testing.pytest_fixtures import PostgresDatabase
from remediator_testing.replicas import ReplicaProcess, Replicas
from tests.kubernetes.helpers import KUBE, grant
from tests.reports.helpers import CHANNEL, SLACK_TOKEN

TOKEN = "hook-token"
ADMIN = "admin-token"
ROUTING_KEY = "H" * 32
# A replica's lease: one that stops heartbeating is fenced this long after its last heartbeat.
LEASE_SECONDS = 3.0
# How often each replica looks for replicas whose lease expired.
CHECK_SECONDS = 1.0
FAST_DELIVERY = {
    "quick_retries": 1,
    "quick_wait_seconds": 0.05,
    "initial_backoff_seconds": 0.1,
    "max_backoff_seconds": 0.5,
    "jitter_seconds": 0.0,
    "poll_seconds": 0.1,
}

Check = Callable[[], Any]


def deep_merge(base: Mapping[str, Any], extra: Mapping[str, Any]) -> dict[str, Any]:
    merged = dict(base)
    for key, value in extra.items():
        if isinstance(value, Mapping) and isinstance(merged.get(key), Mapping):
            merged[key] = deep_merge(merged[key], value)
        else:
            merged[key] = value
    return merged


@dataclass
class HA:
    emu: KubeEmulator
    slack: FakeSlack
    pagerduty: FakePagerDuty
    tmp: Path
    dsn: str
    groups: list[Replicas] = field(default_factory=list)

    def config(self, **overrides: Any) -> dict[str, Any]:
        """The replicas' one config file; `overrides` are merged into it by section."""
        config: dict[str, Any] = {
            "mode": "auto",
            "state": {
                "backend": "postgres",
                "dsn": self.dsn,
                "lease_seconds": LEASE_SECONDS,
                "fence_check_seconds": CHECK_SECONDS,
            },
            "webhook": {"auth": {"bearer_token": TOKEN}},
            # As the shipped service account (RBAC mode), like every Kubernetes test. A request
            # stays unanswered while a replica is frozen: no client-side retry first.
            "kubernetes": {
                "mode": "url",
                "url": self.emu.url,
                "token_file": str(grant(self.emu, self.tmp)),
                **KUBE,
                "request_timeout_seconds": 30.0,
            },
            "admin": {"tokens": [{"name": "tester", "role": "operator", "token": ADMIN}]},
            "escalation": {
                "pagerduty": {"routing_key": ROUTING_KEY, "events_url": self.pagerduty.url},
                "delivery": FAST_DELIVERY,
            },
            "reports": {
                "slack": {"channel": CHANNEL, "token": SLACK_TOKEN, "base_url": self.slack.api_url}
            },
            "logging": {"format": "json", "level": "info"},
        }
        return deep_merge(config, overrides)

    async def start(self, count: int, **overrides: Any) -> Replicas:
        """`count` replicas of `config(**overrides)`, each ready; stopped after the test."""
        workdir = self.tmp / f"replicas-{len(self.groups)}"
        workdir.mkdir()
        group = Replicas(self.config(**overrides), count=count, workdir=workdir)
        self.groups.append(group)
        await group.start()
        return group

    async def query(self, sql: str, *args: Any) -> list[asyncpg.Record]:
        """Read the shared record (a connection of its own each time: it survives outages)."""
        conn = await asyncpg.connect(self.dsn, timeout=10)
        try:
            return list(await conn.fetch(sql, *args))
        finally:
            await conn.close()

    async def value(self, sql: str, *args: Any) -> Any:
        [row] = await self.query(sql, *args)
        return row[0]

    async def until(self, what: str, check: Check, *, within: float = 30.0) -> Any:
        """Poll `check` (sync or async) until it returns something true; return that. On
        timeout, fail naming `what`, with every replica's log."""
        deadline = time.monotonic() + within
        while True:
            found = check()
            if inspect.isawaitable(found):
                found = await found
            if found:
                return found
            if time.monotonic() > deadline:
                logs = "\n".join(group.logs(3000) for group in self.groups)
                raise AssertionError(f"timed out after {within:g}s waiting for {what}\n{logs}")
            await asyncio.sleep(0.05)

    async def acting(self, group: Replicas) -> ReplicaProcess:
        """The replica that owns the one run (by its registered name)."""
        rows = await self.query(
            "SELECT r.name FROM runs JOIN replicas r ON r.id = runs.owner ORDER BY runs.id"
        )
        assert len(rows) == 1, rows
        return group.by_name(rows[0]["name"])

    async def settled(self, group: Replicas) -> bool:
        """Nothing left to do anywhere: the journal digested, no dispatch queued on any running
        replica that can answer, no run running, every outbox message delivered."""
        for member in group.responsive:
            metrics = await metric_values(member)
            if metrics.get("remediator_digest_backlog") or metrics.get(
                "remediator_dispatch_queue_depth"
            ):
                return False
        journal = await self.value("SELECT count(*) FROM intake_journal")
        running = await self.value("SELECT count(*) FROM runs WHERE state = 'running'")
        undelivered = await self.value(
            "SELECT count(*) FROM outbox WHERE delivered_at IS NULL AND dead_at IS NULL"
        )
        return journal == running == undelivered == 0


async def metric_values(member: ReplicaProcess) -> dict[str, float]:
    """A replica's /metrics, unlabelled series and `name{labels}` as written."""
    status, text = await member.get_json("/metrics")
    assert status == 200, text
    values: dict[str, float] = {}
    for line in str(text).splitlines():
        if line and not line.startswith("#"):
            name, _, number = line.rpartition(" ")
            values[name] = float(number)
    return values


@pytest.fixture
async def ha(
    emu: KubeEmulator, postgres_database: PostgresDatabase, tmp_path: Path
) -> AsyncIterator[HA]:
    async with (
        FakeSlack(SLACK_TOKEN, channels=[CHANNEL]) as slack,
        FakePagerDuty(routing_key=ROUTING_KEY) as pagerduty,
    ):
        state = HA(emu, slack, pagerduty, tmp_path, postgres_database.dsn)
        try:
            yield state
        finally:
            # Every replica by its PID, before the database is dropped and the emulator stops.
            await asyncio.gather(*(group.stop() for group in state.groups))


async def gather_posts(
    calls: list[Awaitable[tuple[int, Mapping[str, str], bytes]]],
) -> list[int]:
    return [status for status, _, _ in await asyncio.gather(*calls)]
