"""Humans hear once: refusals of one kind are one escalation with a count, and a page budget
per channel turns the rest into a summary (rules with an injected clock, then through the
daemon against the PagerDuty fake)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from remediator.config import EscalationSettings
from remediator.engine.delivery.escalation_policy import BUDGET, GROUP, EscalationPolicy
from remediator_testing.alerts import alert, notification
from remediator_testing.clock import ManualClock
from remediator_testing.fakes import FakePagerDuty
from tests.conftest import MakeDaemon
from tests.governance.helpers import (
    START,
    World,
    auto,
    delivered,
    eventually,
    paging,
    post_and_settle,
    registry_with,
)

CHANNELS = ["pagerduty", "slack_report"]


def manual_clock() -> ManualClock:
    return ManualClock(datetime(2026, 12, 1, 3, 0, tzinfo=UTC))


def refused(playbook: str = "scale", refusal: str = "no_target") -> dict[str, Any]:
    return {"kind": "refused", "refusal": refusal, "playbook": playbook}


def test_refusals_of_one_kind_are_one_escalation_per_window() -> None:
    clock = manual_clock()
    policy = EscalationPolicy(EscalationSettings(page_budget=None), clock)
    first = policy.decide("ep-1", refused(), CHANNELS)
    assert first.channels == CHANNELS and not first.aggregated and first.group == "ep-1"
    [(key, due, payload)] = first.summaries
    assert key == "ep-1" and due == clock.now() + timedelta(seconds=600)
    assert payload["type"] == GROUP and payload["kind"] == "no_target/scale"
    for _ in range(30):
        later = policy.decide("ep-2", refused(), CHANNELS)
        assert later.channels == [] and later.aggregated and later.group == "ep-1"
        assert later.summaries == []
    # Another reason class, another playbook: kinds of their own.
    assert not policy.decide("ep-3", refused(refusal="blast_radius"), CHANNELS).aggregated
    assert not policy.decide("ep-4", refused(playbook="restart"), CHANNELS).aggregated
    # Not refusals: never aggregated.
    assert not policy.decide("ep-5", {"kind": "failed", "playbook": "scale"}, CHANNELS).aggregated
    clock.advance(601)  # a new window: the kind escalates again
    again = policy.decide("ep-6", refused(), CHANNELS)
    assert again.channels == CHANNELS and again.group == "ep-6"


def test_the_page_budget_turns_the_rest_into_one_summary_and_spares_the_storm() -> None:
    clock = manual_clock()
    settings = EscalationSettings(
        aggregate_window_seconds=0, page_budget=3, page_budget_window_seconds=60
    )
    policy = EscalationPolicy(settings, clock)
    for n in range(3):
        assert policy.decide("ep", {"kind": "failed", "n": n}, CHANNELS).channels == CHANNELS
    over = policy.decide("ep", {"kind": "failed"}, CHANNELS)
    assert over.channels == ["slack_report"] and over.over_budget == ["pagerduty"]
    [(_, due, payload)] = over.summaries
    assert payload == {"type": BUDGET, "channel": "pagerduty", "since": clock.now().isoformat()}
    assert due == clock.now() + timedelta(seconds=60)
    assert policy.decide("ep", {"kind": "failed"}, CHANNELS).summaries == []  # one summary
    assert policy.decide("ep", {"kind": "storm"}, CHANNELS).channels == CHANNELS  # never held back
    clock.advance(61)
    assert policy.decide("ep", {"kind": "failed"}, CHANNELS).channels == CHANNELS


async def test_a_broken_alert_rule_pages_once_per_kind_with_a_count(
    make_daemon: MakeDaemon, pagerduty: FakePagerDuty
) -> None:
    """Alerts with invalid labels (no `deployment`), one per notification: refused before
    acting, each of them, and escalated as one kind of trouble; then the storm breaker."""
    config = auto(
        escalation=paging(pagerduty.url, aggregate_window_seconds=4),
        guards={"storm": {"distinct_targets": 100, "refusals": 100}},
    )
    daemon = await make_daemon(registry_with(World()), config=config)
    for n in range(8):
        labels = {"alertname": "KafkaLagHigh", "namespace": "shop", "pod": f"p-{n}"}
        status, _ = await daemon.post(
            notification([alert(labels, starts_at=START + timedelta(minutes=n))])
        )
        assert status == 200
    await daemon.settle()

    async def summarised() -> bool:
        return len(pagerduty.events) >= 2

    await eventually(summarised, within=20)
    await delivered(daemon)
    first, summary = pagerduty.events
    first_episode = min(await daemon.engine.store.list_episodes(), key=lambda e: e.starts_at)
    assert first["dedup_key"] == summary["dedup_key"] == first_episode.id  # one incident
    assert "no valid target" in first["payload"]["summary"]
    assert summary["payload"]["summary"].startswith("remediator: 8 refusals of the same kind")
    assert "(no_target/scale)" in summary["payload"]["summary"]


async def test_refusals_count_towards_the_storm(
    make_daemon: MakeDaemon, pagerduty: FakePagerDuty
) -> None:
    config = auto(
        escalation=paging(pagerduty.url),
        guards={"storm": {"distinct_targets": 100, "refusals": 3}},
    )
    daemon = await make_daemon(registry_with(World()), config=config)
    for n in range(5):
        labels = {"alertname": "KafkaLagHigh", "namespace": "shop", "pod": f"p-{n}"}
        await post_and_settle(
            daemon, notification([alert(labels, starts_at=START + timedelta(minutes=n))])
        )
    breaker = await daemon.engine.governance.breaker()
    assert breaker is not None
    assert breaker.reason.startswith("4 alerts refused before acting within 300 s")
    held = await daemon.engine.store.held_alerts(breaker.id)
    assert len(held) == 1 and held[0].target_key.startswith("unresolved/scale/")
    await delivered(daemon)
    # One page for the kind of refusal, one for the storm.
    assert len({e["dedup_key"] for e in pagerduty.events}) == 2
