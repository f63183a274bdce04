"""The storm breaker: opens at its threshold, refuses everything while open, pages once, closes
by an operator or by its expiry, and does not re-open on the evidence it already acted on."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from remediator.store.records import BreakerRecord
from remediator_testing.clock import ManualClock
from remediator_testing.fakes import FakePagerDuty
from tests.conftest import BOTH_BACKENDS, Daemon, MakeDaemon
from tests.governance.helpers import (
    World,
    auto,
    delivered,
    firing,
    held,
    labels,
    paging,
    post_and_settle,
    refusals,
    registry_with,
    resolved,
    runs,
)

pytestmark = BOTH_BACKENDS


def storm(pagerduty: FakePagerDuty, **settings: Any) -> dict[str, Any]:
    return auto(
        guards={"storm": {"distinct_targets": 3, **settings}},
        escalation=paging(pagerduty.url),
    )


async def trip(daemon: Daemon, world: World) -> BreakerRecord:
    for name in "abcd":
        await post_and_settle(daemon, firing(labels(name)))
    breaker = await daemon.engine.governance.breaker()
    assert breaker is not None and len(world.calls) == 3
    return breaker


async def test_opens_above_the_threshold_holds_everything_and_pages_once(
    make_daemon: MakeDaemon, pagerduty: FakePagerDuty
) -> None:
    world = World()
    daemon = await make_daemon(registry_with(world), config=storm(pagerduty))
    for name in ("a", "b", "c"):
        await post_and_settle(daemon, firing(labels(name)))
        await post_and_settle(daemon, firing(labels(name)))  # a re-send is not a new target
    assert len(world.calls) == 3
    assert await daemon.engine.governance.breaker() is None
    # The fourth distinct target within the window opens it, and is itself held.
    await post_and_settle(daemon, firing(labels("d")))
    breaker = await daemon.engine.governance.breaker()
    assert breaker is not None and breaker.reason.startswith("4 distinct targets alerting")
    for name in ("e", "f", "a"):  # new targets, and an old one alerting again
        await post_and_settle(daemon, firing(labels(name), minutes=1))
    assert len(world.calls) == 3
    assert await held(daemon) == [f"Deployment/shop/{n}" for n in "defa"]
    # Held alerts cost no run, no action, no escalation each: the one page covers them.
    assert len(await runs(daemon)) == 3 and await refusals(daemon) == []
    assert daemon.engine.metrics.breaker_open._value.get() == 1
    [page] = await pagerduty.wait_for(1)
    assert page["event_action"] == "trigger" and page["dedup_key"] == breaker.page_key
    assert page["payload"]["severity"] == "critical"
    assert "storm breaker open" in page["payload"]["summary"]
    for episode in await daemon.engine.store.list_episodes():
        assert await daemon.engine.store.escalations_for(episode.id) == []
    # A held alert resolving is closed at digest: no work, no report, no second page.
    await post_and_settle(daemon, resolved(labels("d")))
    episode = next(e for e in await daemon.engine.store.list_episodes() if e.labels == labels("d"))
    assert episode.status == "resolved"
    assert [d.kind for d in await daemon.engine.store.decisions_for(episode.id)] == [
        "storm_held",
        "resolved",
    ]
    await delivered(daemon)  # nothing else is on its way to PagerDuty
    assert len(pagerduty.events) == 1 and pagerduty.invalid == []


async def test_operator_closes_it_and_the_page_resolves(
    make_daemon: MakeDaemon, pagerduty: FakePagerDuty
) -> None:
    world = World()
    daemon = await make_daemon(registry_with(world), config=storm(pagerduty))
    await trip(daemon, world)
    gov = daemon.engine.governance
    closed = await gov.close_breaker(who="ops", reason="node replaced")
    assert closed.closed_by == "ops"
    assert await gov.breaker() is None
    assert daemon.engine.metrics.breaker_open._value.get() == 0
    events = await pagerduty.wait_for(2)
    assert [e["event_action"] for e in events] == ["trigger", "resolve"]
    assert events[1]["dedup_key"] == events[0]["dedup_key"] == closed.page_key
    # The evidence from before the close does not re-open it.
    await post_and_settle(daemon, firing(labels("e")))
    assert world.targets()[-1] == "Deployment/shop/e"
    assert [e.action for e in await gov.audit()] == ["breaker_close", "breaker_open"]


async def test_expiry_closes_it(make_daemon: MakeDaemon, pagerduty: FakePagerDuty) -> None:
    world = World()
    clock = ManualClock()
    config = storm(pagerduty, expiry_seconds=1800)
    daemon = await make_daemon(registry_with(world), config=config, clock=clock)
    breaker = await trip(daemon, world)
    assert breaker.expires_at == clock.now() + timedelta(seconds=1800)
    clock.advance(1799)
    assert await daemon.engine.governance.breaker() is not None
    # The next check after the expiry closes it (no operator, no other call in between).
    clock.advance(1)
    await post_and_settle(daemon, firing(labels("e")))
    assert world.targets()[-1] == "Deployment/shop/e"
    [record] = [e for e in await daemon.engine.governance.audit() if e.action == "breaker_close"]
    assert record.who == "expiry"
    assert [e["event_action"] for e in await pagerduty.wait_for(2)] == ["trigger", "resolve"]


async def test_share_of_known_workloads(make_daemon: MakeDaemon) -> None:
    world = World()
    config = auto(
        guards={
            "storm": {
                "distinct_targets": 100,
                "window_seconds": 300,
                "share_of_known_workloads": 0.5,
                "min_targets_for_share": 2,
            }
        }
    )
    clock = ManualClock()
    daemon = await make_daemon(registry_with(world), config=config, clock=clock)
    for name in "abcd":  # four known targets, one at a time, outside each other's window
        await post_and_settle(daemon, firing(labels(name)))
        clock.advance(301)
    assert len(world.calls) == 4
    for name in "ab":  # 1 and then 2 of 4 known targets: not more than half
        await post_and_settle(daemon, firing(labels(name), minutes=5))
    assert len(world.calls) == 6
    await post_and_settle(daemon, firing(labels("c"), minutes=5))
    breaker = await daemon.engine.governance.breaker()
    assert breaker is not None and "3 of 4 known targets" in breaker.reason
    assert len(world.calls) == 6
