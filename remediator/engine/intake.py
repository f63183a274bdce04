"""Durable intake with group commit: many webhook requests, one transaction, one fsync.

Each request puts its validated notification on a bounded queue and waits until the writer
has journaled it; only then does the webhook answer 2xx. The writer takes whatever is queued
(up to `batch_max`) into one transaction, which is what lets durable recording keep up with
Alertmanager at high rates. Turning the journal into episodes is the digester's job
(engine/digest.py), off the request path.
"""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime

from remediator.alertmanager import NotificationData
from remediator.engine.digest import Digester
from remediator.logs import get_logger
from remediator.metrics import Metrics
from remediator.store import Store, StoreUnavailable
from remediator.store.records import IncomingNotification
from remediator.tasks import stop_tasks

_Pending = tuple[IncomingNotification, "asyncio.Future[str]"]


class IntakeFull(Exception):
    """Too much is waiting to be recorded or digested: answer 503 so Alertmanager retries."""


class Intake:
    def __init__(
        self,
        store: Store,
        digester: Digester,
        metrics: Metrics,
        *,
        max_pending: int = 2048,
        batch_max: int = 256,
        max_backlog: int = 10_000,
    ) -> None:
        self._store = store
        self._digester = digester
        self._metrics = metrics
        self._queue: asyncio.Queue[_Pending] = asyncio.Queue(maxsize=max_pending)
        self._batch_max = batch_max
        self._max_backlog = max_backlog
        self._tasks: list[asyncio.Task[None]] = []
        self._log = get_logger(component="intake")

    async def start(self) -> None:
        # Two writers: one journals a batch while the other waits for its commit.
        self._tasks = [asyncio.create_task(self._writer()) for _ in range(2)]

    async def stop(self) -> None:
        await stop_tasks(self._tasks)
        self._tasks = []
        while not self._queue.empty():
            _, future = self._queue.get_nowait()
            if not future.done():
                future.set_exception(StoreUnavailable("the daemon is stopping"))

    async def submit(self, data: NotificationData, body: bytes) -> str:
        """Return the notification's id once it is durably journaled; raise IntakeFull or
        StoreUnavailable when it cannot be now."""
        if self._digester.backlog + self._queue.qsize() >= self._max_backlog:
            raise IntakeFull(f"{self._digester.backlog} notifications are waiting to be digested")
        future: asyncio.Future[str] = asyncio.get_running_loop().create_future()
        try:
            self._queue.put_nowait((IncomingNotification(data, body, datetime.now(UTC)), future))
        except asyncio.QueueFull:
            raise IntakeFull("intake queue is full") from None
        # Not shielded: the queued entry is written whoever waits for it, so a client that
        # hangs up cancels only its own wait (and the writer skips its cancelled future).
        return await future

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
            ids = await self._store.journal([incoming for incoming, _ in batch])
        except Exception as exc:
            self._log.error("recording failed", error=str(exc), notifications=len(batch))
            failure = exc if isinstance(exc, StoreUnavailable) else StoreUnavailable(str(exc))
            for _, future in batch:
                if not future.done():
                    future.set_exception(failure)
            return
        self._metrics.intake_batch_seconds.observe(time.perf_counter() - started)
        self._metrics.intake_batch_size.observe(len(batch))
        self._digester.journaled(ids, [incoming.data for incoming, _ in batch])
        for (_, future), nid in zip(batch, ids, strict=True):
            if not future.done():
                future.set_result(nid)
