"""A global cap on real actions executing at once; past it, an action waits for a slot.

"In flight" means a call is running: the slot is taken after the guards passed and the intent
was recorded, and released when the call returns or fails. Dry runs never take one. Taking the
slot happens under the same admission lock as the check (see engine/runs/run.py), so the cap cannot
be overshot by runs checking at the same moment. A full cap defers the action (the run waits,
outside the admission lock, until a slot frees, within its playbook timeout) instead of
refusing and escalating it: a burst of simultaneous actions is what the storm breaker judges,
and paging once per waiting run only buried the humans.

With replicas sharing the store, the cap is the fleet's: the check counts the real actions in
`intent` of live replicas (`store.actions_in_flight()`, under the store's admission, so two
replicas cannot both take the last slot), and a deferred action polls the store for room.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from remediator.playbook import Action, RunInfo
from remediator.store import Store

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

    def __init__(
        self, max_in_flight: int, store: Store | None = None, poll_seconds: float = 0.5
    ) -> None:
        self._max = max_in_flight
        # Shared store: the count is every replica's, read from the store.
        self._store = store if store is not None and store.shared else None
        self._poll = poll_seconds
        self.in_flight = 0
        self.waiting = 0
        self._freed = asyncio.Condition()

    async def _count(self) -> int:
        return self.in_flight if self._store is None else await self._store.actions_in_flight()

    async def check(self, run: RunInfo, action: Action) -> None:
        if run.dry_run:
            return
        in_flight = await self._count()
        if in_flight >= self._max:
            raise Deferred(self, f"{in_flight} actions already in flight (cap {self._max})")

    async def room(self) -> None:
        """Return once fewer than the cap are in flight (a slot may still be taken first)."""
        self.waiting += 1
        try:
            if self._store is not None:
                # Another replica's call ending tells nobody here: ask the store again.
                while await self._store.actions_in_flight() >= self._max:
                    async with self._freed:
                        with contextlib.suppress(TimeoutError):
                            async with asyncio.timeout(self._poll):
                                await self._freed.wait()
                return
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
