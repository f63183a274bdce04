"""Restart in the middle: the rate-limit ledger, kill switches and an open breaker survive."""

from __future__ import annotations

from remediator.store.records import Scope
from remediator_testing.fakes import Failure, FakePagerDuty
from tests.conftest import BOTH_BACKENDS, MakeDaemon
from tests.governance.helpers import (
    World,
    auto,
    firing,
    held,
    labels,
    paging,
    post_and_settle,
    refusals,
    registry_with,
)

pytestmark = BOTH_BACKENDS

CONFIG = auto(
    guards={
        "rate_limits": {"per_target": {"max_actions": 1}},
        "storm": {"distinct_targets": 2},
    }
)


async def test_governance_state_survives_a_restart(make_daemon: MakeDaemon) -> None:
    world = World()
    registry = registry_with(world)
    first = await make_daemon(registry, config=CONFIG)
    await post_and_settle(first, firing(labels("orders")))
    await first.engine.governance.pause(
        Scope.TARGET, "Deployment/shop/held", who="alice", reason="hands off"
    )
    await first.client.close()  # stops the engine; the same state file is opened again below

    second = await make_daemon(registry, config=CONFIG)
    # The ledger: orders already acted within the hour.
    await post_and_settle(second, firing(labels("orders"), minutes=5))
    # The kill switch.
    await post_and_settle(second, firing(labels("held")))
    assert world.targets() == ["Deployment/shop/orders"]
    assert await refusals(second) == [
        "rate_limit: 1 acting run(s) on target Deployment/shop/orders in the last 3600 s (limit 1)",
        "kill_switch: paused (target Deployment/shop/held) by alice: hands off",
    ]
    # Three distinct targets (orders, held, next) within the window: the breaker opens, and
    # holds the alert that opened it.
    await post_and_settle(second, firing(labels("next")))
    assert await held(second) == ["Deployment/shop/next"]
    await second.client.close()

    third = await make_daemon(registry, config=CONFIG)
    assert third.engine.metrics.breaker_open._value.get() == 1
    breaker = await third.engine.governance.breaker()
    assert breaker is not None
    await post_and_settle(third, firing(labels("fresh")))
    assert await held(third) == ["Deployment/shop/next", "Deployment/shop/fresh"]
    assert len(await refusals(third)) == 2  # the two above, nothing new
    assert world.targets() == ["Deployment/shop/orders"]


async def test_queued_escalations_survive_a_restart(
    make_daemon: MakeDaemon, pagerduty: FakePagerDuty
) -> None:
    pagerduty.fail_next(*[Failure(503)] * 1000)  # down for the whole first life
    config = auto(escalation=paging(pagerduty.url))
    first = await make_daemon(registry_with(World()), config=config)
    await post_and_settle(first, firing(labels("a", namespace="kube-system")))
    await pagerduty.wait_for_requests(2)
    await first.client.close()
    assert pagerduty.accepted == []
    pagerduty.recover()
    second = await make_daemon(registry_with(World()), config=config)
    [event] = await pagerduty.wait_for(1)
    [episode] = await second.engine.store.list_episodes()
    assert event["event_action"] == "trigger" and event["dedup_key"] == episode.id
