"""scale-on-lag and scale-on-latency: up by a bounded step through whatever owns the replicas,
never down while the alert fires, back to what was found after it resolved and a cool-down."""

from __future__ import annotations

from typing import Any

import pytest

from tests.kubernetes.helpers import Cluster, labels

LAG = "scale-on-lag"
LATENCY = "scale-on-latency"
SCALE_PATH = "/apis/apps/v1/namespaces/shop/deployments/consumer/scale"


def lag(**extra: str) -> dict[str, str]:
    return labels(
        "KafkaLagHigh", deployment="consumer", consumergroup="ingest", topic="ticks", **extra
    )


@pytest.mark.parametrize("mode", ["auto", "shadow"])
async def test_lag_scales_the_deployment_by_the_step(cluster: Cluster, mode: str) -> None:
    cluster.emu.add_deployment("shop", "consumer", replicas=2)
    await cluster.start("scale_on_lag", mode=mode, params={LAG: {"partitions": 12}})

    outcome = await cluster.fire(lag())

    [action] = outcome.actions
    assert (action.verb, action.resource, action.object) == (
        "patch",
        SCALE_PATH,
        "Deployment/shop/consumer",
    )
    assert action.body == {"spec": {"replicas": 4}}
    assert action.change == {"replicas": [2, 4]}
    assert outcome.run.evidence["owner"] == "the Deployment"
    patches = cluster.changes()
    if mode == "shadow":
        assert (outcome.run.state, action.state) == ("shadow", "would")
        assert patches == []
        assert cluster.replicas("consumer") == 2
        return
    assert (outcome.run.state, action.state) == ("acted", "succeeded")
    [patch] = patches
    assert (patch.path, patch.body, patch.content_type) == (
        SCALE_PATH,
        action.body,
        "application/merge-patch+json",
    )
    await cluster.emu.wait_rolled_out("shop", "consumer")
    assert len(cluster.emu.pods("shop", "app=consumer")) == 4
    assert outcome.escalations == []
    reads = {(c["verb"], c["resource"]) for c in outcome.calls}
    assert ("get", "/apis/apps/v1/namespaces/shop/deployments/consumer") in reads


async def test_partitions_cap_the_consumers_and_a_label_can_only_lower_it(
    cluster: Cluster,
) -> None:
    cluster.emu.add_deployment("shop", "consumer", replicas=3)
    await cluster.start("scale_on_lag", params={LAG: {"partitions": 10, "step": 5}})

    outcome = await cluster.fire(lag(partitions="4"))

    assert outcome.run.state == "acted"
    assert cluster.replicas("consumer") == 4
    assert outcome.run.evidence["cap"] == {"replicas": 4, "why": "4 partitions"}


async def test_unknown_partition_count_scales_nothing_and_escalates(cluster: Cluster) -> None:
    cluster.emu.add_deployment("shop", "consumer", replicas=2)
    await cluster.start("scale_on_lag")

    outcome = await cluster.fire(lag())

    assert outcome.run.state == "noop" and outcome.actions == []
    [escalation] = outcome.escalations
    assert "partition count of topic 'ticks' is unknown" in escalation.reason
    assert cluster.changes() == []


async def test_never_scales_down_while_firing(cluster: Cluster) -> None:
    cluster.emu.add_deployment("shop", "consumer", replicas=8)
    await cluster.start("scale_on_lag", params={LAG: {"partitions": 6}})

    outcome = await cluster.fire(lag())
    assert await cluster.run_timers() == 0  # nothing waits to scale back while it fires

    assert outcome.actions == [] and cluster.changes() == []
    assert cluster.replicas("consumer") == 8
    [escalation] = outcome.escalations
    assert "already runs (or is held at) 8 replica(s), at or above the cap of 6 (6 partitions)" in (
        escalation.reason
    )


async def test_scales_back_to_what_it_found_after_resolve_and_cooldown(cluster: Cluster) -> None:
    cluster.emu.add_deployment("shop", "consumer", replicas=2)
    await cluster.start("scale_on_lag", params={LAG: {"partitions": 12, "cooldown_seconds": 900}})
    fired = await cluster.fire(lag())
    assert cluster.replicas("consumer") == 4

    await cluster.resolve(lag())
    cluster.clock.advance(899)
    assert "revert" not in [t.kind for t in await cluster.due_timers()]  # cooling down
    await cluster.run_timers()  # the verification and the stick check come due before it
    assert cluster.replicas("consumer") == 4
    cluster.clock.advance(1)
    assert [t.kind for t in await cluster.due_timers()] == ["revert"]
    assert await cluster.run_timers() == 1

    assert cluster.replicas("consumer") == 2
    outcome = await cluster.outcome(fired.episode.id)
    back = outcome.actions[-1]
    assert (back.body, back.change, back.state) == (
        {"spec": {"replicas": 2}},
        {"replicas": [4, 2]},
        "succeeded",
    )
    assert [d.kind for d in outcome.decisions][-1] == "reverted"


async def test_scale_back_leaves_a_count_someone_else_changed(cluster: Cluster) -> None:
    cluster.emu.add_deployment("shop", "consumer", replicas=2)
    await cluster.start("scale_on_lag", params={LAG: {"partitions": 12, "cooldown_seconds": 0}})
    fired = await cluster.fire(lag())
    await cluster.patch(
        "/apis/apps/v1/namespaces/shop/deployments/consumer", {"spec": {"replicas": 7}}
    )

    await cluster.resolve(lag())
    assert await cluster.run_timers() == 1

    assert cluster.replicas("consumer") == 7
    outcome = await cluster.outcome(fired.episode.id)
    assert len(outcome.actions) == 1


