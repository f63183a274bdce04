"""The shipped RBAC is exactly what the built-in playbooks need, enforced by the emulator.

Every scenario test in this folder already runs as the daemon's service account holding only
deploy/base/rbac.yaml (tests/kubernetes/helpers.py `Cluster.start`). Here: one scenario per
path through the playbooks passes with exactly those rules, and for each rule the shipped
ClusterRole grants, removing it makes a named scenario fail (nothing granted is unused).
"""

from __future__ import annotations

import copy
from collections.abc import Awaitable, Callable
from typing import Any

import pytest

from remediator.playbook.access import Rule
from remediator_testing.kube.rbac import rule_allows
from tests.kubernetes.helpers import Cluster, labels, shipped_rbac
from tests.kubernetes.test_restart_crashloop import all_crashing, crash
from tests.kubernetes.test_scale import SCALED_OBJECT, lag

Manifests = list[dict[str, Any]]
# A scenario sets up the cluster, runs one playbook under `rbac`, and says whether the
# playbook did what it is for (and if not, what happened instead).
Scenario = Callable[[Cluster, Manifests], Awaitable[tuple[bool, str]]]


async def restart_on_down(cluster: Cluster, rbac: Manifests) -> tuple[bool, str]:
    cluster.emu.add_deployment("shop", "api", replicas=2)
    await cluster.emu.wait_rolled_out("shop", "api")
    await cluster.start("restart_on_down", rbac=rbac)
    outcome = await cluster.fire(labels("ServiceDown", deployment="api"))
    restarted = "kubectl.kubernetes.io/restartedAt" in (
        cluster.deployment("api")["spec"]["template"]["metadata"].get("annotations") or {}
    )
    return outcome.run.state == "acted" and restarted, str(outcome.run.error)


async def crashloop_evict_then_follow_up(cluster: Cluster, rbac: Manifests) -> tuple[bool, str]:
    pod = await all_crashing(cluster)
    params = {"rollout_window_seconds": 0.01, "follow_up_seconds": 0.05}
    await cluster.start("restart_crashloop", rbac=rbac, params={"restart-crashloop": params})
    outcome = await cluster.fire(crash(pod, deployment="api"))
    if outcome.run.state != "acted":
        return False, str(outcome.run.error)
    await cluster.emu.wait_for(lambda: len(cluster.emu.pods("shop", "app=api")) == 2)
    await _due(cluster)
    outcome = await cluster.outcome(outcome.episode.id)
    reasons = [e.reason for e in outcome.escalations]
    return any("still crash-loops" in r for r in reasons), str(reasons)


async def scale_the_deployment(cluster: Cluster, rbac: Manifests) -> tuple[bool, str]:
    cluster.emu.add_deployment("shop", "consumer", replicas=2)
    await cluster.start("scale_on_lag", rbac=rbac, params={"scale-on-lag": {"partitions": 12}})
    outcome = await cluster.fire(lag())
    return cluster.replicas("consumer") == 4, str(outcome.run.error)


async def scale_through_the_hpa(cluster: Cluster, rbac: Manifests) -> tuple[bool, str]:
    cluster.emu.add_deployment("shop", "consumer", replicas=2)
    cluster.emu.add_hpa("shop", "consumer", min_replicas=2, max_replicas=10)
    await cluster.start("scale_on_lag", rbac=rbac, params={"scale-on-lag": {"partitions": 12}})
    outcome = await cluster.fire(lag())
    hpa = cluster.emu.get("autoscaling/v2", "horizontalpodautoscalers", "shop", "consumer")
    return hpa["spec"]["minReplicas"] == 4, str(outcome.run.error)


async def scale_through_keda(cluster: Cluster, rbac: Manifests) -> tuple[bool, str]:
    cluster.emu.add_deployment("shop", "consumer", replicas=2)
    cluster.emu.add_object("keda.sh/v1alpha1", "scaledobjects", copy.deepcopy(SCALED_OBJECT))
    await cluster.start("scale_on_lag", rbac=rbac, params={"scale-on-lag": {"partitions": 12}})
    outcome = await cluster.fire(lag())
    scaled = cluster.emu.get("keda.sh/v1alpha1", "scaledobjects", "shop", "consumer-so")
    paused = scaled["metadata"].get("annotations", {}).get("autoscaling.keda.sh/paused-replicas")
    return paused == "4", str(outcome.run.error)


