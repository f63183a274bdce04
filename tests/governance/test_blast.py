"""Blast radius: namespaces, "zero does not mean all", replica and step caps, pods per episode,
sessions per run. Each test crafts alerts or changes that try to reach too far."""

from __future__ import annotations

from typing import Any

import pytest

from remediator.playbook import (
    PER_REPLICA,
    Action,
    Budget,
    Registry,
    Target,
    playbook,
    targets,
)
from remediator.playbook.changes import PODS, REPLICAS, SESSIONS, WORKLOAD_REPLICAS
from tests.conftest import Daemon, MakeDaemon
from tests.governance.helpers import (
    World,
    auto,
    firing,
    labels,
    post_and_settle,
    refusals,
    registry_with,
    runs,
)


async def out_of_scope(daemon: Daemon) -> list[str]:
    """The reasons of the alerts refused as out of scope before any run."""
    return [
        d.reason
        for e in await daemon.engine.store.list_episodes()
        for d in await daemon.engine.store.decisions_for(e.id)
        if d.kind == "refused" and d.reason.startswith("out_of_scope: ")
    ]


def blast(**settings: Any) -> dict[str, Any]:
    return auto(guards={"blast_radius": settings})


async def test_kube_system_is_denied_by_default(make_daemon: MakeDaemon) -> None:
    world = World()
    daemon = await make_daemon(registry_with(world), config=auto())
    await post_and_settle(daemon, firing(labels("coredns", namespace="kube-system")))
    assert world.calls == [] and await runs(daemon) == []
    assert await out_of_scope(daemon) == [
        "out_of_scope: Deployment/kube-system/coredns: namespace 'kube-system' is denied"
    ]


async def test_crafted_labels_cannot_reach_outside_the_allow_list(make_daemon: MakeDaemon) -> None:
    world = World()
    daemon = await make_daemon(
        registry_with(world),
        config=blast(allow_namespaces=["shop", "team-*"], deny_namespaces=["team-secret"]),
    )
    alerts = [
        labels("orders", namespace="shop"),
        labels("api", namespace="team-a"),
        labels("vault", namespace="team-secret"),  # allowed by the wildcard, denied explicitly
        labels("x", namespace="default"),
        labels("y", namespace="kube-system"),  # the configured deny list replaced the default
    ]
    await post_and_settle(daemon, firing(*alerts))
    assert sorted(world.targets()) == ["Deployment/shop/orders", "Deployment/team-a/api"]
    # Refused when the target is resolved: no run, nothing read or changed there.
    assert sorted(await out_of_scope(daemon)) == [
        "out_of_scope: Deployment/default/x: namespace 'default' is not in the allow list",
        "out_of_scope: Deployment/kube-system/y: namespace 'kube-system' is not in the allow list",
        "out_of_scope: Deployment/team-secret/vault: namespace 'team-secret' is denied",
    ]
    assert len(await runs(daemon)) == 2 and await refusals(daemon) == []


async def test_the_touched_object_namespace_is_checked_too(make_daemon: MakeDaemon) -> None:
    """Defence in depth: the change-time check sees every object an action touches, also
    one found through an in-scope target."""
    world = World()
    # A (buggy) playbook that touches an object in another namespace than its target.
    registry = registry_with(world, touch=lambda t: [Target("Pod", "dns", "kube-system")])
    daemon = await make_daemon(registry, config=auto())
    await post_and_settle(daemon, firing(labels("orders")))
    assert world.calls == []
    assert await refusals(daemon) == ["blast_radius: namespace 'kube-system' is denied"]


async def test_an_action_must_name_one_object(make_daemon: MakeDaemon) -> None:
    world = World()
    registry = registry_with(world, touch=lambda t: [Target("Pod", "", t.namespace)])
    daemon = await make_daemon(registry, config=auto())
    await post_and_settle(daemon, firing(labels("orders")))
    assert world.calls == []
    assert await refusals(daemon) == [
        "blast_radius: Pod with an empty name: zero does not mean all"
    ]


@pytest.mark.parametrize(
    ("change", "refusal"),
    [
        ({REPLICAS: [3, 5]}, None),
        ({REPLICAS: [9, 11]}, "11 replicas exceeds the cap of 10"),
        ({REPLICAS: [3, 7]}, "scaling 3 -> 7 exceeds the step cap of 3"),
        ({REPLICAS: [8, 4]}, "scaling 8 -> 4 exceeds the step cap of 3"),
        ({REPLICAS: [1, 0]}, "0 replicas is below the floor of 1"),
        ({REPLICAS: [3, "all"]}, "change 'replicas' must be [before, after] counts"),
        ({REPLICAS: 5}, "change 'replicas' must be [before, after] counts"),
        ({SESSIONS: 0}, "sessions = 0: an empty or unbounded selection"),
        ({PODS: -1}, "pods = -1: an empty or unbounded selection"),
        ({SESSIONS: 2.5}, "change 'sessions' must be a whole number"),
        # Two actions of 5 sessions each in one run; the cap is per run.
        ({SESSIONS: 5}, "10 database sessions in one run exceeds 6"),
    ],
)
async def test_change_caps(
    make_daemon: MakeDaemon, change: dict[str, Any], refusal: str | None
) -> None:
    world = World()
    two_actions = SESSIONS in change and change[SESSIONS] == 5
    registry = registry_with(
        world,
        change=lambda t: change,
        touch=(lambda t: [t, t]) if two_actions else None,
    )
    daemon = await make_daemon(
        registry, config=blast(max_replicas=10, max_scale_step=3, max_sessions_per_run=6)
    )
    await post_and_settle(daemon, firing(labels("orders")))
    reasons = await refusals(daemon)
    if refusal is None:
        assert reasons == [] and len(world.calls) == 1
    else:
        assert len(reasons) == 1 and refusal in reasons[0], reasons
        assert reasons[0].startswith("blast_radius: ")
        assert len(world.calls) == (1 if two_actions else 0)


