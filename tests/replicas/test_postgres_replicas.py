"""Replicas on PostgreSQL: several `PostgresStore`s (one replica id each) on one database race
for every kind of claim and each is won once; a fenced replica records nothing; the fence waits
for an intent being recorded; guards taken under the shared admission are never exceeded,
however many replicas race for the last slot (a property test).

A missing PostgreSQL fails these tests (the kit's `postgres_database`), it never skips them.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AsyncExitStack, asynccontextmanager
from datetime import UTC, datetime
from typing import Any

import asyncpg
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from remediator.alertmanager import Alert, validate_notification
from remediator.clock import SYSTEM
from remediator.config import RateLimitSettings
from remediator.config.guards import RateWindow
from remediator.engine.guards import GuardChain
from remediator.engine.guards.concurrency import ConcurrencyGuard
from remediator.engine.guards.ratelimit import RateLimitGuard
from remediator.engine.intake import digest_plan
from remediator.engine.runs.run import EngineRun
from remediator.logs import get_logger
from remediator.metrics import Metrics
from remediator.playbook import Action, ActionRefused, Target
from remediator.store import Fenced, PostgresStore
from remediator.store.records import (
    ActionState,
    IncomingNotification,
    RunState,
    TimerState,
    WorkKind,
)
from remediator_testing.alerts import alert, body, notification
from remediator_testing.pytest_fixtures import PostgresDatabase
from tests.governance.helpers import START, labels

pytestmark = pytest.mark.servers

T0 = datetime(2026, 11, 22, 3, 0, tzinfo=UTC)
INTENT: dict[str, Any] = {
    "verb": "patch",
    "resource": "deployments/scale",
    "obj": "Deployment/shop/orders",
    "summary": "scale orders to 3",
    "body": {"spec": {"replicas": 3}},
    "change": {},
    "dry_run": False,
}
Stores = Callable[..., Awaitable[list[PostgresStore]]]


@asynccontextmanager
async def replicas(dsn: str, *ids: str, lease: float = 30.0) -> AsyncIterator[list[PostgresStore]]:
    """Stores on one database, one per replica id, each registered."""
    async with AsyncExitStack() as stack:
        stores = []
        for replica in ids:
            store = PostgresStore(dsn, pool_min=1, pool_max=4, replica=replica)
            await store.open()
            stack.push_async_callback(store.close)
            await store.register(f"{replica}-pod/1", lease)
            stores.append(store)
        yield stores


async def sql(dsn: str, statement: str, *args: Any) -> list[asyncpg.Record]:
    conn = await asyncpg.connect(dsn)
    try:
        return list(await conn.fetch(statement, *args))
    finally:
        await conn.close()


async def expire(dsn: str, replica: str) -> None:
    """The replica stopped heartbeating: its lease is past, on PostgreSQL's clock."""
    await sql(
        dsn, "UPDATE replicas SET lease_until = now() - interval '1 second' WHERE id = $1", replica
    )


async def episode(store: PostgresStore, name: str = "orders") -> str:
    found = Alert(
        status="firing",
        labels=labels(name),
        annotations={},
        startsAt=START,
        generatorURL="",
        fingerprint=f"fp-{name}",
    )
    return await store.record_manual_episode(found, who="test", reason="test", details={})


def one_winner(results: list[Any]) -> Any:
    won = [r for r in results if r not in (None, False)]
    assert len(won) == 1, results
    return won[0]


async def test_racing_claims_are_each_won_once(postgres_database: PostgresDatabase) -> None:
    dsn = postgres_database.dsn
    async with replicas(dsn, "a", "b", "c") as stores:
        a = stores[0]
        # Runs: one per (episode, playbook), owned by whoever won it.
        for n in range(5):
            eid = await episode(a, f"app-{n}")
            claims = await asyncio.gather(
                *(s.claim_run(eid, "scale", f"Deployment/shop/app-{n}", "auto") for s in stores)
            )
            run_id = one_winner(claims)
            winner = stores[claims.index(run_id)].replica
            [(owner,)] = await sql(dsn, "SELECT owner FROM runs WHERE id = $1", run_id)
            assert owner == winner
        # Timers.
        eid = await episode(a, "timers")
        for _ in range(5):
            timer = await a.add_timer("later", eid, due_at=T0)
            claimed = await asyncio.gather(*(s.claim_timer(timer) for s in stores))
            one_winner(claimed)
        # Dispatch work: an episode the digest left pending.
        batch = [
            IncomingNotification(validate_notification(body(p)), body(p), T0)
            for p in [notification([alert(labels(f"work-{n}"), starts_at=T0)]) for n in range(5)]
        ]
        await a.journal(batch)
        entries = await a.undigested(10)
        slice_ = digest_plan.keyed([(e, validate_notification(e.body)) for e in entries])
        async with a.digesting(slice_.episode_ids) as work:
            await work.apply(digest_plan.plan_digest(slice_, work.known, lambda _: True, T0))
        items = await a.pending_work(WorkKind.FIRING, 10)
        assert len(items) == 5
        for item in items:
            claimed = await asyncio.gather(*(s.claim_work(item) for s in stores))
            one_winner(claimed)
        # An outbox channel: one deliverer; it renews, the others wait.
        held = await asyncio.gather(*(s.hold_channel("pagerduty", 30) for s in stores))
        one_winner(held)
        holder = stores[held.index(True)]
        assert await holder.hold_channel("pagerduty", 30)
        assert [await s.hold_channel("pagerduty", 30) for s in stores if s is not holder] == [
            False,
            False,
        ]
        by_id = {r.id: r for r in await a.replicas()}
        assert by_id[holder.replica].channels == ["pagerduty"]
        assert sum(len(r.runs) for r in by_id.values()) == 5
        assert sum(len(r.work) for r in by_id.values()) == 5


