"""Durable intake with group commit: many webhook requests, one transaction, one fsync.

Each request puts its parsed notification on a bounded queue and waits for the writer to
commit it; only then does the webhook answer 2xx. The writer takes whatever is queued (up to
`batch_max`) into one transaction, which is what lets durable recording keep up with
Alertmanager at high rates.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable
from datetime import UTC, datetime

from remediator.alertmanager import Alert, Notification
from remediator.engine.dispatch import Dispatcher
from remediator.logs import get_logger
from remediator.metrics import Metrics
from remediator.store import Store, StoreUnavailable
from remediator.store.records import IncomingNotification, Recorded

_Pending = tuple[IncomingNotification, "asyncio.Future[Recorded]"]


class IntakeFull(Exception):
    """Too many notifications are waiting to be recorded: answer 503 so Alertmanager retries."""


class Intake:
    def __init__(
        self,
        store: Store,
        dispatcher: Dispatcher,
        metrics: Metrics,
        *,
        max_pending: int = 2048,
        batch_max: int = 256,
        needs_work: Callable[[Alert], bool] | None = None,
    ) -> None:
        self._store = store
        self._dispatcher = dispatcher
        self._metrics = metrics
        self._queue: asyncio.Queue[_Pending] = asyncio.Queue(maxsize=max_pending)
        self._batch_max = batch_max
        self._needs_work = needs_work
        self._tasks: list[asyncio.Task[None]] = []
        self._log = get_logger(component="intake")

    async def start(self) -> None:
        # Two writers: one records a batch while the other waits for its commit.
        self._tasks = [asyncio.create_task(self._writer()) for _ in range(2)]

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._tasks = []
        while not self._queue.empty():
            _, future = self._queue.get_nowait()
            if not future.done():
                future.set_exception(StoreUnavailable("the daemon is stopping"))

    async def submit(self, notification: Notification, body: bytes) -> Recorded:
        """Return once the notification is durably recorded; raise IntakeFull/StoreUnavailable."""
        future: asyncio.Future[Recorded] = asyncio.get_running_loop().create_future()
        incoming = IncomingNotification(notification, body, datetime.now(UTC))
        try:
            self._queue.put_nowait((incoming, future))
        except asyncio.QueueFull:
            raise IntakeFull("intake queue is full") from None
        self._metrics.intake_depth.set(self._queue.qsize())
        # Shielded: a client that hangs up must not cancel a write others share.
        return await asyncio.shield(future)

    async def _writer(self) -> None:
        while True:
            batch = [await self._queue.get()]
            while len(batch) < self._batch_max and not self._queue.empty():
                batch.append(self._queue.get_nowait())
            self._metrics.intake_depth.set(self._queue.qsize())
            await self._commit(batch)

    async def _commit(self, batch: list[_Pending]) -> None:
        started = time.perf_counter()
        try:
            results = await self._store.record_notifications(
                [incoming for incoming, _ in batch], self._needs_work
            )
        except Exception as exc:
            if len(batch) > 1 and not isinstance(exc, StoreUnavailable):
                # One bad notification must not fail the others: retry them one by one.
                for pending in batch:
                    await self._commit([pending])
                return
            self._log.error("recording failed", error=str(exc), notifications=len(batch))
            failure = exc if isinstance(exc, StoreUnavailable) else StoreUnavailable(str(exc))
            for _, future in batch:
                if not future.done():
                    future.set_exception(failure)
            return
        self._metrics.intake_batch_seconds.observe(time.perf_counter() - started)
        self._metrics.intake_batch_size.observe(len(batch))
        for (_, future), recorded in zip(batch, results, strict=True):
            if not future.done():
                future.set_result(recorded)
            self._metrics.episodes_opened.inc(recorded.new_episodes)
            self._metrics.episodes_closed.inc(recorded.resolved_episodes)
            self._dispatcher.offer(recorded.work)