def _conflict_once(cluster: Cluster, path: str) -> None:
    """The next PATCH of `path` meets a 409, so the client re-reads the object before
    re-applying the change (its precondition checked on what it read)."""
    cluster.emu.faults.add(path_regex=f"^{path}$", method="PATCH", status=409, times=1)


async def scale_after_a_conflict(cluster: Cluster, rbac: Manifests) -> tuple[bool, str]:
    cluster.emu.add_deployment("shop", "consumer", replicas=2)
    _conflict_once(cluster, "/apis/apps/v1/namespaces/shop/deployments/consumer/scale")
    return await _scaled(cluster, rbac, lambda: cluster.replicas("consumer") == 4)


async def hpa_after_a_conflict(cluster: Cluster, rbac: Manifests) -> tuple[bool, str]:
    cluster.emu.add_deployment("shop", "consumer", replicas=2)
    cluster.emu.add_hpa("shop", "consumer", min_replicas=2, max_replicas=10)
    _conflict_once(
        cluster, "/apis/autoscaling/v2/namespaces/shop/horizontalpodautoscalers/consumer"
    )

    def raised() -> bool:
        hpa = cluster.emu.get("autoscaling/v2", "horizontalpodautoscalers", "shop", "consumer")
        return bool(hpa["spec"]["minReplicas"] == 4)

    return await _scaled(cluster, rbac, raised)


async def keda_after_a_conflict(cluster: Cluster, rbac: Manifests) -> tuple[bool, str]:
    cluster.emu.add_deployment("shop", "consumer", replicas=2)
    cluster.emu.add_object("keda.sh/v1alpha1", "scaledobjects", copy.deepcopy(SCALED_OBJECT))
    _conflict_once(cluster, "/apis/keda.sh/v1alpha1/namespaces/shop/scaledobjects/consumer-so")

    def paused() -> bool:
        scaled = cluster.emu.get("keda.sh/v1alpha1", "scaledobjects", "shop", "consumer-so")
        notes = scaled["metadata"].get("annotations") or {}
        return notes.get("autoscaling.keda.sh/paused-replicas") == "4"

    return await _scaled(cluster, rbac, paused)


async def _scaled(cluster: Cluster, rbac: Manifests, done: Callable[[], bool]) -> tuple[bool, str]:
    await cluster.start("scale_on_lag", rbac=rbac, params={"scale-on-lag": {"partitions": 12}})
    outcome = await cluster.fire(lag())
    conflicted = any(r.status == 409 for r in cluster.emu.requests)
    return conflicted and done(), str(outcome.run.error)


async def statefulset_rolling_restart(cluster: Cluster, rbac: Manifests) -> tuple[bool, str]:
    cluster.emu.add_statefulset("shop", "redis", replicas=2, image="redis:7")
    await cluster.emu.wait_for(
        lambda: sum(_ready(p) for p in cluster.emu.pods("shop", "app=redis")) == 2
    )
    before = {p["metadata"]["uid"] for p in cluster.emu.pods("shop", "app=redis")}
    guards = {"blast_radius": {"max_pods_per_episode": 2}}
    await cluster.start("statefulset_rolling_restart", rbac=rbac, guards=guards)
    outcome = await cluster.fire(labels("RedisCacheDown", statefulset="redis"))
    after = {p["metadata"]["uid"] for p in cluster.emu.pods("shop", "app=redis")}
    return outcome.run.state == "acted" and not before & after, str(outcome.run.error)


def _ready(pod: dict[str, Any]) -> bool:
    conditions = pod["status"].get("conditions") or []
    return any(c["type"] == "Ready" and c["status"] == "True" for c in conditions)


async def _due(cluster: Cluster) -> None:
    """Run the follow-up once its delay has passed on the daemon's clock."""
    cluster.clock.advance(0.05)
    assert await cluster.run_timers() == 1, "the follow-up did not come due"


SCENARIOS: dict[str, Scenario] = {
    "restart_on_down": restart_on_down,
    "crashloop_evict_then_follow_up": crashloop_evict_then_follow_up,
    "scale_the_deployment": scale_the_deployment,
    "scale_through_the_hpa": scale_through_the_hpa,
    "scale_through_keda": scale_through_keda,
    "scale_after_a_conflict": scale_after_a_conflict,
    "hpa_after_a_conflict": hpa_after_a_conflict,
    "keda_after_a_conflict": keda_after_a_conflict,
    "statefulset_rolling_restart": statefulset_rolling_restart,
}

