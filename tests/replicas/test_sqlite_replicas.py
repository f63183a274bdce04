"""Replicas at the store, on both backends: leases, fencing exactly once, intents refused to a
fenced replica, and reconciliation restricted to one owner.

SQLite has one process; a second `SQLiteStore` on the same file with another replica id
stands for another replica here. On PostgreSQL each store is what a replica process opens.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from remediator.alertmanager import Alert
from remediator.store import Fenced, PostgresStore, SQLiteStore
from remediator.store.records import ActionState, RunState, TimerState
from tests.governance.helpers import START, labels

INTENT: dict[str, Any] = {
    "verb": "patch",
    "resource": "deployments/scale",
    "obj": "Deployment/shop/orders",
    "summary": "scale orders to 3",
    "body": {"spec": {"replicas": 3}},
    "change": {},
    "dry_run": False,
}


AnyStore = SQLiteStore | PostgresStore


@pytest.fixture(params=["sqlite", "postgres"])
def another(request: pytest.FixtureRequest, tmp_path: Path) -> Any:
    """Another replica's store on the same record: `another("b")`."""
    if request.param == "postgres":
        dsn = request.getfixturevalue("postgres_database").dsn
        return lambda replica: PostgresStore(dsn, replica=replica)
    return lambda replica: SQLiteStore(tmp_path / "state.db", replica=replica)


@pytest.fixture
async def stores(another: Any) -> AsyncIterator[tuple[AnyStore, AnyStore]]:
    a, b = another("a"), another("b")
    await a.open()
    await b.open()
    try:
        yield a, b
    finally:
        await b.close()
        await a.close()


async def episode(store: AnyStore, name: str = "orders") -> str:
    alert = Alert(
        status="firing",
        labels=labels(name),
        annotations={},
        startsAt=START,
        generatorURL="",
        fingerprint=f"fp-{name}",
    )
    return await store.record_manual_episode(alert, who="test", reason="test", details={})


async def expire(store: AnyStore, replica: str) -> None:
    """The replica stopped heartbeating long ago (its lease is past)."""
    if isinstance(store, PostgresStore):
        await store.database.execute(
            "UPDATE replicas SET lease_until = '2000-01-01T00:00:00+00' WHERE id = $1", replica
        )
        return
    async with store.database.write() as db:
        await db.execute(
            "UPDATE replicas SET lease_until = '2000-01-01T00:00:00.000+00:00' WHERE id = ?",
            (replica,),
        )


async def fence(store: AnyStore, replica: str) -> None:
    if isinstance(store, PostgresStore):
        await store.database.execute(
            "UPDATE replicas SET fenced_at = '2000-01-01T00:00:00+00', fenced_by = 'x' "
            "WHERE id = $1",
            replica,
        )
        return
    async with store.database.write() as db:
        await db.execute(
            "UPDATE replicas SET fenced_at = '2000-01-01T00:00:00.000+00:00', fenced_by = 'x' "
            "WHERE id = ?",
            (replica,),
        )


async def test_a_fenced_replica_records_no_intent(stores: tuple[AnyStore, AnyStore]) -> None:
    a, b = stores
    await a.register("a/1", 30)
    eid = await episode(a)
    run_id = await a.claim_run(eid, "scale", "Deployment/shop/orders", "auto")
    assert run_id is not None
    first = await a.record_intent(run_id, eid, **INTENT)
    await fence(b, "a")
    with pytest.raises(Fenced, match="replica a was fenced by x"):
        await a.record_intent(run_id, eid, **INTENT)
    with pytest.raises(Fenced):  # a dry run is an act on the claim too
        await a.record_intent(run_id, eid, **{**INTENT, "dry_run": True})
    assert [x.id for x in await a.actions_for(eid)] == [first]
    assert await a.heartbeat(30) is False
    # Its run, reconciled by another, is not overwritten by what the fenced one says.
    await b.interrupt_unfinished("a")
    await a.finish_run(run_id, RunState.ACTED)
    [run] = await a.runs_for(eid)
    assert run.state == RunState.INTERRUPTED
    # And the outcome of the interrupted intent is not recorded either.
    await a.record_outcome(first, ActionState.SUCCEEDED, result="ok")
    [action] = await a.actions_for(eid)
    assert action.state == ActionState.INTERRUPTED


async def test_a_lease_past_refuses_the_intent_until_renewed(
    stores: tuple[AnyStore, AnyStore],
) -> None:
    a, _ = stores
    await a.register("a/1", 30)
    eid = await episode(a)
    run_id = await a.claim_run(eid, "scale", "Deployment/shop/orders", "auto")
    assert run_id is not None
    await expire(a, "a")
    with pytest.raises(Fenced, match="lease of replica a is past"):
        await a.record_intent(run_id, eid, **INTENT)
    assert await a.heartbeat(30) is True  # nobody fenced it: it is live again
    await a.record_intent(run_id, eid, **INTENT)


async def test_another_replicas_running_run_is_not_acted_on(
    stores: tuple[AnyStore, AnyStore],
) -> None:
    a, b = stores
    await a.register("a/1", 30)
    await b.register("b/1", 30)
    eid = await episode(a)
    run_id = await a.claim_run(eid, "scale", "Deployment/shop/orders", "auto")
    assert run_id is not None
    with pytest.raises(Fenced, match=f"run {run_id} belongs to replica a"):
        await b.record_intent(run_id, eid, **INTENT)
    # Once the run ended, a later step (a revert from a timer) may be anyone's.
    await a.finish_run(run_id, RunState.ACTED)
    await b.record_intent(run_id, eid, **INTENT)


