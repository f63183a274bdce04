"""A global cap on real actions in flight: past it an action waits for a slot (no refusal, no
page); dry runs never hold or need a slot."""

from __future__ import annotations

import asyncio

from remediator.engine.guards import GuardChain
from remediator_testing.fakes import FakePagerDuty
from tests.conftest import BOTH_BACKENDS, MakeDaemon
from tests.governance.helpers import (
    World,
    add_playbook,
    auto,
    eventually,
    firing,
    labels,
    paging,
    post_and_settle,
    refusals,
    registry_with,
    runs,
)


@BOTH_BACKENDS
async def test_a_full_cap_defers_the_action_instead_of_refusing_it(
    make_daemon: MakeDaemon, pagerduty: FakePagerDuty
) -> None:
    world = World(gate=asyncio.Event())
    config = auto(guards={"concurrency": {"max_in_flight": 2}}, escalation=paging(pagerduty.url))
    daemon = await make_daemon(registry_with(world), config=config)
    await daemon.post(firing(labels("a"), labels("b")))

    async def both_held() -> bool:
        return world.waiting == 2

    chain = daemon.engine.pipeline.guards
    assert isinstance(chain, GuardChain)

    async def deferred() -> bool:
        return chain.concurrency.waiting == 1

    await eventually(both_held)
    await daemon.post(firing(labels("c")))
    await eventually(deferred)
    assert world.gate is not None
    world.gate.set()
    await daemon.settle()
    # c waited for a slot and then acted: nothing refused, nobody paged.
    assert sorted(world.targets()) == [f"Deployment/shop/{n}" for n in "abc"]
    assert await refusals(daemon) == []
    assert [r.state for r in await runs(daemon)] == ["acted"] * 3
    assert chain.concurrency.in_flight == 0
    await post_and_settle(daemon, firing(labels("d")))
    assert world.targets()[-1] == "Deployment/shop/d"
    assert pagerduty.events == []


@BOTH_BACKENDS
async def test_dry_runs_pass_while_the_cap_is_full(make_daemon: MakeDaemon) -> None:
    world = World(gate=asyncio.Event())
    registry = registry_with(world, name="scale")
    add_playbook(registry, world, name="restart", match='alertname="CrashLooping"')
    daemon = await make_daemon(
        registry,
        config=auto(
            guards={"concurrency": {"max_in_flight": 1}},
            playbooks={"restart": {"mode": "shadow"}},
        ),
    )
    await daemon.post(firing(labels("a")))

    async def held() -> bool:
        return world.waiting == 1

    await eventually(held)
    crash = [{**labels(n), "alertname": "CrashLooping"} for n in "xyz"]
    await daemon.post(firing(*crash))

    async def three_dry_runs() -> bool:
        return [r.state for r in await runs(daemon)].count("shadow") == 3

    await eventually(three_dry_runs)
    assert world.waiting == 1  # the real action still holds the only slot
    assert await refusals(daemon) == []
    assert world.gate is not None
    world.gate.set()
    await daemon.settle()
    assert world.calls == [("scale", "Deployment/shop/a")]