# For each rule the shipped ClusterRole grants: a scenario that fails without it.
NEEDED_BY: dict[Rule, str] = {
    Rule("", "pods", "get"): "crashloop_evict_then_follow_up",
    Rule("", "pods", "list"): "crashloop_evict_then_follow_up",
    Rule("", "pods/eviction", "create"): "crashloop_evict_then_follow_up",
    Rule("apps", "deployments", "get"): "restart_on_down",
    Rule("apps", "deployments", "patch"): "restart_on_down",
    Rule("apps", "deployments/scale", "patch"): "scale_the_deployment",
    Rule("apps", "deployments/scale", "get"): "scale_after_a_conflict",
    Rule("apps", "replicasets", "get"): "crashloop_evict_then_follow_up",
    Rule("apps", "replicasets", "list"): "restart_on_down",
    Rule("apps", "statefulsets", "get"): "statefulset_rolling_restart",
    Rule("autoscaling", "horizontalpodautoscalers", "list"): "scale_the_deployment",
    Rule("autoscaling", "horizontalpodautoscalers", "patch"): "scale_through_the_hpa",
    Rule("autoscaling", "horizontalpodautoscalers", "get"): "hpa_after_a_conflict",
    Rule("keda.sh", "scaledobjects", "list"): "scale_the_deployment",
    Rule("keda.sh", "scaledobjects", "patch"): "scale_through_keda",
    Rule("keda.sh", "scaledobjects", "get"): "keda_after_a_conflict",
}


def granted(manifests: Manifests) -> set[Rule]:
    """The shipped roles' rules, one verb on one resource each."""
    return {
        Rule(group, resource, verb)
        for obj in manifests
        if obj["kind"] in ("ClusterRole", "Role")
        for rule in obj["rules"]
        for group in rule["apiGroups"]
        for resource in rule["resources"]
        for verb in rule["verbs"]
    }


def without(manifests: Manifests, removed: Rule) -> Manifests:
    """The manifests with one verb on one resource taken out of every role."""
    result = copy.deepcopy(manifests)
    for obj in result:
        if obj["kind"] not in ("ClusterRole", "Role"):
            continue
        rules = []
        for rule in obj["rules"]:
            for group in rule["apiGroups"]:
                for resource in rule["resources"]:
                    verbs = [v for v in rule["verbs"] if Rule(group, resource, v) != removed]
                    if verbs:
                        rules.append(
                            {"apiGroups": [group], "resources": [resource], "verbs": verbs}
                        )
        obj["rules"] = rules
    return result


def test_every_granted_rule_names_a_scenario_that_needs_it() -> None:
    assert granted(shipped_rbac()) == set(NEEDED_BY)
    assert set(NEEDED_BY.values()) <= set(SCENARIOS)


@pytest.mark.parametrize("name", sorted(SCENARIOS))
async def test_each_scenario_passes_with_exactly_the_shipped_rules(
    cluster: Cluster, name: str
) -> None:
    ok, detail = await SCENARIOS[name](cluster, shipped_rbac())

    assert ok, detail
    decisions = cluster.emu.rbac.decisions
    assert decisions, "the daemon's requests were not authorized by RBAC at all"
    assert [d for d, allowed in decisions if not allowed] == []


@pytest.mark.parametrize("removed", sorted(NEEDED_BY), ids=str)
async def test_removing_any_rule_fails_a_scenario(cluster: Cluster, removed: Rule) -> None:
    ok, detail = await SCENARIOS[NEEDED_BY[removed]](cluster, without(shipped_rbac(), removed))

    assert not ok, f"{NEEDED_BY[removed]} still works without {removed}"
    denied = [d for d, allowed in cluster.emu.rbac.decisions if not allowed]
    assert denied, detail
    assert all(
        (d.group, d.full_resource, d.verb) == (removed.group, removed.resource, removed.verb)
        for d in denied
    )
    # Each denial matched only the removed rule: a shipped rule would have allowed it.
    assert all(
        any(rule_allows(r, d) for o in shipped_rbac() for r in o.get("rules") or []) for d in denied
    )