def hpa_of(cluster: Cluster, name: str) -> dict[str, Any]:
    return cluster.emu.get("autoscaling/v2", "horizontalpodautoscalers", "shop", name)


async def test_latency_raises_the_hpa_floor_and_restores_it(cluster: Cluster) -> None:
    cluster.emu.add_deployment("shop", "web", replicas=3)
    cluster.emu.add_hpa("shop", "web", min_replicas=3, max_replicas=20)
    await cluster.start("scale_on_lag", params={LATENCY: {"cooldown_seconds": 0}})

    outcome = await cluster.fire(labels("HighResponseTime", deployment="web"))

    [action] = outcome.actions
    assert (action.verb, action.resource, action.object, action.body, action.change) == (
        "patch",
        "/apis/autoscaling/v2/namespaces/shop/horizontalpodautoscalers/web",
        "HorizontalPodAutoscaler/shop/web",
        {"spec": {"minReplicas": 5}},
        {"replicas": [3, 5]},
    )
    assert hpa_of(cluster, "web")["spec"]["minReplicas"] == 5
    await cluster.emu.wait_for(lambda: cluster.replicas("web") == 5, what="the HPA to scale up")
    assert not any("/deployments/web" in r.path for r in cluster.changes())

    await cluster.resolve(labels("HighResponseTime", deployment="web"))
    assert await cluster.run_timers() == 1
    assert hpa_of(cluster, "web")["spec"]["minReplicas"] == 3


async def test_latency_never_asks_an_hpa_beyond_its_max(cluster: Cluster) -> None:
    cluster.emu.add_deployment("shop", "web", replicas=4)
    cluster.emu.add_hpa("shop", "web", min_replicas=2, max_replicas=5)
    await cluster.start("scale_on_lag")

    outcome = await cluster.fire(labels("HighLatency", deployment="web"))

    assert outcome.actions[0].body == {"spec": {"minReplicas": 5}}
    assert outcome.run.evidence["cap"] == {"replicas": 5, "why": "the HPA's maxReplicas 5"}


SCALED_OBJECT = {
    "apiVersion": "keda.sh/v1alpha1",
    "kind": "ScaledObject",
    "metadata": {"name": "consumer-so", "namespace": "shop"},
    "spec": {
        "scaleTargetRef": {"name": "consumer"},
        "triggers": [{"type": "kafka", "metadata": {"topic": "ticks"}}],
    },
}


async def test_lag_under_keda_pauses_at_more_replicas_and_resumes(cluster: Cluster) -> None:
    cluster.emu.add_deployment("shop", "consumer", replicas=2)
    cluster.emu.add_object("keda.sh/v1alpha1", "scaledobjects", SCALED_OBJECT)
    await cluster.start("scale_on_lag", params={LAG: {"partitions": 12, "cooldown_seconds": 0}})

    outcome = await cluster.fire(lag())

    [action] = outcome.actions
    annotation = "autoscaling.keda.sh/paused-replicas"
    assert action.body == {"metadata": {"annotations": {annotation: "4"}}}
    assert action.object == "ScaledObject/shop/consumer-so"
    scaled = cluster.emu.get("keda.sh/v1alpha1", "scaledobjects", "shop", "consumer-so")
    assert scaled["metadata"]["annotations"][annotation] == "4"
    await cluster.emu.wait_for(lambda: cluster.replicas("consumer") == 4, what="KEDA to hold 4")

    await cluster.resolve(lag())
    assert await cluster.run_timers() == 1
    scaled = cluster.emu.get("keda.sh/v1alpha1", "scaledobjects", "shop", "consumer-so")
    assert annotation not in (scaled["metadata"].get("annotations") or {})


async def test_no_scale_back_while_the_alert_fires_again(cluster: Cluster) -> None:
    cluster.emu.add_deployment("shop", "consumer", replicas=2)
    params = {"partitions": 4, "cooldown_seconds": 0}
    await cluster.start("scale_on_lag", params={LAG: params})
    first = await cluster.fire(lag())
    await cluster.resolve(lag())
    # A new episode for the same consumer fires: it is at the partition cap, so it does not
    # scale (and has no scale-back of its own).
    second = await cluster.fire(lag(), minutes=10)
    assert second.actions == [] and cluster.replicas("consumer") == 4

    assert await cluster.run_timers() == 1
    assert cluster.replicas("consumer") == 4
    deferred = (await cluster.outcome(first.episode.id)).decisions[-1]
    assert (deferred.kind, deferred.reason) == (
        "skipped",
        f"revert deferred: the alert fires again for Deployment/shop/consumer (episode "
        f"{second.episode.id}); asking again in 1 s",
    )

    await cluster.resolve(lag(), minutes=10)
    assert await cluster.run_timers() == 0  # asked again only after that second
    cluster.clock.advance(1)
    assert await cluster.run_timers() == 1
    assert cluster.replicas("consumer") == 2
    assert (await cluster.outcome(first.episode.id)).decisions[-1].kind == "reverted"


async def test_an_hpa_floor_raised_by_someone_else_is_raised_from_there(cluster: Cluster) -> None:
    cluster.emu.add_deployment("shop", "web", replicas=2)
    cluster.emu.add_hpa("shop", "web", min_replicas=2, max_replicas=20)
    # Someone raised the floor: the playbook scales on from there, never lowering it.
    await cluster.patch(
        "/apis/autoscaling/v2/namespaces/shop/horizontalpodautoscalers/web",
        {"spec": {"minReplicas": 6}},
    )
    await cluster.start("scale_on_lag")

    outcome = await cluster.fire(labels("HighLatency", deployment="web"))

    [action] = outcome.actions
    assert action.body == {"spec": {"minReplicas": 8}}
    assert hpa_of(cluster, "web")["spec"]["minReplicas"] == 8
