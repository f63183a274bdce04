"""Delivery of queued messages (escalations now, Slack reports later) from the durable outbox.

Nothing that talks to a channel runs in the pipeline: the pipeline writes a row and moves on,
and one task per channel delivers that channel's rows in order (a PagerDuty resolve must not
overtake its trigger). A failed delivery is retried quickly a couple of times (tenacity), then
the row gets a next attempt time from a capped exponential backoff with jitter (tenacity's wait
strategy, evaluated for the row's attempt count and persisted), or exactly what the channel
asked for in Retry-After. The head of a channel blocks the rows behind it until it is
delivered; a channel that is down shows up as `remediator_outbox_pending{channel}` rising,
`remediator_escalation_deliveries_total{result="error"}` and a warning per failed attempt.

A message that can never be delivered as it is must not block the rest: when the receiver
refuses it for good (`DeliveryError.permanent`: a 4xx other than 408/425/429, a permanent
Slack error) or it cannot even be rendered (any other exception: a bug in one message), it is
dead-lettered after its quick retries. The channel goes on with the next row; the dead letter
is counted (`remediator_escalation_deliveries_total{result="dead_letter"}`,
`remediator_outbox_dead_letters{channel}`), kept for the admin API's re-send, and handed to
`on_dead_letter` (engine/dead_letters.py escalates it, aggregated).

With replicas sharing the store, each channel has one deliverer at a time: a channel's task
delivers only while this replica holds the channel's lease (`store.hold_channel`, renewed
before each attempt); the others poll, and take over when it lapses, from the head.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

from tenacity import (
    AsyncRetrying,
    RetryCallState,
    retry_if_exception,
    stop_after_attempt,
    wait_exponential_jitter,
)

from remediator.clients.delivery import DeliveryError
from remediator.clock import Clock
from remediator.config import DeliverySettings
from remediator.logs import get_logger
from remediator.metrics import Metrics
from remediator.store import Store, StoreUnavailable
from remediator.store.records import OutboxItem
from remediator.tasks import stop_tasks

Deliver = Callable[[OutboxItem], Awaitable[None]]
# Told about each dead letter with the error that killed it (after it was recorded).
DeadLetterSink = Callable[[OutboxItem, str], Awaitable[None]]
# Seconds a queued item waits after it was queued before its first attempt (e.g. reports
# wait a moment so that a storm of them can be summarised in one message).
Hold = Callable[[OutboxItem], float]

# due_outbox(channel, _ANY_TIME, 1) is the head of the channel whatever its retry time.
_ANY_TIME = datetime(9999, 1, 1, tzinfo=UTC)


def _permanent(exc: BaseException) -> bool:
    """Can never succeed as it is: refused for good, or failed before anything was sent (a
    rendering bug). The store being unavailable is not the message's fault."""
    if isinstance(exc, DeliveryError):
        return exc.permanent
    return isinstance(exc, Exception) and not isinstance(exc, StoreUnavailable)


def _quick_retry(exc: BaseException) -> bool:
    """Worth an immediate retry: a network error, a 5xx, or a refusal that may be a fluke (its
    retries before it is dead-lettered); never an explicit wait (Retry-After)."""
    if _permanent(exc):
        return True
    return (
        isinstance(exc, DeliveryError)
        and exc.retry_after is None
        and (exc.status is None or exc.status >= 500)
    )