async def test_a_fenced_replicas_claims_go_to_the_others(
    postgres_database: PostgresDatabase,
) -> None:
    dsn = postgres_database.dsn
    async with replicas(dsn, "a", "b", "c") as (a, b, c):
        batch = [
            IncomingNotification(validate_notification(body(p)), body(p), T0)
            for p in [notification([alert(labels("orders"), starts_at=T0)])]
        ]
        await a.journal(batch)
        entries = await a.undigested(10)
        slice_ = digest_plan.keyed([(e, validate_notification(e.body)) for e in entries])
        async with a.digesting(slice_.episode_ids) as work:
            await work.apply(digest_plan.plan_digest(slice_, work.known, lambda _: True, T0))
        [item] = await a.pending_work(WorkKind.FIRING, 10)
        assert await a.claim_work(item) and await a.hold_channel("slack", 30)
        assert not await b.claim_work(item) and not await b.hold_channel("slack", 30)

        await expire(dsn, "a")
        # b and c look for expired replicas at the same moment: one of them fences a.
        fenced = await asyncio.gather(b.fence_expired(), c.fence_expired())
        assert sorted(fenced) == [[], ["a"]]
        assert await a.heartbeat(30) is False
        assert await b.claim_work(item)  # a fenced replica's claim is anyone's
        assert await b.hold_channel("slack", 30)
        # What the fenced one says of its work is not recorded.
        await a.mark_handled(item)
        assert [i.episode_id for i in await b.pending_work(WorkKind.FIRING, 10)] == [
            item.episode_id
        ]
        await b.mark_handled(item)
        assert await b.pending_work(WorkKind.FIRING, 10) == []


async def test_a_fenced_replica_records_no_intent(postgres_database: PostgresDatabase) -> None:
    dsn = postgres_database.dsn
    async with replicas(dsn, "a", "b") as (a, b):
        eid = await episode(a)
        run_id = await a.claim_run(eid, "scale", "Deployment/shop/orders", "auto")
        assert run_id is not None
        first = await a.record_intent(run_id, eid, **INTENT)
        assert await a.actions_in_flight() == 1
        await expire(dsn, "a")
        with pytest.raises(Fenced, match="lease of replica a is past"):
            await a.record_intent(run_id, eid, **INTENT)
        assert await b.fence_expired() == ["a"]
        assert await a.actions_in_flight() == 0  # a fenced replica's intents are not in flight
        with pytest.raises(Fenced, match="replica a was fenced by b"):
            await a.record_intent(run_id, eid, **INTENT)
        assert [x.id for x in await a.actions_for(eid)] == [first]

        # b reconciles what a held; a's late words change nothing.
        assert [r.id for r in await b.unfinished_runs("a")] == [run_id]
        [cut] = await b.interrupt_unfinished("a")
        assert cut.id == first
        await a.record_outcome(first, ActionState.SUCCEEDED, result="ok")
        await a.finish_run(run_id, RunState.ACTED)
        [action] = await b.actions_for(eid)
        assert action.state == ActionState.INTERRUPTED
        [run] = await b.runs_for(eid)
        assert run.state == RunState.INTERRUPTED


async def test_a_live_replica_does_not_act_on_anothers_running_run(
    postgres_database: PostgresDatabase,
) -> None:
    async with replicas(postgres_database.dsn, "a", "b") as (a, b):
        eid = await episode(a)
        run_id = await a.claim_run(eid, "scale", "Deployment/shop/orders", "auto")
        assert run_id is not None
        with pytest.raises(Fenced, match=f"run {run_id} belongs to replica a"):
            await b.record_intent(run_id, eid, **INTENT)
        assert await b.actions_for(eid) == []