async def test_one_pod_per_workload_per_episode(make_daemon: MakeDaemon) -> None:
    world = World()
    pods = lambda t: [Target("Pod", f"{t.name}-{i}", t.namespace) for i in (1, 2)]  # noqa: E731
    registry = registry_with(
        world, verb="create", resource="pods/eviction", touch=pods, change=lambda t: {PODS: 1}
    )
    daemon = await make_daemon(registry, config=auto())
    await post_and_settle(daemon, firing(labels("orders")))
    assert world.targets() == ["Pod/shop/orders-1"]
    assert await refusals(daemon) == [
        "blast_radius: 1 pod(s) of Deployment/shop/orders already restarted in this episode; "
        "1 more exceeds 1 per episode (the playbook's budget: 1 per episode; ceiling "
        "guards.blast_radius.max_pods_per_episode = 10)"
    ]


def evicting(world: World, pods: int, budget: Budget, replicas: int | None = None) -> Registry:
    """A playbook evicting `pods` pods of its Deployment, one action each."""
    change: dict[str, Any] = (
        {PODS: 1} if replicas is None else {PODS: 1, WORKLOAD_REPLICAS: replicas}
    )
    return registry_with(
        world,
        verb="create",
        resource="pods/eviction",
        touch=lambda t: [Target("Pod", f"{t.name}-{i}", t.namespace) for i in range(pods)],
        change=lambda t: change,
        budget=budget,
    )


@pytest.mark.parametrize(
    ("budget", "replicas", "ceiling", "evicted"),
    [
        (Budget(pods=3), None, 10, 3),  # the declared budget holds
        (Budget(pods=3), None, 2, 2),  # the ceiling holds whatever is declared
        (Budget(pods=PER_REPLICA), 4, 10, 4),  # one per replica the action says
        (Budget(pods=PER_REPLICA), 4, 3, 3),  # under the ceiling
        (Budget(pods=PER_REPLICA), None, 10, 1),  # replicas unsaid: no wider than one
    ],
)
async def test_a_playbook_takes_its_declared_pod_budget_under_the_ceiling(
    make_daemon: MakeDaemon, budget: Budget, replicas: int | None, ceiling: int, evicted: int
) -> None:
    world = World()
    daemon = await make_daemon(
        evicting(world, 5, budget, replicas), config=blast(max_pods_per_episode=ceiling)
    )
    await post_and_settle(daemon, firing(labels("orders")))
    assert world.targets() == [f"Pod/shop/orders-{i}" for i in range(evicted)]
    [refusal] = await refusals(daemon)  # the first action past it; the playbook stops there
    assert f"{evicted} pod(s) of Deployment/shop/orders already restarted" in refusal


async def test_allowance_is_what_is_left_of_the_ceiling(make_daemon: MakeDaemon) -> None:
    """What a playbook is told before acting: the rest of its budget under the ceiling."""
    seen: list[int | None] = []
    registry = Registry()

    @playbook(
        match='alertname="KafkaLagHigh"',
        target=targets.deployment(),
        registry=registry,
        budget=Budget(pods=4),
        name="plan",
    )
    async def plan(*, run: Any, target: Target, **_: Any) -> None:
        seen.append(await run.allowance(SESSIONS))
        seen.append(await run.allowance(PODS))
        pod = Target("Pod", f"{target.name}-0", target.namespace)
        await run.act(Action("create", "pods/eviction", pod, "evict", change={PODS: 1}), noop)
        seen.append(await run.allowance(PODS))
        seen.append(await run.allowance("replicas"))

    daemon = await make_daemon(
        registry, config=blast(max_pods_per_episode=3, max_sessions_per_run=7)
    )
    await post_and_settle(daemon, firing(labels("orders")))
    assert seen == [7, 3, 2, None]


async def noop() -> None:
    return None


async def test_several_pods_in_one_action_are_refused(make_daemon: MakeDaemon) -> None:
    world = World()
    registry = registry_with(world, change=lambda t: {PODS: 3})
    daemon = await make_daemon(registry, config=auto())
    await post_and_settle(daemon, firing(labels("orders")))
    assert world.calls == []
    [reason] = await refusals(daemon)
    assert "3 more exceeds 1 per episode" in reason


async def test_shadow_mode_shows_the_refusal_the_real_run_would_get(
    make_daemon: MakeDaemon,
) -> None:
    world = World()
    pods = lambda t: [Target("Pod", f"{t.name}-{i}", t.namespace) for i in (1, 2)]  # noqa: E731
    registry = registry_with(world, touch=pods, change=lambda t: {PODS: 1})
    daemon = await make_daemon(registry, config={"mode": "shadow"})
    await post_and_settle(daemon, firing(labels("orders")))
    assert world.calls == []
    [reason] = await refusals(daemon)
    assert "1 pod(s) of Deployment/shop/orders already restarted" in reason
    # Recorded, not delivered: a shadow run would not have changed anything anyway.
    [episode] = await daemon.engine.store.list_episodes()
    [escalation] = await daemon.engine.store.escalations_for(episode.id)
    assert escalation.details["channels"] == []
    assert escalation.details["not_delivered"].startswith("shadow mode")
