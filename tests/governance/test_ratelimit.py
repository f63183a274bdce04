"""Rate limits and cool-downs: per target (and per episode), per playbook, for all playbooks."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from remediator.alertmanager import Alert
from remediator.playbook import Registry
from remediator.store.records import WorkItem, WorkKind
from remediator.store.sqlite import SQLiteStore
from remediator.store.sqlite.runs import acting_runs_query
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
)

ORDERS = "Deployment/shop/orders"


def limits(**rate_limits: Any) -> dict[str, Any]:
    return auto(guards={"rate_limits": rate_limits})


@BOTH_BACKENDS
async def test_per_target_default_is_three_acting_runs_per_hour(make_daemon: MakeDaemon) -> None:
    world = World()
    clock = ManualClock()
    daemon = await make_daemon(registry_with(world), config=auto(), clock=clock)
    for episode in range(4):  # four episodes of the same alert: new startsAt each time
        await post_and_settle(daemon, firing(labels("orders"), minutes=episode))
        clock.advance(60)
    assert world.targets() == [ORDERS] * 3
    assert await refusals(daemon) == [
        f"rate_limit: 3 acting run(s) on target {ORDERS} in the last 3600 s (limit 3)"
    ]
    # Other targets are not affected.
    await post_and_settle(daemon, firing(labels("billing")))
    assert world.targets()[-1] == "Deployment/shop/billing"
    # The window slides: once the first run is more than an hour old, one more fits.
    clock.advance(3600 - 4 * 60 + 1)
    await post_and_settle(daemon, firing(labels("orders"), minutes=4))
    assert world.targets()[-1] == ORDERS and len(world.targets()) == 5


async def test_a_different_playbook_cannot_act_on_the_same_target_in_the_same_episode(
    make_daemon: MakeDaemon,
) -> None:
    world = World()
    registry = registry_with(world, name="scale")
    add_playbook(registry, world, name="restart", match='alertname="Never"')
    daemon = await make_daemon(registry, config=auto())
    await post_and_settle(daemon, firing(labels("orders")))
    assert world.calls == [("scale", ORDERS)]
    # Running a second playbook by hand for the same episode (as an operator or a second
    # matching path could): the per-episode limit holds across playbooks.
    engine = daemon.engine
    [episode] = await engine.store.list_episodes()
    spec = engine.registry.get("restart")
    assert spec is not None
    alert = Alert.model_validate(firing(labels("orders"))["alerts"][0])
    item = WorkItem(WorkKind.FIRING, episode.id, alert)
    target = spec.target(episode.labels, engine.pipeline.scope)
    state = await engine.pipeline.run_playbook(spec, target, episode, item, engine.log)
    assert state == "refused"
    assert world.calls == [("scale", ORDERS)]
    assert await refusals(daemon) == [
        f"rate_limit: {ORDERS} was already acted on in this episode (limit 1 per episode)"
    ]


@BOTH_BACKENDS
async def test_per_playbook_limit_and_override(make_daemon: MakeDaemon) -> None:
    world = World()
    registry = registry_with(world, name="scale")
    add_playbook(registry, world, name="restart", match='alertname="CrashLooping"')
    daemon = await make_daemon(
        registry,
        config=limits(
            per_playbook={"max_actions": 5},
            playbooks={"scale": {"max_actions": 2, "window_seconds": 600}},
        ),
    )
    await post_and_settle(daemon, firing(labels("a"), labels("b"), labels("c")))
    crash = [{**labels(n), "alertname": "CrashLooping"} for n in ("d", "e", "f")]
    await post_and_settle(daemon, firing(*crash))
    scale = [k for p, k in world.calls if p == "scale"]
    restart = [k for p, k in world.calls if p == "restart"]
    assert len(scale) == 2 and len(restart) == 3
    assert await refusals(daemon) == [
        "rate_limit: 2 acting run(s) on playbook scale in the last 600 s (limit 2)"
    ]


async def test_all_playbooks_limit(make_daemon: MakeDaemon) -> None:
    world = World()
    registry = registry_with(world, name="scale")
    add_playbook(registry, world, name="restart", match='alertname="CrashLooping"')
    daemon = await make_daemon(registry, config=limits(all_playbooks={"max_actions": 3}))
    await post_and_settle(daemon, firing(labels("a"), labels("b")))
    crash = [{**labels(n), "alertname": "CrashLooping"} for n in ("c", "d")]
    await post_and_settle(daemon, firing(*crash))
    assert len(world.calls) == 3
    assert await refusals(daemon) == [
        "rate_limit: 3 acting run(s) on all playbooks in the last 3600 s (limit 3)"
    ]


@BOTH_BACKENDS
async def test_target_cooldown(make_daemon: MakeDaemon) -> None:
    world = World()
    clock = ManualClock()
    daemon = await make_daemon(
        registry_with(world),
        config=limits(target_cooldown_seconds=600, per_target={"max_actions": 10}),
        clock=clock,
    )
    await post_and_settle(daemon, firing(labels("orders")))
    clock.advance(599)
    await post_and_settle(daemon, firing(labels("orders"), minutes=1))
    assert world.targets() == [ORDERS]
    [reason] = await refusals(daemon)
    assert reason.startswith(f"rate_limit: target {ORDERS} is cooling down: last acted at ")
    assert reason.endswith("cool-down 600 s")
    clock.advance(1)  # cooled down
    await post_and_settle(daemon, firing(labels("orders"), minutes=2))
    assert world.targets() == [ORDERS, ORDERS]


async def test_playbook_cooldown(make_daemon: MakeDaemon) -> None:
    world = World()
    daemon = await make_daemon(registry_with(world), config=limits(playbook_cooldown_seconds=600))
    await post_and_settle(daemon, firing(labels("a")))
    await post_and_settle(daemon, firing(labels("b")))
    assert world.targets() == ["Deployment/shop/a"]
    [reason] = await refusals(daemon)
    assert reason.startswith("rate_limit: playbook scale is cooling down")


@BOTH_BACKENDS
async def test_shadow_runs_and_refusals_never_count(make_daemon: MakeDaemon) -> None:
    world = World()
    registry: Registry = registry_with(world)
    shadow = await make_daemon(registry, config={"mode": "shadow"})
    for episode in range(5):
        await post_and_settle(shadow, firing(labels("orders"), minutes=episode))
    assert world.calls == [] and await refusals(shadow) == []
    # The same record, now in auto mode: the five dry runs did not use up the budget.
    await shadow.client.close()
    daemon = await make_daemon(registry, config=auto())
    await post_and_settle(daemon, firing(labels("orders"), minutes=10))
    assert world.targets() == [ORDERS]


async def test_the_ledger_is_read_through_an_index_not_a_scan_of_every_action(
    tmp_path: Path,
) -> None:
    """The ledger is read before every action; a full scan of `actions` grows with retention
    (and a storm's thousands of refusals) and made each run cost milliseconds."""
    store = SQLiteStore(tmp_path / "state.db")
    await store.open()
    try:
        since = datetime.now(UTC) - timedelta(hours=1)
        for args in (
            (since, "Deployment/shop/orders", None, None, 7),
            (since, None, "restart", None, 7),
            (since, None, None, None, 7),
            (None, "Deployment/shop/orders", None, "ep-1", 7),
        ):
            sql, params = acting_runs_query(*args)
            async with store.database.connection.execute(
                "EXPLAIN QUERY PLAN " + sql, params
            ) as cursor:
                plan = [row[3] for row in await cursor.fetchall()]
            assert not [step for step in plan if step.startswith("SCAN")], (args, plan)
    finally:
        await store.close()
