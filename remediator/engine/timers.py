"""Durable timers: work that must happen later survives a restart.

Verification after a bake time, an approval that times out, scaling back after a cool-down:
each is a row in the store with a due time, and one loop runs the handler registered for its
kind. A handler that fails marks its timer failed (and logs); it is not retried blindly, because
the handlers act on the world. A timer whose kind has no handler stays waiting.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime

from remediator.logs import get_logger
from remediator.store import Store, StoreUnavailable
from remediator.store.records import TimerRecord, TimerState
from remediator.tasks import stop_tasks

TimerHandler = Callable[[TimerRecord], Awaitable[None]]


class Timers:
    def __init__(self, store: Store, *, tick: float = 0.5, batch: int = 50) -> None:
        self._store = store
        self._tick = tick
        self._batch = batch
        self._handlers: dict[str, TimerHandler] = {}
        self._task: asyncio.Task[None] | None = None
        self._wake = asyncio.Event()
        self._log = get_logger(component="timers")

    def on(self, kind: str, handler: TimerHandler) -> None:
        self._handlers[kind] = handler

    def wake(self) -> None:
        """Look for due timers now (after scheduling one that is already due)."""
        self._wake.set()

    async def start(self) -> None:
        self._task = asyncio.create_task(self._loop())

    async def stop(self) -> None:
        await stop_tasks([self._task])
        self._task = None

    async def run_due(self) -> int:
        """Run every due timer once; returns how many ran."""
        due = await self._store.due_timers(datetime.now(UTC), self._batch)
        ran = 0
        for timer in due:
            handler = self._handlers.get(timer.kind)
            if handler is None or not await self._store.claim_timer(timer.id):
                continue  # no handler yet, or another runner took it meanwhile
            ran += 1
            try:
                await handler(timer)
            except StoreUnavailable:
                raise
            except Exception as exc:  # a broken handler must not stop the other timers
                self._log.exception("timer failed", kind=timer.kind, episode=timer.episode_id)
                await self._store.finish_timer(
                    timer.id, TimerState.FAILED, f"{type(exc).__name__}: {exc}"
                )
            else:
                await self._store.finish_timer(timer.id, TimerState.DONE)
        return ran

    async def _loop(self) -> None:
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), self._tick)
            self._wake.clear()
            try:
                await self.run_due()
            except StoreUnavailable as exc:
                self._log.error("cannot read timers", error=str(exc))