async def test_each_expired_replica_is_fenced_once(
    stores: tuple[AnyStore, AnyStore], another: Any
) -> None:
    a, b = stores
    dead = another("dead")
    await dead.open()
    try:
        for store, name in ((a, "a/1"), (b, "b/1"), (dead, "dead/1")):
            await store.register(name, 30)
        assert await a.fence_expired() == []
        await expire(a, "dead")
        won = await asyncio.gather(a.fence_expired(), b.fence_expired())
        assert sorted(won) == [[], ["dead"]]  # one of them fenced it
        assert await a.fence_expired() == await b.fence_expired() == []
        await expire(a, "a")
        assert await a.fence_expired() == []  # a replica never fences itself, even late
        by_id = {r.id: r for r in await a.replicas()}
        assert by_id["dead"].fenced_at is not None and not by_id["dead"].live
        assert by_id["b"].live and by_id["b"].fenced_at is None
        assert await dead.heartbeat(30) is False
    finally:
        await dead.close()


async def test_reconciliation_is_restricted_to_the_owner(
    stores: tuple[AnyStore, AnyStore],
) -> None:
    a, b = stores
    await a.register("a/1", 30)
    await b.register("b/1", 30)
    ea, eb = await episode(a, "orders"), await episode(a, "billing")
    run_a = await a.claim_run(ea, "scale", "Deployment/shop/orders", "auto")
    run_b = await b.claim_run(eb, "scale", "Deployment/shop/billing", "auto")
    assert run_a is not None and run_b is not None
    await a.record_intent(run_a, ea, **INTENT)
    await b.record_intent(run_b, eb, **INTENT)
    timer_a = await a.add_timer("later", ea, due_at=START)
    timer_b = await b.add_timer("later", eb, due_at=START)
    assert await a.claim_timer(timer_a) and await b.claim_timer(timer_b)
    assert not await b.claim_timer(timer_a)

    held = {r.id: (r.runs, r.timers) for r in await a.replicas()}
    assert held == {"a": ([run_a], [timer_a]), "b": ([run_b], [timer_b])}

    assert [r.id for r in await b.unfinished_runs("a")] == [run_a]
    assert await b.requeue_running_timers("a") == 1
    [interrupted] = await b.interrupt_unfinished("a")
    assert interrupted.run_id == run_a
    assert [r.state for r in await a.runs_for(ea)] == [RunState.INTERRUPTED]
    assert [r.state for r in await a.runs_for(eb)] == [RunState.RUNNING]
    assert [t.state for t in await a.timers_for(ea)] == [TimerState.WAITING]
    assert [t.state for t in await a.timers_for(eb)] == [TimerState.RUNNING]
    # b's run still acts: its intent was not touched.
    [action_b] = await b.actions_for(eb)
    await b.record_outcome(action_b.id, ActionState.SUCCEEDED, result="ok")
    assert [x.state for x in await b.actions_for(eb)] == [ActionState.SUCCEEDED]


async def test_actions_in_flight_count_intents_of_replicas_not_fenced(
    stores: tuple[AnyStore, AnyStore],
) -> None:
    a, b = stores
    await a.register("a/1", 30)
    await b.register("b/1", 30)
    for store, name in ((a, "orders"), (b, "billing")):
        eid = await episode(store, name)
        run_id = await store.claim_run(eid, "scale", f"Deployment/shop/{name}", "auto")
        assert run_id is not None
        await store.record_intent(run_id, eid, **INTENT)
        await store.record_intent(run_id, eid, **{**INTENT, "dry_run": True})
    assert await a.actions_in_flight() == 2
    await fence(a, "b")
    assert await a.actions_in_flight() == 1
    if isinstance(a, SQLiteStore):
        # One process per SQLite file: nothing else to wait for or to share with.
        assert not a.shared
        async with a.admission():
            assert await a.hold_channel("pagerduty", 30)
        return
    # PostgreSQL: one deliverer per channel, and one admission at a time across replicas.
    assert a.shared
    assert await a.hold_channel("pagerduty", 30) and await a.hold_channel("pagerduty", 30)
    assert not await b.hold_channel("pagerduty", 30)
    await fence(a, "a")
    assert await b.hold_channel("pagerduty", 30)  # a fenced holder's lease is taken over
    order: list[str] = []

    async def admit(store: AnyStore, name: str) -> None:
        async with store.admission():
            order.append(f"{name} in")
            await asyncio.sleep(0.05)
            order.append(f"{name} out")

    await asyncio.gather(admit(a, "a"), admit(b, "b"))
    assert order in (["a in", "a out", "b in", "b out"], ["b in", "b out", "a in", "a out"])


async def test_replicas_fenced_long_ago_holding_nothing_are_forgotten(
    stores: tuple[AnyStore, AnyStore],
) -> None:
    a, b = stores
    await a.register("a/1", 30)
    await b.register("b/1", 30)
    eid = await episode(a)
    assert await a.claim_run(eid, "scale", "Deployment/shop/orders", "auto") is not None
    await fence(b, "a")  # fenced long ago, and still holding its running run
    await fence(a, "b")  # fenced long ago, holding nothing
    assert await a.forget_replicas(3600) == 1
    assert [r.id for r in await a.replicas()] == ["a"]
    assert await a.forget_replicas(10 * 365 * 86400) == 0  # not fenced that long ago
