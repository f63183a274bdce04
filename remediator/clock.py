"""The daemon's one source of time, injected, so that a test advances it instead of sleeping.

Everything the engine and the store decide or record with time reads it here: the times
written in the record (episodes, runs, actions, the audit), due times (timers, outbox retries,
approval deadlines, the storm breaker's and kill switches' expiry), windows (rate limits,
cool-downs, quiet periods, page budgets) and the loops that wait for a due time (the timer
loop, each outbox channel, a run's progress notes). `Engine` builds one `SystemClock` unless
it is given a clock, and hands the same one to the store and to every component.

The test kit's `ManualClock` (remediator_testing.clock) moves only when a test advances it, and
wakes whatever waits for a due time it passed. Waiting for the world (a rollout, a store that
is down, a network retry) is not the clock's business and stays on real time.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from datetime import UTC, datetime
from typing import Protocol


class Clock(Protocol):
    def now(self) -> datetime:
        """The current time, timezone-aware UTC."""
        ...

    def monotonic(self) -> float:
        """Seconds from an arbitrary start, never going back (for intervals)."""
        ...

    async def sleep(self, seconds: float) -> None:
        """Until `seconds` of this clock have passed."""
        ...

    async def wait(self, event: asyncio.Event, seconds: float) -> bool:
        """Until `event` is set or `seconds` of this clock have passed; whether the event is
        set."""
        ...


class SystemClock:
    """Real time: the wall clock for `now`, the event loop's timers for waits."""

    def now(self) -> datetime:
        return datetime.now(UTC)

    def monotonic(self) -> float:
        return time.monotonic()

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(max(0.0, seconds))

    async def wait(self, event: asyncio.Event, seconds: float) -> bool:
        if not event.is_set():
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(max(0.0, seconds)):
                    await event.wait()
        return event.is_set()


SYSTEM = SystemClock()

__all__ = ["SYSTEM", "Clock", "SystemClock"]
