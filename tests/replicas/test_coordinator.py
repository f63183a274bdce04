"""The engine's side of replicas, on both backends: a fenced replica stops acting and nothing
is called; a lease past only because the process was slow is renewed; the Coordinator
reconciles what an expired replica held exactly once; the admin API and metrics show the
replicas. (A second store on the same record, with its own replica id, is the other replica.)"""

from __future__ import annotations

import asyncio
import time
from typing import cast

import pytest

from remediator.playbook import Action, ActionRefused, Target
from remediator.store import PostgresStore, SQLiteStore
from remediator.store.records import ActionState, DecisionKind, RunState, TimerState
from tests.admin.helpers import READ, admin_config, call
from tests.conftest import BOTH_BACKENDS, Daemon, MakeDaemon
from tests.governance.helpers import START, World, auto, firing, labels, registry_with
from tests.replicas.test_sqlite_replicas import INTENT, AnyStore, episode, expire, fence

pytestmark = BOTH_BACKENDS


def sqlite(daemon: Daemon) -> AnyStore:
    """The daemon's store, whichever backend."""
    return cast(AnyStore, daemon.engine.store)


def other(daemon: Daemon, replica: str) -> AnyStore:
    """Another replica's store on the daemon's record."""
    state = daemon.settings.state
    if state.backend == "postgres":
        return PostgresStore(state.dsn_value(), replica=replica)
    return SQLiteStore(state.path, replica=replica)


async def test_a_fenced_replica_refuses_its_intent_and_calls_nothing(
    make_daemon: MakeDaemon,
) -> None:
    world = World()
    daemon = await make_daemon(registry_with(world), config=auto(**admin_config()))
    engine = daemon.engine
    assert engine.metrics.replica_fenced._value.get() == 0
    await fence(sqlite(daemon), engine.replica)  # by hand: another replica took over

    status, _ = await daemon.post(firing(labels("orders")))
    assert status == 200
    async with asyncio.timeout(10):
        await engine.lost.wait()  # the refused intent: the replica stops acting

    assert world.calls == []
    [ep] = await engine.store.list_episodes()
    assert await engine.store.actions_for(ep.id) == []
    assert engine.fenced and "fenced by another replica" in (engine.fenced_reason or "")
    assert engine.metrics.replica_fenced._value.get() == 1
    response = await daemon.client.get("/readyz")
    assert response.status == 503
    assert "replica fenced" in str((await response.json())["problems"])
    _, answer = await call(daemon, "GET", "/admin/status", token=READ)
    assert answer["replica"] == {"id": engine.replica, "name": engine.replica_name, "fenced": True}


async def test_a_lease_past_but_not_fenced_is_renewed_and_the_action_made(
    make_daemon: MakeDaemon,
) -> None:
    world = World()
    daemon = await make_daemon(registry_with(world), config=auto())
    await expire(sqlite(daemon), daemon.engine.replica)  # the process stalled past its lease
    status, _ = await daemon.post(firing(labels("orders")))
    assert status == 200
    await daemon.settle()
    assert world.targets() == ["Deployment/shop/orders"]
    assert not daemon.engine.fenced


