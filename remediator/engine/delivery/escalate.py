"""Escalation: record it durably, then queue it for every configured channel.

The pipeline never waits for Slack, PagerDuty or a webhook: an escalation is a row in the
record plus one outbox row per channel, delivered by engine/delivery/outbox.py. Each queued
message is a self-contained document (what fired, where, why, the evidence), so delivery after
a restart needs nothing else. Two kinds of escalation are recorded but not delivered, because a
human was already told or nothing would have been done anyway: refusals by the open storm
breaker (it paged once for all of them) and refusals in shadow mode. Other escalations in
shadow mode (a shadow run failed, the breaker opened while every playbook is in shadow mode) go
to the Slack report only, as "would have escalated", unless `escalation.page_in_shadow` asks
for pages: a new install watches, it does not wake anyone. When the alert resolves, the
channels that were told get a resolve (PagerDuty closes the incident with the same dedup_key).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from remediator.clock import Clock
from remediator.engine.delivery.channels import PAGERDUTY, SLACK, WEBHOOK
from remediator.engine.delivery.escalation_policy import GROUP, SUMMARY, EscalationPolicy, Verdict
from remediator.engine.delivery.outbox import Outbox
from remediator.engine.delivery.report import SLACK_REPORT
from remediator.engine.guards.storm import NAME as STORM_BREAKER
from remediator.engine.hooks import RecordingEscalator
from remediator.engine.timers import Timers
from remediator.metrics import Metrics
from remediator.store import Store
from remediator.store.records import TimerRecord

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
        self,
        store: Store,
        metrics: Metrics,
        outbox: Outbox,
        *,
        page_in_shadow: bool = False,
        policy: EscalationPolicy | None = None,
        timers: Timers | None = None,
        clock: Clock,
    ) -> None:
        self._store = store
        self._clock = clock
        self._page_in_shadow = page_in_shadow
        self._policy = policy
        self._timers = timers
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
        verdict = (
            self._policy.decide(episode_id, details, channels)
            if self._policy and channels
            else None
        )
        if verdict is not None:
            channels = verdict.channels
        recorded = {**details, "channels": channels}
        if skipped:
            recorded["not_delivered"] = skipped
        if shadow:
            recorded["shadow"] = "would have escalated: shadow mode does not page"
        if verdict is not None:
            self._note(recorded, verdict)
        await self._record.escalate(episode_id, run_id, reason, recorded)
        if verdict is not None:
            await self._schedule(verdict)
        if not channels:
            return
        document = await self._document(episode_id, run_id, reason, details)
        if shadow:
            document["shadow"] = True
        for channel in channels:
            await self._outbox.enqueue(channel, episode_id, ESCALATION, document)

    @staticmethod
    def _note(recorded: dict[str, Any], verdict: Verdict) -> None:
        if verdict.group is not None:
            recorded["group"] = verdict.group
        if verdict.aggregated:
            recorded["not_delivered"] = (
                "counted with the refusals of the same kind in this window: one summary when "
                "it ends"
            )
        if verdict.over_budget:
            recorded["over_budget"] = verdict.over_budget

    async def _schedule(self, verdict: Verdict) -> None:
        for key, due, payload in verdict.summaries:
            await self._store.add_timer(SUMMARY, key, due_at=due, payload=payload)
        if verdict.summaries and self._timers is not None:
            self._timers.wake()

    async def on_summary(self, timer: TimerRecord) -> None:
        """A group's or a page budget's window ended: one summary of what was only counted."""
        payload = timer.payload
        since = datetime.fromisoformat(str(payload["since"]))
        recent = await self._store.escalations_since(since)
        if payload.get("type") == GROUP:
            counted = [e for e in recent if e.details.get("group") == timer.episode_id]
            if len(counted) < 2:
                return  # the one escalation said it all
            kind = str(payload.get("kind"))
            reason = (
                f"{len(counted)} refusals of the same kind ({kind}) since "
                f"{since.isoformat(timespec='seconds')}; the first was escalated, the others "
                "only counted"
            )
            channels = [c for c in self._channels if c in counted[0].details.get("channels", [])]
        else:
            channel = str(payload.get("channel"))
            counted = [e for e in recent if channel in e.details.get("over_budget", [])]
            if not counted:
                return
            reason = (
                f"{len(counted)} escalation(s) over the page budget of {channel} since "
                f"{since.isoformat(timespec='seconds')}, not sent one by one"
            )
            channels = [channel] if channel in self._channels else []
        details = {
            "kind": "summary",
            "count": len(counted),
            "episodes": [e.episode_id for e in counted][:200],
            "reasons": sorted({e.reason for e in counted})[:20],
        }
        await self._record.escalate(
            timer.episode_id, None, reason, {**details, "channels": channels}
        )
        document = {
            "event": ESCALATION,
            "key": timer.episode_id,
            "episode": None,
            "run_id": None,
            "reason": reason,
            "kind": "summary",
            "alertname": None,
            "labels": {},
            "details": details,
            "at": self._clock.now().isoformat(),
        }
        for channel in channels:
            await self._outbox.enqueue(channel, timer.episode_id, ESCALATION, document)

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
            "at": self._clock.now().isoformat(),
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
            "at": self._clock.now().isoformat(),
        }
