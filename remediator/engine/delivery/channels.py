"""The escalation channels: how one queued escalation document becomes a Slack message, a
PagerDuty event or a webhook POST. Built from `escalation:` in the settings; a channel that is
not configured does not exist (nothing is queued for it).
"""

from __future__ import annotations

from typing import Any

import aiohttp

from remediator.clients.pagerduty import PagerDutyClient, resolve_event, trigger_event
from remediator.clients.slack import SlackClient
from remediator.clients.webhook import WebhookClient
from remediator.config import (
    EscalationSettings,
    PagerDutySettings,
    Settings,
    SlackEscalationSettings,
)
from remediator.engine.delivery.outbox import Deliver
from remediator.store.records import OutboxItem

SLACK, PAGERDUTY, WEBHOOK = "slack", "pagerduty", "webhook"


def headline(doc: dict[str, Any]) -> str:
    what = doc.get("alertname") or "remediator"
    where = doc.get("target") or (doc.get("labels") or {}).get("namespace")
    return f"{what}{f' on {where}' if where else ''}: {doc.get('reason', 'escalation')}"


def slack_text(doc: dict[str, Any], mention: str) -> str:
    if doc.get("shadow"):  # shadow mode: what would have been escalated, nobody is called
        lines = [f":ghost: *Would have escalated* (shadow mode): {headline(doc)}"]
    else:
        lines = [f"{mention} :rotating_light: *{headline(doc)}*".strip()]
    if doc.get("summary"):
        lines.append(str(doc["summary"]))
    facts = [
        f"{name}: `{doc[key]}`"
        for name, key in (("playbook", "playbook"), ("episode", "key"), ("run", "run_id"))
        if doc.get(key) is not None
    ]
    if facts:
        lines.append(" · ".join(facts))
    if doc.get("generator_url"):
        lines.append(f"<{doc['generator_url']}|the alert's expression in Prometheus>")
    return "\n".join(lines)


def pagerduty_event(doc: dict[str, Any], settings: PagerDutySettings) -> dict[str, Any]:
    if doc["event"] == "resolved":
        return resolve_event(doc["key"])
    severity = settings.severity_map.get(
        str(doc.get("severity") or ""),
        "critical" if doc.get("kind") == "storm" else settings.default_severity,
    )
    labels = doc.get("labels") or {}
    return trigger_event(
        doc["key"],
        headline(doc),
        source=str(doc.get("target") or labels.get("namespace") or "remediator"),
        severity=severity,
        component=doc.get("playbook"),
        group=labels.get("namespace"),
        details={k: doc[k] for k in ("reason", "kind", "run_id", "labels", "details") if k in doc},
    )


def _slack(settings: SlackEscalationSettings, session: aiohttp.ClientSession) -> Deliver:
    token = settings.token_value() or ""
    client = SlackClient(
        token, base_url=settings.base_url, timeout=settings.timeout_seconds, session=session
    )
    channel = settings.channel or ""

    async def deliver(item: OutboxItem) -> None:
        await client.post(channel, slack_text(item.payload, settings.mention))

    return deliver


def _pagerduty(settings: PagerDutySettings, session: aiohttp.ClientSession, key: str) -> Deliver:
    client = PagerDutyClient(
        session, key, url=settings.events_url, timeout=settings.timeout_seconds
    )

    async def deliver(item: OutboxItem) -> None:
        await client.send(pagerduty_event(item.payload, settings))

    return deliver


def _webhook(url: str, settings: EscalationSettings, session: aiohttp.ClientSession) -> Deliver:
    hook = settings.webhook
    client = WebhookClient(
        session, url, headers=hook.headers, bearer=hook.bearer(), timeout=hook.timeout_seconds
    )

    async def deliver(item: OutboxItem) -> None:
        await client.post(item.payload)

    return deliver


def report_channel_escalates(settings: Settings) -> bool:
    """`escalation.slack` posts where the reports go: an escalation is then posted once, as the
    reply in its episode's thread (broadcast to the channel, with the mention), not twice."""
    reports, escalation = settings.reports.slack, settings.escalation.slack
    return (
        reports.channel is not None
        and reports.channel == escalation.channel
        and reports.base_url.rstrip("/") == escalation.base_url.rstrip("/")
    )


def build_channels(
    settings: EscalationSettings, session: aiohttp.ClientSession
) -> dict[str, Deliver]:
    channels: dict[str, Deliver] = {}
    if settings.slack.channel:
        channels[SLACK] = _slack(settings.slack, session)
    key = settings.pagerduty.key()
    if key:
        channels[PAGERDUTY] = _pagerduty(settings.pagerduty, session, key)
    if settings.webhook.url:
        channels[WEBHOOK] = _webhook(settings.webhook.url, settings, session)
    return channels
