"""Humans hear once: which channels an escalation goes to, decided before it is queued.

Two rules on top of the channels configured (engine/delivery/escalate.py applies them):

* Refusals of the same kind (the same reason class, e.g. `no_target` or a guard's name, and
  the same playbook) within `escalation.aggregate_window_seconds` are one escalation: the
  first is delivered as usual (PagerDuty `dedup_key`: its episode), the others are recorded
  and counted, and when the window ends one summary with the count and the episodes goes out
  under the first one's key (the same PagerDuty incident, updated).
* A page budget per paging channel (PagerDuty, the webhook, the Slack escalation channel):
  at most `escalation.page_budget` escalations per `page_budget_window_seconds`. Past it, the
  channel is left out and counted; when the window ends, one summary goes to that channel.
  The storm breaker's page is never held back, but it counts.

The state is in memory and the time is injected: the rules are a function of what this process
has seen, and the summaries are durable timers (a restart forgets the counts of the current
window, so at worst a kind pages once more).
"""

from __future__ import annotations

from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from remediator.clock import Clock
from remediator.config import EscalationSettings

SUMMARY = "escalation_summary"  # the timer kind of a group's or a budget's summary
GROUP, BUDGET = "group", "budget"
PAGING_CHANNELS = ("pagerduty", "webhook", "slack")


def refusal_kind(details: dict[str, Any]) -> str | None:
    """The kind of trouble a refusal is (reason class / playbook), or None if not a refusal."""
    if details.get("kind") != "refused":
        return None
    reason = details.get("refusal") or details.get("guard") or "refused"
    return f"{reason}/{details.get('playbook') or '-'}"


@dataclass
class Verdict:
    channels: list[str]
    group: str | None = None  # the group it was counted in: the first escalation's episode
    aggregated: bool = False  # counted, not delivered: the group's summary will tell
    over_budget: list[str] = field(default_factory=list)
    summaries: list[tuple[str, datetime, dict[str, Any]]] = field(default_factory=list)


@dataclass
class _Group:
    key: str
    ends: datetime


class EscalationPolicy:
    def __init__(self, settings: EscalationSettings, clock: Clock) -> None:
        self._settings = settings
        self._clock = clock
        self._groups: dict[str, _Group] = {}
        self._pages: dict[str, deque[datetime]] = {}
        self._over: dict[str, datetime] = {}  # channel -> end of the window it went over in

    def decide(self, episode_id: str, details: dict[str, Any], channels: Sequence[str]) -> Verdict:
        now = self._clock.now()
        verdict = Verdict(list(channels))
        kind = refusal_kind(details)
        window = self._settings.aggregate_window_seconds
        if kind is not None and window > 0:
            group = self._groups.get(kind)
            if group is not None and now < group.ends:
                return Verdict([], group=group.key, aggregated=True)
            ends = now + timedelta(seconds=window)
            self._groups[kind] = _Group(episode_id, ends)
            verdict.group = episode_id
            payload = {"type": GROUP, "kind": kind, "since": now.isoformat()}
            verdict.summaries.append((episode_id, ends, payload))
        if self._settings.page_budget is not None:
            self._budget(verdict, details.get("kind") == "storm", now)
        return verdict

    def _budget(self, verdict: Verdict, exempt: bool, now: datetime) -> None:
        assert self._settings.page_budget is not None
        span = timedelta(seconds=self._settings.page_budget_window_seconds)
        for channel in [c for c in verdict.channels if c in PAGING_CHANNELS]:
            pages = self._pages.setdefault(channel, deque())
            while pages and pages[0] <= now - span:
                pages.popleft()
            if exempt or len(pages) < self._settings.page_budget:
                pages.append(now)
                continue
            verdict.channels.remove(channel)
            verdict.over_budget.append(channel)
            if self._over.get(channel, now) <= now:  # the first one over in this window
                ends = pages[0] + span
                self._over[channel] = ends
                key = f"page-budget-{channel}-{int(now.timestamp())}"
                payload = {"type": BUDGET, "channel": channel, "since": now.isoformat()}
                verdict.summaries.append((key, ends, payload))
