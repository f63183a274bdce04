"""The digester: turns journaled notifications into episodes, decisions and dispatch work.

The webhook answers once a notification is in the journal (engine/intake/intake.py); everything that
costs per alert happens here, in journal order, one transaction per slice that also marks the
slice digested. What a slice changes is decided by engine/intake/digest_plan.py (pure); the store
only reads what is known of its episodes and applies the plan. A crash between the two leaves
the notification undigested, so it is digested again on start: exactly once, never lost. The
journal lives in the store, not in memory, so a backlog costs disk, not RAM; intake refuses
(503) when the backlog reaches its bound.

With replicas sharing the store, every replica's digester reads the one journal (the store
lets one of them digest each slice), and polls it every `poll_seconds`: another replica's
webhook may have journaled what no local wake-up announces.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence

from remediator.alertmanager import Limits, NotificationData, PayloadError
from remediator.alertmanager import validate_notification as validate
from remediator.clock import Clock
from remediator.engine.intake import digest_plan
from remediator.engine.intake.dispatch import Dispatcher
from remediator.logs import get_logger
from remediator.metrics import Metrics
from remediator.store import SliceTaken, Store, StoreUnavailable
from remediator.store.records import Digested, JournalEntry, WorkItem
from remediator.tasks import stop_tasks

# The webhook enforced its limits when it accepted a notification; replaying it must not
# depend on limits configured since, so the journal is read without them.
_REPLAY = Limits(max_alerts=2**31, max_labels=2**31, max_value_chars=2**31)
_RETRY_SECONDS = (0.1, 0.5, 1.0, 2.0, 5.0)
Admit = Callable[[Sequence[WorkItem]], Awaitable[list[WorkItem]]]


class Digester:
    def __init__(
        self,
        store: Store,
        dispatcher: Dispatcher,
        metrics: Metrics,
        *,
        needs_work: Callable[[Mapping[str, str]], bool] | None = None,
        admit: Admit | None = None,
        slice_size: int = 8,
        handoff_max: int = 128,
        clock: Clock,
        poll_seconds: float = 1.0,
    ) -> None:
        self._store = store
        # A shared store: look at the journal every poll (real time: the world's wait).
        self._poll = poll_seconds if store.shared else None
        self._clock = clock
        self._dispatcher = dispatcher
        self._metrics = metrics
        self._needs_work = needs_work
        # The storm watch: sees a slice's firing alerts before any of them is dispatched.
        self._admit = admit
        self._slice = slice_size
        self._backlog = 0
        # Intake's validated data, by notification id, so the digester need not parse the
        # body a second time. Bounded: past it (a burst, a restart) the journal is parsed.
        self._handoff: dict[str, NotificationData] = {}
        self._handoff_max = handoff_max
        self._wake = asyncio.Event()
        self._idle = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._log = get_logger(component="digest")

    @property
    def backlog(self) -> int:
        """Notifications journaled and not yet digested."""
        return max(0, self._backlog)

    async def start(self) -> None:
        # What an earlier process acknowledged but never digested goes first.
        self._backlog = await self._store.count_undigested()
        self._metrics.digest_backlog.set(self.backlog)
        self._task = asyncio.create_task(self._run())

    async def stop(self) -> None:
        await stop_tasks([self._task])
        self._task = None

    def journaled(self, ids: Sequence[str], data: Sequence[NotificationData]) -> None:
        """Intake committed these notifications to the journal."""
        for nid, item in zip(ids, data, strict=True):
            if len(self._handoff) >= self._handoff_max:
                break
            self._handoff[nid] = item
        self._backlog += len(ids)
        self._metrics.digest_backlog.set(self.backlog)
        self._idle.clear()
        self._wake.set()

    async def drained(self) -> None:
        """Wait until everything journaled so far is digested."""
        await self._idle.wait()  # set only when the journal was found empty

    async def _run(self) -> None:
        failures = 0
        while True:
            self._wake.clear()
            try:
                entries = await self._store.undigested(self._slice)
                if entries:
                    await self._digest(entries)
                failures = 0
            except SliceTaken as exc:
                # Another replica digested (part of) the slice since it was read: nothing was
                # written and nothing failed; read the journal again at once.
                self._log.debug("slice digested by another replica; reading again", error=str(exc))
                await asyncio.sleep(0)
                continue
            except Exception as exc:
                # Never die: a dead digester would leave intake answering 2xx until the
                # backlog fills. A store that is down heals; anything else is logged loudly.
                delay = _RETRY_SECONDS[min(failures, len(_RETRY_SECONDS) - 1)]
                failures += 1
                self._metrics.digest_failures.inc()
                if isinstance(exc, StoreUnavailable):
                    self._log.warning("digest failed; retrying", error=str(exc), retry_in=delay)
                else:
                    self._log.exception("digest failed unexpectedly; retrying", retry_in=delay)
                await asyncio.sleep(delay)
                continue
            if not entries:
                if not self._wake.is_set():  # else more was journaled while we looked
                    self._backlog = 0  # nothing is left, whatever the count said
                    self._metrics.digest_backlog.set(0)
                    self._idle.set()
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(self._poll):
                        await self._wake.wait()
            else:
                await asyncio.sleep(0)  # one slice at a time: the webhook comes first

    async def _digest(self, entries: list[JournalEntry]) -> None:
        started = time.perf_counter()
        slice_ = digest_plan.keyed([(entry, self._data(entry)) for entry in entries])
        async with self._store.digesting(slice_.episode_ids) as transaction:
            plan = digest_plan.plan_digest(
                slice_, transaction.known, self._needs_work, self._clock.now()
            )
            await transaction.apply(plan)
        results: list[Digested] = plan.results
        self._backlog -= len(entries)
        self._metrics.digest_backlog.set(self.backlog)
        self._metrics.digest_seconds.observe(time.perf_counter() - started)
        work: list[WorkItem] = []
        for result in results:
            self._metrics.episodes_opened.inc(result.new_episodes)
            self._metrics.episodes_closed.inc(result.resolved_episodes)
            work += result.work
        if self._admit is not None and work:
            try:
                work = await self._admit(work)
            except StoreUnavailable as exc:
                # Digested and recorded as pending: the sweeper brings it back, and the
                # pipeline asks the storm watch again before running anything.
                self._log.warning("storm watch failed; work left to the sweeper", error=str(exc))
                self._dispatcher.sweep_soon()
                return
        self._dispatcher.offer(work)

    def _data(self, entry: JournalEntry) -> NotificationData:
        if entry.id in self._handoff:
            return self._handoff.pop(entry.id)
        return self._parse(entry)

    def _parse(self, entry: JournalEntry) -> NotificationData:
        try:
            return validate(entry.body, _REPLAY)
        except PayloadError as exc:
            # Only a journal written by something else could get here; keep the row (it is
            # the evidence) and move on rather than stop digesting everything behind it.
            self._log.error(
                "journaled notification unreadable", notification=entry.id, error=exc.message
            )
            return {"version": "4", "status": "firing", "alerts": []}