class Outbox:
    def __init__(
        self,
        store: Store,
        metrics: Metrics,
        channels: Mapping[str, Deliver],
        settings: DeliverySettings,
        holds: Mapping[str, Hold] | None = None,
        *,
        clock: Clock,
        lease_seconds: float = 30.0,
    ) -> None:
        self._store = store
        self._lease = lease_seconds
        self._holding: set[str] = set()  # channels whose lease this replica holds
        self._clock = clock
        self._holds = dict(holds or {})
        self._metrics = metrics
        self._channels = dict(channels)
        self._settings = settings
        self._backoff = wait_exponential_jitter(
            multiplier=settings.initial_backoff_seconds,
            max=settings.max_backoff_seconds,
            jitter=settings.jitter_seconds,
        )
        self._wake = {name: asyncio.Event() for name in self._channels}
        # Passes of each channel's loop begun and finished; a condition told after each one.
        self._begun = dict.fromkeys(self._channels, 0)
        self._finished = dict.fromkeys(self._channels, 0)
        self._passed = asyncio.Condition()
        self._tasks: list[asyncio.Task[None]] = []
        self._log = get_logger(component="outbox")
        self.on_dead_letter: DeadLetterSink | None = None

    @property
    def channels(self) -> list[str]:
        return list(self._channels)

    async def enqueue(
        self, channel: str, episode_id: str | None, kind: str, payload: dict[str, Any]
    ) -> int:
        """Queue a message durably; its channel's task delivers it soon after."""
        if channel not in self._channels:
            raise KeyError(f"no outbox channel {channel!r}")
        item_id = await self._store.enqueue_outbox(channel, episode_id, kind, payload)
        self._wake[channel].set()
        await self._update_pending()
        return item_id

    async def start(self) -> None:
        await self._update_pending()
        await self._update_dead()
        self._tasks = [asyncio.create_task(self._loop(name)) for name in self._channels]

    async def settled(self) -> None:
        """Until every channel's loop has made a pass that began after this call: each message
        that was due then has had its attempt (for a test that advanced a manual clock; a test
        that proves nothing was sent waits for this, not a sleep)."""
        if not self._tasks:
            return
        async with self._passed:
            after = dict(self._begun)
            for wake in self._wake.values():
                wake.set()
            await self._passed.wait_for(
                lambda: (
                    all(self._finished[name] > after[name] for name in self._channels)
                    or any(task.done() for task in self._tasks)
                )
            )

    async def stop(self) -> None:
        await stop_tasks(self._tasks)
        self._tasks = []

    async def resend(self, item_id: int, *, who: str, reason: str) -> OutboxItem | None:
        """Queue a dead letter again (audited); None when `item_id` is not a dead letter."""
        item = await self._store.resend_dead_letter(item_id, who=who, reason=reason)
        if item is not None:
            if item.channel in self._wake:
                self._wake[item.channel].set()
            await self._update_dead()
            await self._update_pending()
        return item

    async def deliver_due(self, channel: str) -> float:
        """Deliver the channel's due messages in order; return seconds until the head is due
        (or the poll interval when nothing waits)."""
        while True:
            head = await self._store.due_outbox(channel, _ANY_TIME, 1)
            if not head:
                return self._settings.poll_seconds
            due = head[0].next_attempt_at
            hold = self._holds.get(channel)
            if hold is not None:
                due = max(due, head[0].created_at + timedelta(seconds=hold(head[0])))
            wait = (due - self._clock.now()).total_seconds()
            if wait > 0:
                return min(wait, self._settings.poll_seconds)
            if not await self._hold(channel):
                return self._settings.poll_seconds  # another replica delivers it
            await self._attempt(channel, head[0])

    async def _hold(self, channel: str) -> bool:
        held = await self._store.hold_channel(channel, self._lease)
        if held and channel not in self._holding:
            self._metrics.claims.labels(kind="channel").inc()
            self._holding.add(channel)
        elif not held:
            self._holding.discard(channel)
        return held

    async def _loop(self, channel: str) -> None:
        wake = self._wake[channel]
        while True:
            wake.clear()
            self._begun[channel] += 1
            try:
                wait = await self.deliver_due(channel)
            except StoreUnavailable as exc:
                self._log.error("cannot read the outbox", channel=channel, error=str(exc))
                wait = self._settings.poll_seconds
            async with self._passed:
                self._finished[channel] = self._begun[channel]
                self._passed.notify_all()
            await self._clock.wait(wake, wait)

    async def _attempt(self, channel: str, item: OutboxItem) -> None:
        s = self._settings
        retrying = AsyncRetrying(
            stop=stop_after_attempt(s.quick_retries + 1),
            wait=wait_exponential_jitter(
                multiplier=s.quick_wait_seconds,
                max=s.quick_wait_seconds * 4,
                jitter=s.quick_wait_seconds,
            ),
            retry=retry_if_exception(_quick_retry),
            reraise=True,
        )
        retry_after: float | None = None
        try:
            async for attempt in retrying:
                with attempt:
                    await self._channels[channel](item)
        except Exception as exc:  # a formatting bug must not stop the channel's task
            if _permanent(exc):
                await self._dead(channel, item, exc)
                return
            error = str(exc) if isinstance(exc, DeliveryError) else f"{type(exc).__name__}: {exc}"
            retry_after = exc.retry_after if isinstance(exc, DeliveryError) else None
        else:
            await self._store.outbox_delivered(item.id, self._clock.now())
            self._metrics.escalation_deliveries.labels(channel=channel, result="ok").inc()
            await self._update_pending()
            return
        delay = retry_after if retry_after is not None else self.backoff(item.attempts + 1)
        await self._store.outbox_failed(
            item.id, error, self._clock.now() + timedelta(seconds=delay)
        )
        self._metrics.escalation_deliveries.labels(channel=channel, result="error").inc()
        await self._update_pending()
        self._log.warning(
            "delivery failed",
            channel=channel,
            item=item.id,
            kind=item.kind,
            attempts=item.attempts + 1,
            retry_in_seconds=round(delay, 3),
            error=error,
        )

    async def _dead(self, channel: str, item: OutboxItem, exc: Exception) -> None:
        rendering = not isinstance(exc, DeliveryError)
        error = f"cannot render: {type(exc).__name__}: {exc}" if rendering else f"refused: {exc}"
        await self._store.outbox_dead(item.id, error, self._clock.now())
        self._metrics.escalation_deliveries.labels(channel=channel, result="dead_letter").inc()
        await self._update_pending()
        await self._update_dead()
        self._log.error(
            "dead-lettered: the channel goes on without it (see /admin/dead-letters)",
            channel=channel,
            item=item.id,
            kind=item.kind,
            episode=item.episode_id,
            error=error,
            exc_info=exc if rendering else None,
        )
        if self.on_dead_letter is not None:
            try:
                await self.on_dead_letter(item, error)
            except Exception:  # telling humans must not stop the channel either
                self._log.exception("cannot escalate a dead letter", item=item.id)

    def backoff(self, attempts: int) -> float:
        """Seconds to wait after the `attempts`-th failed attempt (tenacity's strategy)."""
        state = RetryCallState(AsyncRetrying(), None, (), {})
        state.attempt_number = attempts
        return float(self._backoff(state))

    async def _update_pending(self) -> None:
        pending = await self._store.outbox_pending()
        for name in self._channels:
            self._metrics.outbox_pending.labels(channel=name).set(pending.get(name, 0))

    async def _update_dead(self) -> None:
        dead = await self._store.dead_letter_counts()
        for name in self._channels:
            self._metrics.outbox_dead_letters.labels(channel=name).set(dead.get(name, 0))
