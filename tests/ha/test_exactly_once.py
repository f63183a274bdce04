"""Every replica may receive every notification: each episode is still acted on once, paged once.

An HA Alertmanager pair sends each notification from both peers (they cannot wait for each
other's gossip), and here each peer delivers to a different replica; Alertmanager also re-sends
a firing group every repeat interval and retries what got no 2xx. Whichever replica digests and
claims an episode's work first runs it, and the others find it taken.
"""

from __future__ import annotations

import asyncio
from typing import Any

from remediator_testing.alerts import alert, notification
from remediator_testing.servers import AlertmanagerCluster
from tests.ha.conftest import HA, TOKEN, gather_posts, metric_values
from tests.kubernetes.helpers import START, labels

RESTARTED_AT = "kubectl.kubernetes.io/restartedAt"


def deployment_path(name: str) -> str:
    return f"/apis/apps/v1/namespaces/shop/deployments/{name}"


def patches(ha: HA, name: str) -> list[Any]:
    """The changes made to Deployment `name`, from the emulator's request log."""
    return [r for r in ha.emu.requests if r.method == "PATCH" and r.path == deployment_path(name)]


def down(name: str) -> dict[str, str]:
    return labels("ServiceDown", deployment=name, job=name)


def am_config(replica_url: str) -> dict[str, Any]:
    """Everything to one replica's webhook, re-sent every second while it fires."""
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
                        "url": f"{replica_url}/webhook",
                        "send_resolved": True,
                        "http_config": {"authorization": {"credentials": TOKEN}},
                    }
                ],
            }
        ],
    }


async def recorded(member: Any) -> float:
    values = await metric_values(member)
    return values.get('remediator_notifications_total{result="recorded"}', 0.0)


async def test_an_ha_alertmanager_pair_delivering_to_two_replicas_restarts_once(ha: HA) -> None:
    ha.emu.add_deployment("shop", "api", replicas=2, image="api:1")
    await ha.emu.wait_rolled_out("shop", "api")
    group = await ha.start(2)
    # Gossip slower than the peer timeout: both peers send each notification, one to each
    # replica, as an HA pair does when its members have not heard of each other's sends yet.
    cluster = AlertmanagerCluster(
        2,
        member_configs=[am_config(group[0].url), am_config(group[1].url)],
        peer_timeout="10ms",
        gossip_interval="200ms",
    )
    await asyncio.to_thread(cluster.start)
    try:
        firing = alert(down("api"), starts_at=START)
        for member in cluster.members:  # Prometheus sends its alerts to every peer
            await asyncio.to_thread(member.post_alerts, [firing])

        # Each replica receives the notification from its own peer, then the re-sends come.
        for replica in group:
            await ha.until(f"a delivery to {replica.hostname}", lambda r=replica: _at_least([r], 1))
        await ha.until("four deliveries in all", lambda: _at_least(list(group), 4))
        await ha.until("the run to finish", lambda: _runs_finished(ha, 1))
        await ha.until("every replica to have nothing left to do", lambda: ha.settled(group))
    finally:
        await asyncio.to_thread(cluster.stop)

    [run] = await ha.query("SELECT state, playbook FROM runs")
    assert (run["state"], run["playbook"]) == ("acted", "restart-on-down")
    [patch] = patches(ha, "api")
    assert RESTARTED_AT in patch.body["spec"]["template"]["metadata"]["annotations"]
    [(episodes,)] = await ha.query("SELECT count(*) FROM episodes")
    assert episodes == 1
    assert ha.pagerduty.events == []


async def _at_least(replicas: list[Any], count: int) -> bool:
    return sum([await recorded(replica) for replica in replicas]) >= count


async def _runs_finished(ha: HA, count: int) -> bool:
    rows = await ha.query("SELECT state FROM runs")
    return len(rows) == count and all(row["state"] != "running" for row in rows)


async def test_simultaneous_and_repeated_deliveries_to_three_replicas_act_once_per_episode(
    ha: HA,
) -> None:
    names = ["api", "web", "search"]
    for name in names:
        # Crash-looping, with no earlier revision to roll back to: the restart does not roll
        # out, and the run escalates (a page per episode).
        ha.emu.add_deployment("shop", name, replicas=1, image=f"{name}:1")
        ha.emu.set_template_health("shop", name, image=f"{name}:1", healthy=False)
    group = await ha.start(
        3, playbooks={"restart-on-down": {"params": {"rollout_deadline_seconds": 0.5}}}
    )
    payload = notification([alert(down(name), starts_at=START) for name in names])

    # Three rounds: the same notification to all three replicas at the same moment, then
    # re-sent (Alertmanager's repeat), while the first runs are already under way.
    for _ in range(3):
        statuses = await gather_posts([member.post(payload, token=TOKEN) for member in group])
        assert statuses == [200, 200, 200]

    pages = await ha.pagerduty.wait_for(3, within=30)
    await ha.until("every run to finish", lambda: _runs_finished(ha, 3))
    await ha.until("every replica to have nothing left to do", lambda: ha.settled(group))

    for name in names:
        assert len(patches(ha, name)) == 1, [(r.method, r.path) for r in ha.emu.requests]
    runs = await ha.query("SELECT episode_id, state FROM runs ORDER BY episode_id")
    assert [run["state"] for run in runs] == ["acted"] * 3
    assert len({run["episode_id"] for run in runs}) == 3
    assert len(ha.pagerduty.events) == 3
    assert {page["dedup_key"] for page in pages} == {run["episode_id"] for run in runs}
    [(notifications,)] = await ha.query("SELECT count(*) FROM notifications")
    assert notifications == 9