async def test_the_coordinator_reconciles_an_expired_replica_once(
    make_daemon: MakeDaemon,
) -> None:
    world = World()
    # Its own fencing loop stays out of the way: the test makes the passes itself.
    config = auto(**admin_config(), state={"fence_check_seconds": 3600})
    daemon = await make_daemon(registry_with(world), config=config)
    engine = daemon.engine
    store = sqlite(daemon)
    # Another replica, sharing the file for the test: it claimed a run, recorded its intent
    # and a running timer, and died (its lease ran out).
    dead = other(daemon, "dead")
    await dead.open()
    try:
        await dead.register("dead-pod/7", 30)
        eid = await episode(dead)
        run_id = await dead.claim_run(eid, "scale", "Deployment/shop/orders", "auto")
        assert run_id is not None
        await dead.record_intent(run_id, eid, **INTENT)
        timer = await dead.add_timer("no-handler", eid, due_at=START)
        assert await dead.claim_timer(timer)
        _, answer = await call(daemon, "GET", "/admin/status", token=READ)
        by_id = {r["id"]: r for r in answer["replicas"]}
        assert by_id["dead"]["runs"] == [run_id] and by_id["dead"]["timers"] == [timer]
        assert by_id["dead"]["live"] and by_id[engine.replica]["live"]
        await expire(store, "dead")

        assert engine.coordinator is not None
        first, second = await asyncio.gather(
            engine.coordinator.fence_pass(), engine.coordinator.fence_pass()
        )
        assert sorted([first, second]) == [[], ["dead"]]
        assert await engine.coordinator.fence_pass() == []
        assert engine.coordinator.reconciled == {"dead": 1}

        [run] = await store.runs_for(eid)
        assert run.state == RunState.INTERRUPTED
        assert "cut by the loss of replica dead" in (run.error or "")
        [action] = await store.actions_for(eid)
        assert action.state == ActionState.INTERRUPTED
        kinds = [d.kind for d in await store.decisions_for(eid)]
        assert kinds.count(DecisionKind.INTERRUPTED) == 1
        [escalation] = await store.escalations_for(eid)
        assert escalation.reason.startswith("interrupted by the loss of replica dead")
        assert [t.state for t in await store.timers_for(eid)] == [TimerState.WAITING]
        assert world.calls == []  # never re-run
        assert engine.metrics.claims.labels(kind="replica")._value.get() == 1

        _, answer = await call(daemon, "GET", "/admin/status", token=READ)
        by_id = {r["id"]: r for r in answer["replicas"]}
        assert by_id["dead"]["fenced_by"] == engine.replica and not by_id["dead"]["live"]
        assert by_id["dead"]["runs"] == [] and by_id["dead"]["timers"] == []
        # The dead replica, if it woke up, could do nothing more.
        assert await dead.heartbeat(30) is False
    finally:
        await dead.close()


async def test_metrics_show_this_replicas_claims(make_daemon: MakeDaemon) -> None:
    world = World()
    daemon = await make_daemon(registry_with(world), config=auto())
    status, _ = await daemon.post(firing(labels("orders")))
    assert status == 200
    await daemon.settle()
    response = await daemon.client.get("/metrics")
    text = await response.text()
    assert 'remediator_claims_total{kind="run"} 1.0' in text
    assert 'remediator_claims_total{kind="work"} 1.0' in text
    assert "remediator_replica_fenced 0.0" in text


async def test_a_replica_fenced_during_its_call_makes_no_further_call(
    make_daemon: MakeDaemon,
) -> None:
    """What a SIGSTOP past the lease does: the first call was under way when the replica was
    fenced and reconciled by another; it wakes up, and its next action is refused."""
    world = World(gate=asyncio.Event())
    two = registry_with(
        world, touch=lambda t: [t, type(t)(t.kind, f"{t.name}-canary", t.namespace)]
    )
    daemon = await make_daemon(two, config=auto())
    engine = daemon.engine
    status, _ = await daemon.post(firing(labels("orders")))
    assert status == 200
    async with asyncio.timeout(10):
        await world.started.wait()  # the first call is in flight
    reconciler = other(daemon, "other")
    await reconciler.open()
    try:
        await fence(reconciler, engine.replica)
        [cut] = await reconciler.interrupt_unfinished(engine.replica)
    finally:
        await reconciler.close()
    world.gate.set()  # type: ignore[union-attr]
    async with asyncio.timeout(10):
        await engine.lost.wait()
    assert world.targets() == ["Deployment/shop/orders"]  # the call under way, only
    [action] = await engine.store.actions_for(cut.episode_id)
    assert action.id == cut.id and action.state == ActionState.INTERRUPTED
    [run] = await engine.store.runs_for(cut.episode_id)
    assert run.state == RunState.INTERRUPTED  # as the reconciler left it


