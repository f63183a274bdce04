"""A clock that moves only when the test says so.

Give it to the daemon (`Engine(..., clock=ManualClock())`, or `LocalDaemon(..., clock=...)`)
and time stands still for everything the engine decides with it: due times of timers (a
verification's bake, a scale-back's cool-down, an approval's deadline), outbox retries and
holds, rate-limit windows and cool-downs, incidents' quiet period, kill switches' and the storm
breaker's expiry. `advance(seconds)` moves it and wakes whatever waits for a due time it
passed (the timer loop, each outbox channel); then `await engine.timers.settled()` returns
once the timers that came due have run, and `await engine.outbox.settled()` once the messages
that came due have had their attempt. A test waits for those, never for a sleep.

The world keeps real time: the Kubernetes emulator's pods, Prometheus and a store that is
down are waited for as they are.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
from datetime import UTC, datetime, timedelta

__all__ = ["ManualClock"]


class ManualClock:
    """`remediator.clock.Clock` for tests: `now()` starts at `start` (by default the real time
    when it was made) and moves by `advance` only."""

    def __init__(self, start: datetime | None = None) -> None:
        start = start or datetime.now(UTC)
        if start.tzinfo is None:
            raise ValueError("ManualClock(start=...) must be timezone-aware")
        self._start = start.astimezone(UTC)
        self._elapsed = 0.0
        # Waiters by due time (seconds since start), in the order they came.
        self._due: list[tuple[float, int, asyncio.Future[None]]] = []
        self._order = itertools.count()

    # -- remediator.clock.Clock ------------------------------------------------------------
    def now(self) -> datetime:
        return self._start + timedelta(seconds=self._elapsed)

    def monotonic(self) -> float:
        return self._elapsed

    async def sleep(self, seconds: float) -> None:
        if seconds <= 0:
            await asyncio.sleep(0)
            return
        waiter = self._waiter(seconds)
        try:
            await waiter
        finally:
            waiter.cancel()

    async def wait(self, event: asyncio.Event, seconds: float) -> bool:
        if event.is_set():
            return True
        if seconds <= 0:
            await asyncio.sleep(0)
            return event.is_set()
        waiter = self._waiter(seconds)
        watcher = asyncio.ensure_future(event.wait())
        try:
            await asyncio.wait((waiter, watcher), return_when=asyncio.FIRST_COMPLETED)
        finally:
            waiter.cancel()
            watcher.cancel()
        return event.is_set()

    # -- the test's side ---------------------------------------------------------------------
    def advance(self, seconds: float | timedelta) -> None:
        """Move the clock forward and wake every wait whose due time is now passed (they run
        at the event loop's next turns, in due-time order)."""
        step = seconds.total_seconds() if isinstance(seconds, timedelta) else float(seconds)
        if step < 0:
            raise ValueError("a clock does not go back")
        self._elapsed += step
        while self._due and self._due[0][0] <= self._elapsed:
            _, _, waiter = heapq.heappop(self._due)
            if not waiter.done():
                waiter.set_result(None)

    @property
    def waiting(self) -> int:
        """How many waits for a due time are pending (those abandoned are not counted)."""
        return sum(1 for _, _, waiter in self._due if not waiter.done())

    def _waiter(self, seconds: float) -> asyncio.Future[None]:
        if len(self._due) > 256:  # drop abandoned waits (a loop woken by its event)
            self._due = [entry for entry in self._due if not entry[2].done()]
            heapq.heapify(self._due)
        waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        heapq.heappush(self._due, (self._elapsed + seconds, next(self._order), waiter))
        return waiter
