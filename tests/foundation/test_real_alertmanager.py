"""A real Alertmanager (single, then an HA pair) delivers to the daemon."""

from __future__ import annotations

import asyncio
import sqlite3
from datetime import UTC, datetime
from typing import Any

from remediator.alertmanager import label_fingerprint
from remediator_testing.servers import AlertmanagerServer, alertmanager_cluster
from tests.conftest import TOKEN, Daemon, MakeDaemon
from tests.foundation.test_webhook import LAG, lag_registry


def am_config(url: str) -> dict[str, Any]:
    return {
        "route": {
            "receiver": "remediator",
            "group_by": ["alertname", "namespace", "deployment"],
            "group_wait": "100ms",
            "group_interval": "1s",
            "repeat_interval": "1s",
        },
        "receivers": [
            {
                "name": "remediator",
                "webhook_configs": [
                    {
                        "url": f"{url}/webhook",
                        "send_resolved": True,
                        "http_config": {"authorization": {"credentials": TOKEN}},
                    }
                ],
            }
        ],
    }


def prom_alert(
    labels: dict[str, str], starts: datetime, ends: datetime | None = None
) -> dict[str, Any]:
    item: dict[str, Any] = {
        "labels": labels,
        "annotations": {"summary": "lag"},
        "startsAt": starts.isoformat(),
        "generatorURL": "http://prometheus/graph?g0.expr=kafka_lag+%3E+10000",
    }
    if ends is not None:
        item["endsAt"] = ends.isoformat()
    return item


async def wait_until(predicate: Any, seconds: float = 20.0) -> None:
    async with asyncio.timeout(seconds):
        while not await predicate():
            await asyncio.sleep(0.1)


def delivered(daemon: Daemon) -> int:
    """Notifications recorded, read from the state file as an operator would."""
    with sqlite3.connect(daemon.settings.state.path) as db:
        return int(db.execute("SELECT count(*) FROM notifications").fetchone()[0])


def url_of(daemon: Daemon) -> str:
    return str(daemon.client.make_url("")).rstrip("/")


async def test_alertmanager_delivers_fires_resends_and_resolves(make_daemon: MakeDaemon) -> None:
    calls: list[str] = []
    daemon = await make_daemon(lag_registry(calls), config={"mode": "auto"})
    store = daemon.engine.store
    am = AlertmanagerServer(am_config(url_of(daemon)))
    await asyncio.to_thread(am.start)
    try:
        starts = datetime.now(UTC).replace(microsecond=0)
        await asyncio.to_thread(am.post_alerts, [prom_alert(LAG, starts)])

        async def resent() -> bool:  # the first notification and at least two repeats
            return delivered(daemon) >= 3

        await wait_until(resent)
        await daemon.settle()
        episode = (await store.list_episodes())[0]
        assert episode.fingerprint == label_fingerprint(LAG)  # same identity as Alertmanager's
        assert episode.starts_at == starts
        await asyncio.to_thread(am.post_alerts, [prom_alert(LAG, starts, datetime.now(UTC))])

        async def resolved() -> bool:
            e = await store.get_episode(episode.id)
            return e is not None and e.status == "resolved"

        await wait_until(resolved)
        await daemon.settle()
    finally:
        await asyncio.to_thread(am.stop)
    assert calls == ["Deployment/shop/orders"]
    assert len(await store.list_episodes()) == 1


async def test_ha_pair_delivers_twice_and_the_daemon_acts_once(make_daemon: MakeDaemon) -> None:
    calls: list[str] = []
    daemon = await make_daemon(lag_registry(calls), config={"mode": "auto"})
    store = daemon.engine.store
    cluster = alertmanager_cluster(2, am_config(url_of(daemon)), peer_timeout="200ms")
    members = await asyncio.to_thread(cluster.__enter__)
    try:
        starts = datetime.now(UTC).replace(microsecond=0)
        others = [{**LAG, "deployment": f"d{i}"} for i in range(5)]
        for member in members:  # Prometheus sends every alert to every Alertmanager
            await asyncio.to_thread(
                member.post_alerts, [prom_alert(labels, starts) for labels in [LAG, *others]]
            )

        async def delivered_more_than_once() -> bool:
            return len(await store.list_episodes()) == 6 and delivered(daemon) >= 4

        await wait_until(delivered_more_than_once)
        await daemon.settle()
    finally:
        await asyncio.to_thread(cluster.__exit__, None, None, None)
    assert sorted(calls) == sorted(
        f"Deployment/shop/{d}" for d in ["orders", *[f"d{i}" for i in range(5)]]
    )
