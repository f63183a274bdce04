"""A global cap on real actions in flight; dry runs never hold or need a slot."""

from __future__ import annotations

import asyncio

from tests.conftest import MakeDaemon
from tests.governance.helpers import (
    World,
    add_playbook,
    auto,
    eventually,
    firing,
    labels,
    post_and_settle,
    refusals,
    registry_with,
    runs,
)


async def test_cap_on_actions_in_flight(make_daemon: MakeDaemon) -> None:
    world = World(gate=asyncio.Event())
    daemon = await make_daemon(
        registry_with(world), config=auto(guards={"concurrency": {"max_in_flight": 2}})
    )
    await daemon.post(firing(labels("a"), labels("b")))

    async def both_held() -> bool:
        return world.waiting == 2

    async def refused() -> bool:
        return bool(await refusals(daemon))

    await eventually(both_held)
    await daemon.post(firing(labels("c")))
    await eventually(refused)
    assert world.gate is not None
    world.gate.set()
    await daemon.settle()
    assert sorted(world.targets()) == ["Deployment/shop/a", "Deployment/shop/b"]
    assert await refusals(daemon) == ["concurrency: 2 actions already in flight (cap 2)"]
    # The slots were released: actions pass again.
    await post_and_settle(daemon, firing(labels("d")))
    assert world.targets()[-1] == "Deployment/shop/d"


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
