"""Background dispatch: a bounded queue, a pool of workers, never the webhook's request.

The queue is a window onto durable state: work is recorded in the store before it is queued,
and marked handled only when a worker is done with it. When the queue is full, work simply stays
in the store and is loaded again as room frees up; after a restart, the same sweep finds what
was recorded but not yet handled. Nothing is lost and nothing waits in the webhook.

Each item is claimed (`store.claim_work`) before a worker runs it, so with replicas sharing the
store one of them dispatches it; there the sweeper also runs every `sweep_interval`, since
work another replica recorded, or a fenced replica left, was never offered here.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable, Iterable

from remediator.logs import get_logger
from remediator.metrics import Metrics
from remediator.store import Fenced, Store, StoreUnavailable
from remediator.store.records import WorkItem, WorkKind
from remediator.tasks import stop_tasks

Handler = Callable[[WorkItem], Awaitable[None]]
_PAGE = 256  # pending work loaded per sweep


class Dispatcher:
    def __init__(
        self,
        store: Store,
        handler: Handler,
        metrics: Metrics,
        *,
        queue_size: int,
        workers: int,
        sweep_interval: float = 5.0,
    ) -> None:
        self._store = store
        self._handler = handler
        self._metrics = metrics
        self._queue: asyncio.Queue[WorkItem] = asyncio.Queue(maxsize=queue_size)
        self._workers = workers
        self._sweep_interval = sweep_interval
        self._shared = store.shared  # other replicas record and leave work too
        # (kind, episode) queued or in progress: a sweep must not queue them a second time.
        self._inflight: set[tuple[str, str]] = set()
        self._overflowed = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []
        self._idle = asyncio.Event()
        self._idle.set()
        self._log = get_logger(component="dispatch")

    @property
    def depth(self) -> int:
        return self._queue.qsize()

    async def start(self) -> None:
        self._tasks = [asyncio.create_task(self._worker(i)) for i in range(self._workers)]
        self._tasks.append(asyncio.create_task(self._sweeper()))
        self._overflowed.set()  # first sweep loads what an earlier process left behind

    async def stop(self) -> None:
        await stop_tasks(self._tasks)
        self._tasks = []

    def offer(self, items: Iterable[WorkItem]) -> None:
        for item in items:
            key = (item.kind.value, item.episode_id)
            if key in self._inflight:
                continue
            try:
                self._queue.put_nowait(item)
            except asyncio.QueueFull:
                self._overflowed.set()  # stays pending in the store; the sweeper brings it back
                continue
            self._inflight.add(key)
            self._idle.clear()
        self._metrics.queue_depth.set(self._queue.qsize())

    def sweep_soon(self) -> None:
        """Work was recorded but not offered (e.g. the storm watch could not decide on it):
        the sweeper loads it from the store."""
        self._overflowed.set()

    async def drained(self) -> None:
        """Wait until nothing is queued or running (tests and graceful shutdown)."""
        await self._idle.wait()

    async def _worker(self, number: int) -> None:
        while True:
            item = await self._queue.get()
            self._metrics.queue_depth.set(self._queue.qsize())
            try:
                if await self._store.claim_work(item):
                    self._metrics.claims.labels(kind="work").inc()
                    await self._handler(item)
                    await self._store.mark_handled(item)
            except Fenced as exc:
                # This replica lost its lease: what it held is reconciled by another.
                self._log.error("dispatch stopped: replica fenced", error=str(exc))
            except StoreUnavailable as exc:
                # Left unhandled in the store: the sweeper retries it when the store is back.
                self._log.error("store unavailable during dispatch", error=str(exc))
                self._overflowed.set()
            except Exception:
                self._log.exception("dispatch failed", episode=item.episode_id)
                with contextlib.suppress(StoreUnavailable):
                    await self._store.mark_handled(item)
            finally:
                self._inflight.discard((item.kind.value, item.episode_id))
                self._queue.task_done()
                if not self._inflight:
                    self._idle.set()

    async def _sweeper(self) -> None:
        # Pages through pending work by episode id, so a long backlog is loaded a page at a
        # time as the queue drains, never re-read whole (that cost the webhook dearly).
        after = {kind: "" for kind in WorkKind}
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._overflowed.wait(), self._sweep_interval)
            if not self._overflowed.is_set() and not self._shared:
                continue
            room = self._queue.maxsize - self._queue.qsize()
            if room < min(_PAGE, self._queue.maxsize):
                await asyncio.sleep(0.05)  # wait for real room rather than sweeping for crumbs
                continue
            self._overflowed.clear()
            for kind in WorkKind:
                try:
                    page = await self._store.pending_work(kind, _PAGE, after[kind])
                except StoreUnavailable as exc:
                    self._log.error("cannot load pending work", error=str(exc))
                    self._overflowed.set()
                    await asyncio.sleep(self._sweep_interval)
                    break
                self.offer(i for i in page if (i.kind.value, i.episode_id) not in self._inflight)
                if len(page) == _PAGE:
                    after[kind] = page[-1].episode_id
                    self._overflowed.set()
                else:
                    after[kind] = ""  # reached the end: the next sweep starts over
