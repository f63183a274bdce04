"""Escalation: record it durably, then queue it for every configured channel.

The pipeline never waits for Slack, PagerDuty or a webhook: an escalation is a row in the
record plus one outbox row per channel, delivered by engine/outbox.py. Each queued message is a
self-contained document (what fired, where, why, the evidence), so delivery after a restart
needs nothing else. Two kinds of escalation are recorded but not delivered, because a human was
already told or nothing would have been done anyway: refusals by the open storm breaker (it
paged once for all of them) and refusals in shadow mode. Other escalations in shadow mode
(a shadow run failed, the breaker opened while every playbook is in shadow mode) go to the
Slack report only, as "would have escalated", unless `escalation.page_in_shadow` asks for
pages: a new install watches, it does not wake anyone. When the alert resolves, the channels
that were told get a resolve (PagerDuty closes the incident with the same dedup_key).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from remediator.engine.channels import PAGERDUTY, SLACK, WEBHOOK
from remediator.engine.guards.storm import NAME as STORM_BREAKER
from remediator.engine.hooks import RecordingEscalator
from remediator.engine.outbox import Outbox
from remediator.engine.report import SLACK_REPORT
from remediator.metrics import Metrics
from remediator.store import Store

ESCALATION = "escalation"  # outbox kinds
RESOLVED = "resolved"
# Channels that close what an escalation opened; Slack mentions are not closed.
RESOLVING_CHANNELS = (PAGERDUTY, WEBHOOK)


def not_delivered_because(details: dict[str, Any]) -> str | None:
    if details.get("kind") != "refused":
        return None
    if details.get("guard") == STORM_BREAKER:
        return "covered by the storm breaker's page"
    if details.get("mode") == "shadow":
        return "shadow mode: nothing would have been changed"
    return None


class Escalation:
    """The engine's Escalator: RecordingEscalator plus delivery through the outbox."""

    def __init__(
        self, store: Store, metrics: Metrics, outbox: Outbox, *, page_in_shadow: bool = False
    ) -> None:
        self._store = store
        self._page_in_shadow = page_in_shadow
        self._record = RecordingEscalator(store, metrics)
        self._outbox = outbox
        self._channels = outbox.channels

    async def escalate(
        self, episode_id: str, run_id: int | None, reason: str, details: dict[str, Any]
    ) -> None:
        skipped = not_delivered_because(details)
        channels = [] if skipped else list(self._channels)
        shadow = details.get("mode") == "shadow" and not self._page_in_shadow
        if shadow:
            channels = self._shadow_channels(channels)
        recorded = {**details, "channels": channels}
        if skipped:
            recorded["not_delivered"] = skipped
        if shadow:
            recorded["shadow"] = "would have escalated: shadow mode does not page"
        await self._record.escalate(episode_id, run_id, reason, recorded)
        if not channels:
            return
        document = await self._document(episode_id, run_id, reason, details)
        if shadow:
            document["shadow"] = True
        for channel in channels:
            await self._outbox.enqueue(channel, episode_id, ESCALATION, document)

    @staticmethod
    def _shadow_channels(channels: list[str]) -> list[str]:
        """The Slack report, or else the Slack escalation channel (without its mention)."""
        for quiet in (SLACK_REPORT, SLACK):
            if quiet in channels:
                return [quiet]
        return []

    async def resolved(self, episode_id: str) -> None:
        told = {
            channel
            for record in await self._store.escalations_for(episode_id)
            for channel in record.details.get("channels", [])
        }
        document = {
            "event": RESOLVED,
            "key": episode_id,
            "at": datetime.now(UTC).isoformat(),
        }
        for channel in RESOLVING_CHANNELS:
            if channel in told and channel in self._channels:
                await self._outbox.enqueue(channel, episode_id, RESOLVED, document)

    async def _document(
        self, episode_id: str, run_id: int | None, reason: str, details: dict[str, Any]
    ) -> dict[str, Any]:
        episode = await self._store.get_episode(episode_id)
        labels = episode.labels if episode is not None else {}
        return {
            "event": ESCALATION,
            "key": episode_id,  # the PagerDuty dedup_key: one incident per episode
            "episode": episode.id if episode is not None else None,
            "run_id": run_id,
            "reason": reason,
            "kind": details.get("kind", "other"),
            "alertname": episode.alertname if episode is not None else None,
            "severity": labels.get("severity"),
            "labels": labels,
            "summary": (episode.annotations.get("summary") if episode is not None else None),
            "generator_url": episode.generator_url if episode is not None else None,
            "playbook": details.get("playbook"),
            "target": details.get("target"),
            "details": details,
            "at": datetime.now(UTC).isoformat(),
        }
