"""statefulset-rolling-restart: one pod at a time, each after the previous is Ready again."""

from __future__ import annotations

from typing import Any

import pytest

from playbooks.statefulset_rolling_restart import restart_order
from remediator_testing.kube import WatchEvent
from tests.kubernetes.helpers import Cluster, labels

PLAYBOOK = "statefulset-rolling-restart"
THREE_PODS = {"blast_radius": {"max_pods_per_episode": 3}}


def redis_down(**extra: str) -> dict[str, str]:
    return labels("RedisCacheDown", statefulset="redis", **extra)


def ready(cluster: Cluster) -> int:
    return sum(
        1
        for p in cluster.emu.pods("shop", "app=redis")
        if any(
            c["type"] == "Ready" and c["status"] == "True"
            for c in p["status"].get("conditions") or []
        )
    )


async def three_ready(cluster: Cluster) -> None:
    cluster.emu.add_statefulset("shop", "redis", replicas=3, image="redis:7")
    await cluster.emu.wait_for(lambda: ready(cluster) == 3, what="3 ready redis pods")


def record_deletions(cluster: Cluster) -> list[tuple[str, int]]:
    """(pod, Ready pods left at that moment) for every pod deleted from now on."""
    deletions: list[tuple[str, int]] = []

    def on_change(event: WatchEvent) -> None:
        if event.type == "DELETED" and event.rt.plural == "pods":
            deletions.append((event.obj["metadata"]["name"], ready(cluster)))

    cluster.emu.store.listeners.append(on_change)
    return deletions


async def test_restarts_one_pod_at_a_time_highest_ordinal_first(cluster: Cluster) -> None:
    await three_ready(cluster)
    before = {p["metadata"]["name"]: p["metadata"]["uid"] for p in cluster.emu.pods("shop")}
    deletions = record_deletions(cluster)
    await cluster.start("statefulset_rolling_restart", guards=THREE_PODS)

    outcome = await cluster.fire(redis_down())

    assert outcome.run.state == "acted", outcome.run.error
    assert outcome.run.target_key == "StatefulSet/shop/redis"
    assert [d[0] for d in deletions] == ["redis-2", "redis-1", "redis-0"]
    # Each pod went only while the two others were Ready (the previous one back already).
    assert [d[1] for d in deletions] == [2, 2, 2]
    assert [a.object for a in outcome.actions] == [
        "Pod/shop/redis-2",
        "Pod/shop/redis-1",
        "Pod/shop/redis-0",
    ]
    assert all(
        a.state == "succeeded" and a.change == {"pods": 1, "workload_replicas": 3}
        for a in outcome.actions
    )
    after = {p["metadata"]["name"]: p["metadata"]["uid"] for p in cluster.emu.pods("shop")}
    assert set(after) == set(before) and not set(after.values()) & set(before.values())
    assert outcome.run.evidence["restarted"] == ["redis-2", "redis-1", "redis-0"]
    assert outcome.escalations == []


async def test_a_replacement_that_is_not_ready_stops_the_restart(cluster: Cluster) -> None:
    await three_ready(cluster)
    cluster.emu.set_template_health("shop", "redis", image="redis:7", healthy=False)
    await cluster.emu.wait_for(lambda: ready(cluster) == 0, what="redis down")
    await cluster.start(
        "statefulset_rolling_restart",
        guards=THREE_PODS,
        params={PLAYBOOK: {"pod_ready_deadline_seconds": 0.3}},
    )

    outcome = await cluster.fire(labels("KafkaBrokerDown", statefulset="redis"))

    assert [a.object for a in outcome.actions] == ["Pod/shop/redis-2"]
    [escalation] = outcome.escalations
    assert escalation.reason == (
        "pod shop/redis-2 was not Ready 0.3 s after its restart; stopped there (restarted "
        "before it: none, not touched: ['redis-1', 'redis-0'])"
    )


async def test_the_defaults_restart_every_pod(cluster: Cluster) -> None:
    """Issue 14, item 9: under the default guards the runbook's procedure was impossible (one
    pod restarted, the rest escalated). The playbook declares one pod per replica; the
    default ceiling (10) allows it."""
    await three_ready(cluster)
    deletions = record_deletions(cluster)
    await cluster.start("statefulset_rolling_restart")  # the default guards

    outcome = await cluster.fire(redis_down())

    assert outcome.run.state == "acted", outcome.run.error
    assert [(a.object, a.state) for a in outcome.actions] == [
        ("Pod/shop/redis-2", "succeeded"),
        ("Pod/shop/redis-1", "succeeded"),
        ("Pod/shop/redis-0", "succeeded"),
    ]
    assert [d[0] for d in deletions] == ["redis-2", "redis-1", "redis-0"]
    assert outcome.run.evidence["restarted"] == ["redis-2", "redis-1", "redis-0"]
    assert outcome.escalations == []


async def test_the_ceiling_caps_the_restart_and_escalates_the_rest(cluster: Cluster) -> None:
    await three_ready(cluster)
    await cluster.start(
        "statefulset_rolling_restart", guards={"blast_radius": {"max_pods_per_episode": 2}}
    )

    outcome = await cluster.fire(redis_down())

    assert outcome.run.state == "acted"
    assert [(a.object, a.state) for a in outcome.actions] == [
        ("Pod/shop/redis-2", "succeeded"),
        ("Pod/shop/redis-1", "succeeded"),
        ("Pod/shop/redis-0", "refused"),
    ]
    [escalation] = outcome.escalations
    assert escalation.reason == (
        "restarted redis-2, redis-1; redis-0 and after were not: blast_radius: 2 pod(s) of "
        "StatefulSet/shop/redis already restarted in this episode; 1 more exceeds 2 per episode "
        "(the playbook's budget: one per replica, 3; ceiling "
        "guards.blast_radius.max_pods_per_episode = 2)"
    )


async def test_shadow_records_every_eviction_in_order(cluster: Cluster) -> None:
    await three_ready(cluster)
    await cluster.start("statefulset_rolling_restart", mode="shadow", guards=THREE_PODS)

    outcome = await cluster.fire(redis_down())

    assert outcome.run.state == "shadow"
    assert [(a.object, a.state) for a in outcome.actions] == [
        ("Pod/shop/redis-2", "would"),
        ("Pod/shop/redis-1", "would"),
        ("Pod/shop/redis-0", "would"),
    ]
    assert cluster.changes() == [] and ready(cluster) == 3
    assert outcome.run.evidence["would_restart"] == ["redis-2", "redis-1", "redis-0"]


def pod(name: str, is_ready: bool) -> dict[str, Any]:
    status = "True" if is_ready else "False"
    return {
        "metadata": {"name": name},
        "status": {"conditions": [{"type": "Ready", "status": status}]},
    }


@pytest.mark.parametrize(
    ("only_unready", "expected"),
    [(False, ["kafka-1", "kafka-2", "kafka-0"]), (True, ["kafka-1"])],
)
def test_unready_pods_go_first(only_unready: bool, expected: list[str]) -> None:
    pods = [pod("kafka-0", True), pod("kafka-1", False), pod("kafka-2", True)]
    order = restart_order(pods, only_unready)
    assert [p["metadata"]["name"] for p in order] == expected
