"""PagerDuty Events API v2: trigger an incident per episode, resolve it when the alert resolves.

The `dedup_key` is the episode id, so a re-sent escalation for the same episode updates the
same incident instead of opening another, and the resolve finds it. The routing key is added at
send time, never stored with the queued event, so fixing a wrong key delivers the backlog.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal

import aiohttp

from remediator.clients.delivery import post_json

EVENTS_URL = "https://events.pagerduty.com/v2/enqueue"
Severity = Literal["critical", "error", "warning", "info"]
_SUMMARY_MAX = 1024  # PagerDuty truncates longer summaries; we do it ourselves, visibly
_DEDUP_MAX = 255


def trigger_event(
    dedup_key: str,
    summary: str,
    *,
    source: str,
    severity: Severity,
    component: str | None = None,
    group: str | None = None,
    details: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """A trigger event without its routing key (see PagerDutyClient.send)."""
    payload: dict[str, Any] = {
        "summary": summary if len(summary) <= _SUMMARY_MAX else summary[: _SUMMARY_MAX - 1] + "…",
        "source": source,
        "severity": severity,
        "custom_details": dict(details or {}),
    }
    if component:
        payload["component"] = component
    if group:
        payload["group"] = group
    return {"event_action": "trigger", "dedup_key": dedup_key[:_DEDUP_MAX], "payload": payload}


def resolve_event(dedup_key: str) -> dict[str, Any]:
    return {"event_action": "resolve", "dedup_key": dedup_key[:_DEDUP_MAX]}


class PagerDutyClient:
    def __init__(
        self,
        session: aiohttp.ClientSession,
        routing_key: str,
        *,
        url: str = EVENTS_URL,
        timeout: float = 10.0,
    ) -> None:
        self._session = session
        self._routing_key = routing_key
        self._url = url
        self._timeout = timeout

    async def send(self, event: Mapping[str, Any]) -> None:
        """Send one event; PagerDuty answers 202 when it accepted it."""
        await post_json(
            self._session,
            self._url,
            {**event, "routing_key": self._routing_key},
            timeout_seconds=self._timeout,
        )
