"""Blast radius: namespaces, "zero does not mean all", replica and step caps, pods per episode,
sessions per run. Each test crafts alerts or changes that try to reach too far."""

from __future__ import annotations

from typing import Any

import pytest

from remediator.playbook import Target
from remediator.playbook.changes import PODS, REPLICAS, SESSIONS
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
        "1 more exceeds 1 per episode"
    ]


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
