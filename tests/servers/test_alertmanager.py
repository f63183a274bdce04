import asyncio
import json
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web

from remediator_testing.servers import (
    AlertmanagerCluster,
    AlertmanagerServer,
    ServerStartError,
    alertmanager_cluster,
    wait_for,
)
from tests.servers.helpers import assert_pid_gone

pytestmark = pytest.mark.servers


def test_lifecycle_post_and_list_alerts() -> None:
    with AlertmanagerServer() as alertmanager:
        pid = alertmanager.pid
        assert alertmanager.status()["cluster"]["status"] == "disabled"
        alertmanager.post_alerts(
            [{"labels": {"alertname": "DiskFull", "instance": "db1"}, "annotations": {"x": "y"}}]
        )
        [alert] = alertmanager.alerts()
        assert alert["labels"] == {"alertname": "DiskFull", "instance": "db1"}
        assert alert["status"]["state"] == "active"
        assert alertmanager.log_path.is_file()
        assert alertmanager.config_path.read_text().startswith("receivers:")
    assert_pid_gone(pid)


def test_session_alertmanager_accepts_alerts(alertmanager_server: AlertmanagerServer) -> None:
    alertmanager_server.post_alerts([{"labels": {"alertname": "SessionSink"}}])
    names = {a["labels"]["alertname"] for a in alertmanager_server.alerts()}
    assert "SessionSink" in names


def test_start_failure_reports_log_tail() -> None:
    server = AlertmanagerServer("route: {receiver: missing}\nreceivers: []\n")
    with pytest.raises(ServerStartError, match="missing"):
        server.start()
    assert not server.running


def test_missing_binary_names_the_debian_package(tmp_path: Path) -> None:
    with pytest.raises(RuntimeError, match="'prometheus-alertmanager'"):
        AlertmanagerServer(binary=tmp_path / "no-alertmanager").start()


class WebhookSink:
    """Records webhook deliveries on the test's loop."""

    def __init__(self) -> None:
        self.deliveries: list[dict[str, Any]] = []
        self.delivered = asyncio.Event()
        self.runner = web.AppRunner(web.Application(), access_log=None)

    async def handle(self, request: web.Request) -> web.Response:
        self.deliveries.append(json.loads(await request.read()))
        self.delivered.set()
        return web.Response()

    async def start(self) -> str:
        self.runner.app.router.add_post("/hook", self.handle)
        await self.runner.setup()
        site = web.TCPSite(self.runner, "127.0.0.1", 0)
        await site.start()
        return f"http://127.0.0.1:{self.runner.addresses[0][1]}/hook"


async def test_ha_pair_gossips_silences_and_deduplicates_notifications() -> None:
    sink = WebhookSink()
    hook_url = await sink.start()
    config = {
        "route": {
            "receiver": "hook",
            "group_by": ["alertname"],
            "group_wait": "0s",
            "group_interval": "1s",
            "repeat_interval": "1h",
        },
        "receivers": [{"name": "hook", "webhook_configs": [{"url": hook_url}]}],
    }
    try:
        cluster = await asyncio.to_thread(AlertmanagerCluster(2, config).start)
        members = list(cluster.members)
        first, second = members
        pids = [m.pid for m in members]
        try:
            peers = {p["address"] for p in second.status()["cluster"]["peers"]}
            assert peers == {first.cluster_address, second.cluster_address}

            # Silences and the notification log are gossiped; alerts are not.
            silence_id = first.create_silence({"alertname": "Silenced"})
            await asyncio.to_thread(
                wait_for,
                lambda: [s for s in second.silences() if s["id"] == silence_id],
                timeout=10,
                what="silence to reach the peer",
            )
            first.post_alerts([{"labels": {"alertname": "OnlyOnFirst"}}])
            async with asyncio.timeout(10):
                await sink.delivered.wait()
            assert not [a for a in second.alerts() if a["labels"]["alertname"] == "OnlyOnFirst"]

            # Like Prometheus, send to both: exactly one webhook must come out.
            sink.delivered.clear()
            for member in members:
                member.post_alerts([{"labels": {"alertname": "Duplicated"}}])
            async with asyncio.timeout(10):
                await sink.delivered.wait()
            # The second member waits peer_timeout (1s), then finds the first's
            # notification in the gossiped log; give it time to misbehave.
            await asyncio.sleep(2.5)
            names = [d["commonLabels"]["alertname"] for d in sink.deliveries]
            assert names == ["OnlyOnFirst", "Duplicated"]
        finally:
            await asyncio.to_thread(cluster.stop)
    finally:
        await sink.runner.cleanup()
    for pid in pids:
        assert_pid_gone(pid)


def test_cluster_context_manager_yields_members() -> None:
    with alertmanager_cluster(2, peer_timeout="500ms") as (first, second):
        pids = [first.pid, second.pid]
        assert first.status()["cluster"]["status"] == "ready"
        assert second.cluster_address != first.cluster_address
    for pid in pids:
        assert_pid_gone(pid)
