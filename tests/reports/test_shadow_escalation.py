"""Shadow mode does not page: what it would have escalated goes to the Slack report."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest

from remediator.playbook import Registry, Target, playbook, targets
from remediator_testing.fakes import FakePagerDuty, FakeSlack
from tests.conftest import MakeDaemon
from tests.governance.helpers import PD_KEY, delivered, firing, labels, post_and_settle
from tests.reports.helpers import reporting, text_of


@pytest.fixture
async def pagerduty() -> AsyncIterator[FakePagerDuty]:
    async with FakePagerDuty(routing_key=PD_KEY) as fake:
        yield fake


def failing() -> Registry:
    registry = Registry()

    @playbook(match='alertname="KafkaLagHigh"', target=targets.deployment(), registry=registry)
    async def broken(*, target: Target, **_: Any) -> None:
        raise RuntimeError(f"cannot read {target.key}")

    return registry


def config(slack: FakeSlack, pagerduty: FakePagerDuty, **escalation: Any) -> dict[str, Any]:
    base = reporting(slack, mode="shadow")
    base["escalation"] = {
        **base["escalation"],
        "pagerduty": {"routing_key": PD_KEY, "events_url": pagerduty.url},
        **escalation,
    }
    return base


async def test_a_shadow_failure_is_reported_as_would_have_escalated_not_paged(
    make_daemon: MakeDaemon, slack: FakeSlack, pagerduty: FakePagerDuty
) -> None:
    daemon = await make_daemon(failing(), config=config(slack, pagerduty))
    await post_and_settle(daemon, firing(labels("orders")))
    await delivered(daemon)
    assert pagerduty.requests == []
    texts = [text_of(m) for m in slack.messages]
    [escalated] = [t for t in texts if "escalated" in t.lower()]
    assert "Would have escalated" in escalated and "cannot read Deployment/shop/orders" in escalated
    assert "<!here>" not in escalated
    [episode] = await daemon.engine.store.list_episodes()
    [record] = await daemon.engine.store.escalations_for(episode.id)
    assert record.details["channels"] == ["slack_report"] and record.details["shadow"]


async def test_page_in_shadow_pages_anyway(
    make_daemon: MakeDaemon, slack: FakeSlack, pagerduty: FakePagerDuty
) -> None:
    daemon = await make_daemon(failing(), config=config(slack, pagerduty, page_in_shadow=True))
    await post_and_settle(daemon, firing(labels("orders")))
    [page] = await pagerduty.wait_for(1)
    assert page["event_action"] == "trigger"
