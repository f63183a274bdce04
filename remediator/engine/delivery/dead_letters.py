"""Humans hear about dead letters once per burst, and never about a dead letter of that news.

The outbox dead-letters a message a channel refused for good or could not render (see
engine/delivery/outbox.py). The first dead letter escalates at once, to every channel; the ones that
follow within `dead_letter_window_seconds` are only counted (in `/metrics`, in the admin API's
list, and in the next escalation), so a broken channel or a rendering bug that hits a hundred
reports pages once, not a hundred times. A dead-lettered escalation about dead letters is never
escalated again: that would loop on a channel that refuses everything.
"""

from __future__ import annotations

from remediator.clock import Clock
from remediator.config import DeliverySettings
from remediator.engine.hooks import Escalator
from remediator.logs import get_logger
from remediator.store.records import OutboxItem

DEAD_LETTER = "dead_letter"  # escalation kind


class DeadLetterAlarm:
    """The outbox's `on_dead_letter`: one escalation per burst of dead letters."""

    def __init__(
        self,
        escalator: Escalator,
        settings: DeliverySettings,
        clock: Clock,
    ) -> None:
        self._escalator = escalator
        self._window = settings.dead_letter_window_seconds
        self._clock = clock
        self._quiet_until: float | None = None
        self._unreported = 0  # dead letters since the last escalation, not escalated
        self._log = get_logger(component="dead_letters")

    async def __call__(self, item: OutboxItem, error: str) -> None:
        if item.payload.get("kind") == DEAD_LETTER:
            self._log.error(
                "an escalation about dead letters was dead-lettered itself; not escalated again",
                channel=item.channel,
                item=item.id,
            )
            return
        at = self._clock.monotonic()
        if self._quiet_until is not None and at < self._quiet_until:
            self._unreported += 1
            return
        self._quiet_until = at + self._window
        earlier, self._unreported = self._unreported, 0
        reason = (
            f"a {item.kind} for {item.channel} could not be delivered ({error}); it is "
            "dead-lettered: see /admin/dead-letters to re-send it"
        )
        if earlier:
            reason += f" ({earlier} more dead letters since the last escalation)"
        key = f"dead-letters-{self._clock.now():%Y%m%dT%H%M%S}Z"
        await self._escalator.escalate(
            key,
            None,
            reason,
            {
                "kind": DEAD_LETTER,
                "channel": item.channel,
                "outbox_id": item.id,
                "message_kind": item.kind,
                "episode": item.episode_id,
                "error": error,
                "unreported_before": earlier,
                "quiet_seconds": self._window,
            },
        )
