"""Durable intake with group commit: many webhook requests, one append, one sync.

Each request puts its validated notification on a bounded list and waits until the writer
has journaled it; only then does the webhook answer 2xx. The writer takes whatever is waiting
(up to `batch_max`) into one append and one sync, which is what lets durable recording keep up
with Alertmanager at high rates. Turning the journal into episodes is the digester's job
(engine/intake/digest.py), off the request path.
"""

from __future__ import annotations

import asyncio
import time

from remediator.alertmanager import NotificationData
from remediator.clock import Clock
from remediator.engine.intake.digest import Digester
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
        clock: Clock,
    ) -> None:
        self._store = store
        self._clock = clock
        self._digester = digester
        self._metrics = metrics
        self._pending: list[_Pending] = []
        self._max_pending = max_pending
        self._batch_max = batch_max
        self._max_backlog = max_backlog
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._log = get_logger(component="intake")

    @property
    def queued(self) -> int:
        """Notifications waiting for the writer, not yet taken into a batch."""
        return len(self._pending)

    async def start(self) -> None:
        # One writer: while it waits for a batch to be durable, the next batch gathers.
        self._task = asyncio.create_task(self._writer())

    async def stop(self) -> None:
        await stop_tasks([self._task])
        self._task = None
        pending, self._pending = self._pending, []
        _fail(pending, StoreUnavailable("the daemon is stopping"))

    async def submit(self, data: NotificationData, body: bytes) -> str:
        """Return the notification's id once it is durably journaled; raise IntakeFull or
        StoreUnavailable when it cannot be now."""
        if self._digester.backlog + len(self._pending) >= self._max_backlog:
            raise IntakeFull(f"{self._digester.backlog} notifications are waiting to be digested")
        if len(self._pending) >= self._max_pending:
            raise IntakeFull("intake queue is full")
        future: asyncio.Future[str] = asyncio.get_running_loop().create_future()
        self._pending.append((IncomingNotification(data, body, self._clock.now()), future))
        self._wake.set()
        # Not shielded: the queued entry is written whoever waits for it, so a client that
        # hangs up cancels only its own wait (and the writer skips its cancelled future).
        return await future

    async def _writer(self) -> None:
        while True:
            await self._wake.wait()
            self._wake.clear()
            while self._pending:
                batch = self._pending[: self._batch_max]
                del self._pending[: self._batch_max]
                self._metrics.intake_depth.set(len(self._pending))
                await self._commit(batch)

    async def _commit(self, batch: list[_Pending]) -> None:
        started = time.perf_counter()
        try:
            ids = await self._store.journal([incoming for incoming, _ in batch])
        except asyncio.CancelledError:
            # Stopping mid-write: whether it reached the disk is unknown, so the senders get a
            # 503 and Alertmanager sends again (a second copy is a re-send, which is harmless).
            _fail(batch, StoreUnavailable("the daemon is stopping"))
            raise
        except Exception as exc:
            self._log.error("recording failed", error=str(exc), notifications=len(batch))
            _fail(batch, exc if isinstance(exc, StoreUnavailable) else StoreUnavailable(str(exc)))
            return
        self._metrics.intake_batch_seconds.observe(time.perf_counter() - started)
        self._metrics.intake_batch_size.observe(len(batch))
        self._digester.journaled(ids, [incoming.data for incoming, _ in batch])
        for (_, future), nid in zip(batch, ids, strict=True):
            if not future.done():
                future.set_result(nid)


def _fail(batch: list[_Pending], failure: StoreUnavailable) -> None:
    for _, future in batch:
        if not future.done():
            future.set_exception(failure)
