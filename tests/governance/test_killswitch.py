"""Kill switches at three scopes, checked immediately before every action (DESIGN.md §4)."""

from __future__ import annotations

import asyncio
from datetime import timedelta

import pytest

from remediator.engine.governance.api import GovernanceError
from remediator.playbook import Target
from remediator.store.records import Scope
from remediator_testing.clock import ManualClock
from tests.conftest import BOTH_BACKENDS, MakeDaemon
from tests.governance.helpers import (
    World,
    add_playbook,
    auto,
    firing,
    labels,
    post_and_settle,
    refusals,
    registry_with,
    runs,
)

pytestmark = BOTH_BACKENDS


async def test_global_pause_refuses_every_action_and_escalates(make_daemon: MakeDaemon) -> None:
    world = World()
    daemon = await make_daemon(registry_with(world), config=auto())
    switch = await daemon.engine.governance.pause(
        Scope.GLOBAL, who="alice", reason="maintenance window"
    )
    await post_and_settle(daemon, firing(labels("orders"), labels("billing")))
    assert world.calls == []
    reasons = await refusals(daemon)
    assert len(reasons) == 2
    assert all(
        r.startswith("kill_switch: paused (global) by alice: maintenance window") for r in reasons
    )
    assert {r.state for r in await runs(daemon)} == {"refused"}
    for episode in await daemon.engine.store.list_episodes():
        [escalation] = await daemon.engine.store.escalations_for(episode.id)
        assert escalation.details["guard"] == "kill_switch"
    # Resumed: the next episode acts.
    await daemon.engine.governance.resume(switch.id, who="alice", reason="done")
    await post_and_settle(daemon, firing(labels("orders"), minutes=5))
    assert world.targets() == ["Deployment/shop/orders"]


async def test_playbook_pause_stops_only_that_playbook(make_daemon: MakeDaemon) -> None:
    world = World()
    registry = registry_with(world, name="scale", match='alertname="KafkaLagHigh"')
    add_playbook(registry, world, name="restart", match='alertname="CrashLooping"')
    daemon = await make_daemon(registry, config=auto())
    await daemon.engine.governance.pause(Scope.PLAYBOOK, "scale", who="bob", reason="flapping")
    crash = {**labels("api"), "alertname": "CrashLooping"}
    await post_and_settle(daemon, firing(labels("orders"), crash))
    assert world.calls == [("restart", "Deployment/shop/api")]
    assert await refusals(daemon) == ["kill_switch: paused (playbook scale) by bob: flapping"]


async def test_target_pause_holds_the_workload_and_what_the_run_touches(
    make_daemon: MakeDaemon,
) -> None:
    world = World()
    daemon = await make_daemon(registry_with(world), config=auto())
    await daemon.engine.governance.pause(
        Scope.TARGET, "Deployment/shop/orders", who="carol", reason="investigating"
    )
    await post_and_settle(daemon, firing(labels("orders"), labels("billing")))
    assert world.targets() == ["Deployment/shop/billing"]
    [reason] = await refusals(daemon)
    assert "paused (target Deployment/shop/orders)" in reason


async def test_pause_expires_by_itself(make_daemon: MakeDaemon) -> None:
    world = World()
    clock = ManualClock()
    daemon = await make_daemon(registry_with(world), config=auto(), clock=clock)
    await daemon.engine.governance.pause(
        Scope.GLOBAL, who="dave", reason="an hour", expires_in=timedelta(hours=1)
    )
    await post_and_settle(daemon, firing(labels("orders")))
    assert world.calls == [] and len(await refusals(daemon)) == 1
    clock.advance(3599)
    assert len(await daemon.engine.governance.switches()) == 1
    clock.advance(1)
    assert await daemon.engine.governance.switches() == []
    await post_and_settle(daemon, firing(labels("orders"), minutes=5))
    assert world.targets() == ["Deployment/shop/orders"]


async def test_default_expiry_applies_when_none_is_given(make_daemon: MakeDaemon) -> None:
    daemon = await make_daemon(
        registry_with(World()),
        config=auto(guards={"kill_switch": {"default_expiry_seconds": 60}}),
        clock=ManualClock(),
    )
    switch = await daemon.engine.governance.pause(Scope.GLOBAL, who="erin", reason="default")
    assert switch.expires_at is not None
    assert switch.expires_at - switch.created_at == timedelta(seconds=60)


async def test_pause_checked_before_every_action_not_only_at_run_start(
    make_daemon: MakeDaemon,
) -> None:
    world = World()
    registry = registry_with(
        world,
        touch=lambda t: [t, Target("Pod", "orders-1", t.namespace)],
    )
    daemon = await make_daemon(registry, config=auto())
    world.gate = asyncio.Event()
    status, _ = await daemon.post(firing(labels("orders")))
    assert status == 200
    await asyncio.wait_for(world.started.wait(), 5)  # the first action is in flight
    await daemon.engine.governance.pause(Scope.GLOBAL, who="frank", reason="stop now")
    world.gate.set()
    await daemon.settle()
    assert world.targets() == ["Deployment/shop/orders"]  # the second action never ran
    [reason] = await refusals(daemon)
    assert reason.startswith("kill_switch:")


async def test_mutations_are_validated_and_audited(make_daemon: MakeDaemon) -> None:
    daemon = await make_daemon(registry_with(World()), config=auto())
    gov = daemon.engine.governance
    with pytest.raises(GovernanceError, match="reason"):
        await gov.pause(Scope.GLOBAL, who="x", reason=" ")
    with pytest.raises(GovernanceError, match="no playbook"):
        await gov.pause(Scope.PLAYBOOK, "nope", who="x", reason="typo")
    with pytest.raises(GovernanceError, match="target key"):
        await gov.pause(Scope.TARGET, "orders", who="x", reason="bad key")
    with pytest.raises(GovernanceError, match="unknown scope"):
        await gov.pause("namespace", "shop", who="x", reason="no such scope")
    switch = await gov.pause(Scope.PLAYBOOK, "scale", who="gina", reason="why not")
    await gov.resume(switch.id, who="hank", reason="because")
    with pytest.raises(GovernanceError, match="not active"):
        await gov.resume(switch.id, who="hank", reason="twice")
    log = await gov.audit()
    assert [(e.who, e.action, e.subject, e.reason) for e in log] == [
        ("hank", "resume", "playbook:scale", "because"),
        ("gina", "pause", "playbook:scale", "why not"),
    ]
    [record] = await gov.switches(include_inactive=True)
    assert record.lifted_by == "hank"
