"""restart-crashloop: roll back a crash-looping recent rollout, else evict the pod once (PDBs
respected), and escalate a crash loop that continues in the same episode."""

from __future__ import annotations

from tests.kubernetes.helpers import Cluster, labels

PLAYBOOK = "restart-crashloop"
PATH = "/apis/apps/v1/namespaces/shop/deployments/api"
OLD = {PLAYBOOK: {"rollout_window_seconds": 0.01}}  # every rollout counts as old


def looping(cluster: Cluster, image: str | None = None) -> list[str]:
    return sorted(
        p["metadata"]["name"]
        for p in cluster.emu.pods("shop", "app=api")
        if any(
            (c.get("state") or {}).get("waiting", {}).get("reason") == "CrashLoopBackOff"
            for c in p["status"].get("containerStatuses") or []
        )
        and (image is None or p["spec"]["containers"][0]["image"] == image)
    )


async def crash_looping_pod(cluster: Cluster, image: str | None = None) -> str:
    await cluster.emu.wait_for(lambda: bool(looping(cluster, image)), what="a crash loop")
    return looping(cluster, image)[0]


def crash(pod: str, namespace: str = "shop", **extra: str) -> dict[str, str]:
    return labels("PodCrashLooping", namespace, pod=pod, container="api", **extra) | {
        "severity": "critical"
    }


async def all_crashing(cluster: Cluster, replicas: int = 2) -> str:
    """A Deployment rolled out long ago whose pods now all crash-loop (say, a dependency)."""
    cluster.emu.add_deployment("shop", "api", replicas=replicas, image="api:1")
    await cluster.emu.wait_rolled_out("shop", "api")
    cluster.emu.set_template_health("shop", "api", image="api:1", healthy=False)
    await cluster.emu.wait_for(lambda: len(looping(cluster)) == replicas, what="crash loops")
    return looping(cluster)[0]


async def test_a_crash_looping_recent_rollout_is_rolled_back(cluster: Cluster) -> None:
    cluster.emu.add_deployment("shop", "api", replicas=2, image="api:1")
    await cluster.emu.wait_rolled_out("shop", "api")
    cluster.emu.set_template_health("shop", "api", image="api:2", healthy=False)
    await cluster.patch(
        PATH, {"spec": {"template": {"spec": {"containers": [{"name": "api", "image": "api:2"}]}}}}
    )
    pod = await crash_looping_pod(cluster, "api:2")
    await cluster.start("restart_crashloop")

    outcome = await cluster.fire(crash(pod))

    assert outcome.run.state == "acted", outcome.run.error
    assert outcome.run.target_key == "Deployment/shop/api"
    [action] = outcome.actions
    assert action.summary == (
        "roll back Deployment/shop/api from revision 2 (api:2) to revision 1 (api:1)"
    )
    await cluster.emu.wait_rolled_out("shop", "api")
    assert {p["spec"]["containers"][0]["image"] for p in cluster.emu.pods("shop")} == {"api:1"}
    assert not any("/eviction" in r.path for r in cluster.emu.requests)
    assert outcome.run.evidence["pod"]["name"] == pod


async def test_otherwise_the_pod_is_evicted_once(cluster: Cluster) -> None:
    pod = await all_crashing(cluster)
    uid = cluster.emu.get("v1", "pods", "shop", pod)["metadata"]["uid"]
    await cluster.start("restart_crashloop", params=OLD)

    outcome = await cluster.fire(crash(pod, deployment="api"))

    assert outcome.run.state == "acted", outcome.run.error
    [action] = outcome.actions
    path = f"/api/v1/namespaces/shop/pods/{pod}/eviction"
    assert (action.verb, action.resource, action.object, action.change) == (
        "create",
        path,
        f"Pod/shop/{pod}",
        {"pods": 1},
    )
    assert action.body == {
        "apiVersion": "policy/v1",
        "kind": "Eviction",
        "metadata": {"name": pod, "namespace": "shop"},
        "deleteOptions": {"preconditions": {"uid": uid}},
    }
    [sent] = cluster.changes()
    assert (sent.method, sent.path, sent.body, sent.status) == ("POST", path, action.body, 201)
    await cluster.emu.wait_for(lambda: len(cluster.emu.pods("shop", "app=api")) == 2)
    assert pod not in {p["metadata"]["name"] for p in cluster.emu.pods("shop")}
    [timer] = await cluster.timers(outcome.episode.id, "follow_up")
    assert timer.payload["data"] == {"step": "eviction", "pod": pod}


