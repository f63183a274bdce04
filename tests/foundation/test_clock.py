"""The injected clock: the test kit's ManualClock on its own, then driving a daemon's timers and
outbox. Nothing here sleeps; a "did not happen yet" is read after the pass that would have
done it (`Timers.settled`, `Outbox.settled`)."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from pydantic import BaseModel

from remediator.clock import Clock, SystemClock
from remediator.playbook import Action, Registry, Target, playbook, targets
from remediator_testing.alerts import alert, notification
from remediator_testing.clock import ManualClock
from tests.conftest import MakeDaemon

START = datetime(2026, 12, 1, 3, 0, tzinfo=UTC)


def test_both_clocks_are_clocks() -> None:
    clocks: list[Clock] = [SystemClock(), ManualClock()]
    assert all(c.now().tzinfo is not None for c in clocks)


async def test_manual_time_moves_only_when_advanced() -> None:
    clock = ManualClock(START)
    assert clock.now() == START and clock.monotonic() == 0.0
    sleeper = asyncio.create_task(clock.sleep(10))
    event = asyncio.Event()
    waiter = asyncio.create_task(clock.wait(event, 30))
    await asyncio.wait((sleeper, waiter), timeout=0)  # both start and register their due time
    assert clock.waiting == 2
    clock.advance(9.5)
    assert clock.now() == START + timedelta(seconds=9.5) and clock.waiting == 2
    clock.advance(timedelta(seconds=0.5))
    await sleeper  # due at 10 s: woken by the advance that reached it
    assert clock.waiting == 1 and not waiter.done()
    event.set()
    assert await waiter is True  # the event, not the time, ended this wait
    timed_out = asyncio.create_task(clock.wait(asyncio.Event(), 5))
    await asyncio.wait((timed_out,), timeout=0)
    clock.advance(5)
    assert await timed_out is False
    with pytest.raises(ValueError, match="back"):
        clock.advance(-1)
    with pytest.raises(ValueError, match="timezone"):
        ManualClock(datetime(2026, 12, 1))


class Later(BaseModel):
    note: str


def follow_up_registry(seen: list[str], delay: float) -> Registry:
    registry = Registry()

    async def again(*, data: Later, **_: Any) -> None:
        seen.append(data.note)

    @playbook(
        match='alertname="KafkaLagHigh"',
        target=targets.deployment(),
        registry=registry,
        name="later",
        follow_up=again,
    )
    async def later(*, run: Any, target: Target, **_: Any) -> None:
        async def call() -> str:
            return "ok"

        await run.act(Action("patch", "deployments/scale", target, "scale"), call)
        await run.follow_up(delay, Later(note="still firing"))

    return registry


LAG = {"alertname": "KafkaLagHigh", "namespace": "shop", "deployment": "orders"}


async def test_a_timer_comes_due_when_the_clock_passes_its_due_time(
    make_daemon: MakeDaemon,
) -> None:
    seen: list[str] = []
    clock = ManualClock()
    daemon = await make_daemon(follow_up_registry(seen, 300), config={"mode": "auto"}, clock=clock)
    status, _ = await daemon.post(notification([alert(LAG, starts_at=START)]))
    assert status == 200
    await daemon.settle()
    [episode] = await daemon.engine.store.list_episodes()
    timers = await daemon.engine.store.timers_for(episode.id)
    [timer] = [t for t in timers if t.kind == "follow_up"]
    assert timer.due_at == clock.now() + timedelta(seconds=300)
    await daemon.advance(299)  # the timer loop's pass after this found nothing due
    assert seen == []
    await daemon.advance(1)
    assert seen == ["still firing"]
    [timer] = [t for t in await daemon.engine.store.timers_for(episode.id) if t.kind == "follow_up"]
    assert timer.state == "done"