async def test_a_replica_fences_others_only_after_a_lease_of_its_own_heartbeats(
    make_daemon: MakeDaemon,
) -> None:
    """After an outage of the store every lease is past; a replica that fenced at once would
    fence the live ones too. It waits until its own heartbeats held for a whole lease."""
    world = World()
    config = auto(state={"lease_seconds": 2.0, "fence_check_seconds": 0.05})
    daemon = await make_daemon(registry_with(world), config=config)
    coordinator = daemon.engine.coordinator
    assert coordinator is not None
    dead = other(daemon, "dead")
    await dead.open()
    try:
        await dead.register("dead-pod/7", 30)
        await expire(sqlite(daemon), "dead")
        # As after an outage: its first heartbeat since the store came back, just now.
        coordinator._healthy_since = time.monotonic()
        back = time.monotonic()
        passes = coordinator.passes
        async with asyncio.timeout(10):
            while coordinator.passes < passes + 3:
                await asyncio.sleep(0.01)
        [found] = [r for r in await sqlite(daemon).replicas() if r.id == "dead"]
        assert found.fenced_at is None  # three passes went by: it waited

        async with asyncio.timeout(10):
            while "dead" not in coordinator.reconciled:  # fenced, then reconciled
                await asyncio.sleep(0.02)
        assert time.monotonic() - back >= 2.0
        [found] = [r for r in await sqlite(daemon).replicas() if r.id == "dead"]
        assert found.fenced_by == daemon.engine.replica
    finally:
        await dead.close()


async def test_a_later_step_on_a_run_another_live_replica_runs_is_refused(
    make_daemon: MakeDaemon,
) -> None:
    """A timer's step (a follow-up) on a run still running on another live replica: refused
    like any guard's refusal, and this replica goes on (it is not fenced)."""
    world = World()
    daemon = await make_daemon(registry_with(world), config=auto())
    engine = daemon.engine
    owner = other(daemon, "a")
    await owner.open()
    try:
        await owner.register("a-pod/1", 30)
        eid = await episode(owner)
        run_id = await owner.claim_run(eid, "scale", "Deployment/shop/orders", "auto")
        assert run_id is not None
        spec = engine.registry.get("scale")
        assert spec is not None
        target = Target("Deployment", "orders", "shop")
        run = engine.pipeline.new_run(spec, target, eid, run_id, False, engine.log)
        called: list[str] = []

        async def call() -> str:
            called.append("made")
            return "ok"

        action = Action("patch", "deployments/scale", target, "scale orders", body={})
        with pytest.raises(ActionRefused, match=f"run {run_id} belongs to replica a"):
            await run.act(action, call)
        assert called == [] and not engine.fenced
        assert await engine.store.actions_for(eid) == []
    finally:
        await owner.close()


async def test_what_a_fencer_died_before_reconciling_is_reconciled_with_it(
    make_daemon: MakeDaemon,
) -> None:
    """b fenced c and died before reconciling it: whoever fences b reconciles c too."""
    world = World()
    config = auto(state={"fence_check_seconds": 3600})
    daemon = await make_daemon(registry_with(world), config=config)
    engine = daemon.engine
    assert engine.coordinator is not None
    b, c = other(daemon, "b"), other(daemon, "c")
    await b.open()
    await c.open()
    try:
        await b.register("b-pod/1", 30)
        await c.register("c-pod/1", 30)
        eid = await episode(c)
        run_id = await c.claim_run(eid, "scale", "Deployment/shop/orders", "auto")
        assert run_id is not None
        await c.record_intent(run_id, eid, **INTENT)
        await expire(b, "c")
        assert await b.fence_expired() == ["c"]  # ... and b died here
        await expire(b, "b")
        assert await engine.coordinator.fence_pass() == ["b"]
        assert engine.coordinator.reconciled == {"b": 0, "c": 1}
        [run] = await engine.store.runs_for(eid)
        assert run.state == RunState.INTERRUPTED
        assert "cut by the loss of replica c" in (run.error or "")
        assert len(await engine.store.escalations_for(eid)) == 1
        assert await engine.coordinator.fence_pass() == []
        assert engine.coordinator.reconciled == {"b": 0, "c": 1}
    finally:
        await c.close()
        await b.close()