async def test_the_fence_waits_for_an_intent_being_recorded(
    postgres_database: PostgresDatabase,
) -> None:
    """record_intent holds its replica row FOR SHARE: a fence of that replica waits until the
    intent is committed (then the reconciler sees it), it never slips in between."""
    dsn = postgres_database.dsn
    async with replicas(dsn, "a", "b") as (_a, b):
        await expire(dsn, "a")
        intent = await asyncpg.connect(dsn)  # what record_intent's transaction holds
        try:
            transaction = intent.transaction()
            await transaction.start()
            await intent.execute("SELECT 1 FROM replicas WHERE id = 'a' FOR SHARE")
            fencing = asyncio.create_task(b.fence_expired())

            async def fence_waits() -> bool:
                rows = await sql(
                    dsn,
                    "SELECT 1 FROM pg_stat_activity WHERE wait_event_type = 'Lock' "
                    "AND query LIKE 'UPDATE replicas SET fenced_at%'",
                )
                return bool(rows)

            async with asyncio.timeout(10):
                while not await fence_waits():
                    await asyncio.sleep(0.02)
            assert not fencing.done()
            await transaction.commit()
            assert await fencing == ["a"]
        finally:
            await intent.close()


async def test_requeued_timers_of_a_fenced_replica_are_not_finished_by_it(
    postgres_database: PostgresDatabase,
) -> None:
    dsn = postgres_database.dsn
    async with replicas(dsn, "a", "b") as (a, b):
        eid = await episode(a)
        timer = await a.add_timer("later", eid, due_at=T0)
        assert await a.claim_timer(timer)
        await expire(dsn, "a")
        assert await b.fence_expired() == ["a"]
        assert await b.requeue_running_timers("a") == 1
        await a.finish_timer(timer, TimerState.DONE)
        assert [t.state for t in await b.timers_for(eid)] == [TimerState.WAITING]
        assert await b.claim_timer(timer)
        await b.finish_timer(timer, TimerState.DONE)
        assert [t.state for t in await b.timers_for(eid)] == [TimerState.DONE]


# -- guards across replicas: the shared admission --------------------------------------------


async def race(
    dsn: str, replica_count: int, runs_each: int, limit: int | None, cap: int
) -> tuple[int, int, int]:
    """`replica_count` replicas, each with its own admission lock and guards (as processes
    are), run `runs_each` runs at once on one target; returns (calls made, refused, the most
    calls in flight at once)."""
    tag = uuid.uuid4().hex[:8]
    target = Target("Deployment", f"app-{tag}", "shop")
    rates = RateLimitSettings(
        per_target=RateWindow(max_actions=limit if limit is not None else 10_000),
        per_playbook=RateWindow(max_actions=10_000),
        all_playbooks=RateWindow(max_actions=10_000),
    )
    made = refused = in_flight = peak = 0

    async def call() -> str:
        nonlocal made, in_flight, peak
        in_flight += 1
        peak = max(peak, in_flight)
        await asyncio.sleep(0.01)
        in_flight -= 1
        made += 1
        return "ok"

    async with replicas(dsn, *(f"{tag}-{i}" for i in range(replica_count))) as stores:

        async def one(store: PostgresStore, guards: GuardChain, lock: asyncio.Lock, n: int) -> None:
            nonlocal refused
            name = f"{tag}-{store.replica}-{n}"
            eid = await episode(store, name)
            run_id = await store.claim_run(eid, f"scale-{tag}", target.key, "auto")
            assert run_id is not None
            run = EngineRun(
                run_id=run_id,
                episode_id=eid,
                playbook=f"scale-{tag}",
                target=target,
                dry_run=False,
                store=store,
                guards=guards,
                admission=lock,
                clock=SYSTEM,
                log=get_logger(component="test"),
            )
            action = Action("patch", "deployments/scale", target, f"scale {name}", body={})
            try:
                await run.act(action, call)
            except ActionRefused:
                refused += 1

        tasks = []
        for store in stores:
            concurrency = ConcurrencyGuard(cap, store, poll_seconds=0.01)
            guards = GuardChain(
                [RateLimitGuard(store, rates, clock=SYSTEM), concurrency], concurrency, Metrics()
            )
            lock = asyncio.Lock()
            tasks += [one(store, guards, lock, n) for n in range(runs_each)]
        async with asyncio.timeout(60):
            await asyncio.gather(*tasks)
    return made, refused, peak


@settings(
    max_examples=12,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
@given(
    replica_count=st.integers(2, 4),
    runs_each=st.integers(1, 3),
    limit=st.one_of(st.none(), st.integers(0, 3)),
    cap=st.integers(1, 3),
)
async def test_replicas_racing_never_exceed_a_rate_limit_or_the_concurrency_cap(
    postgres_database: PostgresDatabase,
    replica_count: int,
    runs_each: int,
    limit: int | None,
    cap: int,
) -> None:
    total = replica_count * runs_each
    made, refused, peak = await race(postgres_database.dsn, replica_count, runs_each, limit, cap)
    allowed = total if limit is None else min(limit, total)
    assert made == allowed, (made, refused, limit, total)
    assert refused == total - allowed
    assert peak <= cap, (peak, cap)