async def test_a_second_crash_loop_in_the_episode_is_escalated_not_restarted(
    cluster: Cluster,
) -> None:
    pod = await all_crashing(cluster)
    await cluster.start(
        "restart_crashloop", params={PLAYBOOK: {**OLD[PLAYBOOK], "follow_up_seconds": 0.1}}
    )
    fired = await cluster.fire(crash(pod))
    assert fired.run.state == "acted"
    await crash_looping_pod(cluster)  # the replacement crash-loops too
    await cluster.fire(crash(pod))  # re-sent by Alertmanager: the same episode
    assert await cluster.run_timers() == 0
    cluster.clock.advance(0.1)
    assert await cluster.run_timers() == 1

    outcome = await cluster.outcome(fired.episode.id)
    assert len(outcome.actions) == 1  # no second eviction
    [escalation] = outcome.escalations
    assert escalation.reason.startswith("Deployment/shop/api still crash-loops (")
    assert f"after the eviction of pod {pod}; not restarting again" in escalation.reason
    assert outcome.decisions[-1].kind == "noop"


async def test_a_pod_disruption_budget_blocks_the_eviction_cleanly(cluster: Cluster) -> None:
    pod = await all_crashing(cluster, replicas=3)
    cluster.emu.add_pdb("shop", "api-pdb", selector={"app": "api"}, min_available=3)
    await cluster.start("restart_crashloop", params=OLD)

    outcome = await cluster.fire(crash(pod))

    assert outcome.run.state == "failed"
    assert "refused by a PodDisruptionBudget" in str(outcome.run.error)
    assert "violate the pod's disruption budget" in str(outcome.run.error)
    [action] = outcome.actions
    assert action.state == "failed"
    [escalation] = outcome.escalations
    assert "refused by a PodDisruptionBudget" in escalation.reason
    assert pod in {p["metadata"]["name"] for p in cluster.emu.pods("shop")}
    # A budget's 429 is an answer, not throttling: asked once, not retried.
    assert [r.status for r in cluster.changes()] == [429]


async def test_shadow_records_the_eviction_and_changes_nothing(cluster: Cluster) -> None:
    pod = await all_crashing(cluster)
    await cluster.start("restart_crashloop", mode="shadow", params=OLD)

    outcome = await cluster.fire(crash(pod))

    assert outcome.run.state == "shadow"
    [action] = outcome.actions
    assert (action.state, action.resource) == (
        "would",
        f"/api/v1/namespaces/shop/pods/{pod}/eviction",
    )
    assert cluster.changes() == []
    assert pod in {p["metadata"]["name"] for p in cluster.emu.pods("shop")}
    assert await cluster.timers(outcome.episode.id, "follow_up") == []


async def test_a_pod_of_another_deployment_is_refused(cluster: Cluster) -> None:
    pod = await all_crashing(cluster)
    cluster.emu.add_deployment("shop", "web", replicas=1)
    await cluster.start("restart_crashloop", params=OLD)

    outcome = await cluster.fire(crash(pod, deployment="web"))

    assert outcome.run.state == "refused"
    assert outcome.run.error == (
        f"target: Pod/shop/{pod} belongs to Deployment api, not Deployment/shop/web"
    )
    assert outcome.actions == [] and cluster.changes() == []


async def test_a_pod_that_does_not_exist_is_refused(cluster: Cluster) -> None:
    cluster.emu.add_deployment("shop", "api", replicas=1)
    await cluster.start("restart_crashloop")

    outcome = await cluster.fire(crash("api-5d8c7b6f4-zzzzz"))

    assert outcome.run.state == "refused"
    assert outcome.run.error == "target: Pod/shop/api-5d8c7b6f4-zzzzz does not exist"
    assert len(outcome.escalations) == 1 and cluster.changes() == []
