"""Durable timers: work that must happen later survives a restart.

Verification after a bake time, an approval that times out, scaling back after a cool-down:
each is a row in the store with a due time, and one loop runs the handler registered for its
kind. A handler that fails marks its timer failed (and logs); it is not retried blindly, because
the handlers act on the world. A timer whose kind has no handler stays waiting. Due times and
the loop's poll are on the engine's clock (remediator/clock.py): a test's manual clock makes
timers due by advancing, and `settled` waits until the loop has run them.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from functools import partial

from remediator.clock import Clock
from remediator.logs import get_logger
from remediator.metrics import Metrics
from remediator.store import Fenced, Store, StoreUnavailable
from remediator.store.records import TimerRecord, TimerState
from remediator.tasks import stop_tasks

TimerHandler = Callable[[TimerRecord], Awaitable[None]]


class Timers:
    def __init__(
        self,
        store: Store,
        *,
        clock: Clock,
        tick: float = 0.5,
        batch: int = 50,
        metrics: Metrics | None = None,
    ) -> None:
        self._store = store
        self._metrics = metrics
        self._clock = clock
        self._tick = tick
        self._batch = batch
        self._handlers: dict[str, TimerHandler] = {}
        self._task: asyncio.Task[None] | None = None
        self._wake = asyncio.Event()
        # Passes of the loop begun and finished, and how many timers the last one ran; a
        # condition told after each pass (see `settled`).
        self._begun = self._finished = self._last_ran = 0
        self._passed = asyncio.Condition()
        self._log = get_logger(component="timers")

    def on(self, kind: str, handler: TimerHandler) -> None:
        self._handlers[kind] = handler

    def wake(self) -> None:
        """Look for due timers now (after scheduling one that is already due)."""
        self._wake.set()

    async def start(self) -> None:
        self._task = asyncio.create_task(self._loop())

    async def settled(self) -> None:
        """Until a pass of the loop that began after this call found no due timer (for a test
        that advanced a manual clock: every timer it made due has run, and so have the due
        timers those handlers scheduled). What the handlers queued elsewhere (a report on the
        outbox) may still be under way."""
        while self._task is not None and not self._task.done():
            async with self._passed:
                self._wake.set()
                await self._passed.wait_for(partial(self._finished_after, self._begun))
                if self._last_ran == 0:
                    return

    def _finished_after(self, begun: int) -> bool:
        return self._finished > begun

    async def stop(self) -> None:
        await stop_tasks([self._task])
        self._task = None

    async def run_due(self) -> int:
        """Run every due timer once; returns how many ran."""
        due = await self._store.due_timers(self._clock.now(), self._batch)
        ran = 0
        for timer in due:
            handler = self._handlers.get(timer.kind)
            if handler is None or not await self._store.claim_timer(timer.id):
                continue  # no handler yet, or another runner took it meanwhile
            ran += 1
            if self._metrics is not None:
                self._metrics.claims.labels(kind="timer").inc()
            try:
                await handler(timer)
            except (StoreUnavailable, Fenced):
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
            await self._clock.wait(self._wake, self._tick)
            self._wake.clear()
            self._begun += 1
            ran = 0
            try:
                ran = await self.run_due()
            except StoreUnavailable as exc:
                self._log.error("cannot read timers", error=str(exc))
            except Fenced as exc:  # the timer is another replica's to run again
                self._log.error("timers stopped: replica fenced", error=str(exc))
            async with self._passed:
                self._finished, self._last_ran = self._begun, ran
                self._passed.notify_all()
