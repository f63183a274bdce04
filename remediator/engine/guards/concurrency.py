"""A global cap on real actions executing at once; past it, an action waits for a slot.

"In flight" means a call is running: the slot is taken after the guards passed and the intent
was recorded, and released when the call returns or fails. Dry runs never take one. Taking the
slot happens under the same admission lock as the check (see engine/runs/run.py), so the cap cannot
be overshot by runs checking at the same moment. A full cap defers the action (the run waits,
outside the admission lock, until a slot frees, within its playbook timeout) instead of
refusing and escalating it: a burst of simultaneous actions is what the storm breaker judges,
and paging once per waiting run only buried the humans.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from remediator.playbook import Action, RunInfo

NAME = "concurrency"


class Deferred(Exception):
    """The cap is full: wait for `room()`, then ask the guards again."""

    def __init__(self, guard: ConcurrencyGuard, reason: str) -> None:
        super().__init__(reason)
        self.guard = guard

    async def room(self) -> None:
        await self.guard.room()


class ConcurrencyGuard:
    name = NAME

    def __init__(self, max_in_flight: int) -> None:
        self._max = max_in_flight
        self.in_flight = 0
        self.waiting = 0
        self._freed = asyncio.Condition()

    async def check(self, run: RunInfo, action: Action) -> None:
        if not run.dry_run and self.in_flight >= self._max:
            raise Deferred(self, f"{self.in_flight} actions already in flight (cap {self._max})")

    async def room(self) -> None:
        """Return once fewer than the cap are in flight (a slot may still be taken first)."""
        self.waiting += 1
        try:
            async with self._freed:
                await self._freed.wait_for(lambda: self.in_flight < self._max)
        finally:
            self.waiting -= 1

    @asynccontextmanager
    async def slot(self) -> AsyncIterator[None]:
        self.in_flight += 1
        try:
            yield
        finally:
            self.in_flight -= 1
            async with self._freed:
                self._freed.notify_all()
