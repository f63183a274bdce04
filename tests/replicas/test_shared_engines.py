"""Two engines on one PostgreSQL database, in one process (each its own replica): operator
state is shared, and an alert delivered to both is acted on once. (Several `remediator serve`
processes, killed and frozen, are tests/ha's.)"""

from __future__ import annotations

import asyncio

import pytest

from remediator.store.records import RunState
from tests.admin.helpers import OPERATOR, READ, admin_config, call
from tests.conftest import MakeDaemon
from tests.governance.helpers import World, auto, eventually, firing, labels, registry_with

pytestmark = [pytest.mark.parametrize("state_backend", ["postgres"]), pytest.mark.servers]


async def test_a_mode_set_through_one_replica_holds_on_the_other(make_daemon: MakeDaemon) -> None:
    world = World()
    a = await make_daemon(registry_with(world), config=auto(**admin_config()))
    b = await make_daemon(registry_with(world), config=auto(**admin_config()))
    assert a.engine.replica != b.engine.replica
    status, _ = await call(
        a,
        "POST",
        "/admin/playbooks/scale/mode",
        token=OPERATOR,
        json={"mode": "shadow", "reason": "careful"},
    )
    assert status == 200
    _, answer = await call(b, "GET", "/admin/playbooks", token=READ)
    [playbook] = answer["playbooks"]
    assert (playbook["mode"], playbook["override"]) == ("shadow", True)
    # And b's next run runs in it: a shadow run changes nothing.
    status, _ = await b.post(firing(labels("orders")))
    assert status == 200

    async def ran() -> bool:
        episodes = await b.engine.store.list_episodes()
        runs = [r for e in episodes for r in await b.engine.store.runs_for(e.id)]
        return bool(runs) and runs[0].state != RunState.RUNNING

    await eventually(ran, within=20)
    [episode] = await b.engine.store.list_episodes()
    [run] = await b.engine.store.runs_for(episode.id)
    assert run.mode == "shadow" and world.calls == []


async def test_an_alert_delivered_to_both_replicas_is_acted_on_once(
    make_daemon: MakeDaemon,
) -> None:
    world = World()
    a = await make_daemon(registry_with(world), config=auto(**admin_config()))
    b = await make_daemon(registry_with(world), config=auto(**admin_config()))
    payload = firing(labels("orders"))
    for daemon in (a, b, a, b):
        status, _ = await daemon.post(payload)
        assert status == 200

    async def acted() -> bool:
        episodes = await a.engine.store.list_episodes()
        runs = [r for e in episodes for r in await a.engine.store.runs_for(e.id)]
        return [r.state for r in runs] == [RunState.ACTED]

    await eventually(acted, within=20)
    assert world.targets() == ["Deployment/shop/orders"]
    _, answer = await call(a, "GET", "/admin/status", token=READ)
    assert {r["id"] for r in answer["replicas"]} == {a.engine.replica, b.engine.replica}
    assert all(r["live"] for r in answer["replicas"])


async def test_a_replica_stopped_mid_run_reconciles_it_and_lets_go_of_its_claims(
    make_daemon: MakeDaemon,
) -> None:
    world = World(gate=asyncio.Event())
    a = await make_daemon(registry_with(world), config=auto(**admin_config()))
    b = await make_daemon(registry_with(World()), config=auto(**admin_config()))
    status, _ = await a.post(firing(labels("orders")))
    assert status == 200
    async with asyncio.timeout(20):
        await world.started.wait()  # a's call is under way
    gone = a.engine.replica
    assert await a.engine.store.hold_channel("pagerduty", 30)
    assert not await b.engine.store.hold_channel("pagerduty", 30)
    await a.client.close()  # a graceful stop (SIGTERM): the run is cut

    [episode] = await b.engine.store.list_episodes()
    [run] = await b.engine.store.runs_for(episode.id)
    assert run.state == RunState.INTERRUPTED
    assert f"was cut by the stop of replica {gone}" in (run.error or "")
    [escalation] = await b.engine.store.escalations_for(episode.id)
    assert escalation.reason.startswith(f"interrupted by the stop of replica {gone}")
    by_id = {r.id: r for r in await b.engine.store.replicas()}
    assert by_id[gone].fenced_by == gone and not by_id[gone].live
    # Nobody fences it again (it reconciled itself), and its outbox channel is b's at once.
    assert await b.engine.store.fence_expired() == []
    assert await b.engine.store.hold_channel("pagerduty", 30)
    assert world.calls == []
