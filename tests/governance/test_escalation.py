"""Escalation through the durable outbox to PagerDuty, a generic webhook and Slack, against
fakes that validate what they receive; failures, Retry-After, retries and order."""

from __future__ import annotations

import time
from typing import Any

from remediator_testing.clock import ManualClock
from remediator_testing.fakes import Failure, FakePagerDuty, FakeSlack, FakeWebhook
from tests.conftest import Daemon, MakeDaemon
from tests.governance.helpers import (
    PD_KEY,
    World,
    auto,
    eventually,
    fast_delivery,
    firing,
    labels,
    metric,
    paging,
    post_and_settle,
    registry_with,
    resolved,
)


def denied(**escalation: Any) -> dict[str, Any]:
    """Every alert in kube-system is refused by the blast-radius guard, hence escalated."""
    return auto(escalation=escalation)


async def test_pagerduty_trigger_and_resolve_with_the_episode_as_dedup_key(
    make_daemon: MakeDaemon, pagerduty: FakePagerDuty
) -> None:
    daemon = await make_daemon(registry_with(World()), config=denied(**paging(pagerduty.url)))
    alert = labels("coredns", namespace="kube-system", severity="critical")
    await post_and_settle(daemon, firing(alert))
    [trigger] = await pagerduty.wait_for(1)
    [episode] = await daemon.engine.store.list_episodes()
    assert trigger["routing_key"] == PD_KEY
    assert trigger["event_action"] == "trigger" and trigger["dedup_key"] == episode.id
    payload = trigger["payload"]
    assert payload["severity"] == "critical"
    assert payload["source"] == "Deployment/kube-system/coredns"
    assert payload["summary"].startswith("KafkaLagHigh on Deployment/kube-system/coredns: ")
    assert "namespace 'kube-system' is denied" in payload["summary"]
    assert payload["custom_details"]["kind"] == "refused"
    await post_and_settle(daemon, resolved(alert))
    events = await pagerduty.wait_for(2)
    assert events[1] == {"event_action": "resolve", "dedup_key": episode.id, "routing_key": PD_KEY}
    assert pagerduty.invalid == []


async def test_failures_are_retried_until_delivered_in_order(
    make_daemon: MakeDaemon, pagerduty: FakePagerDuty
) -> None:
    pagerduty.fail_next(*[Failure(500)] * 5)
    # Two refusals of one kind would be one escalation (test_escalation_policy.py): not here.
    config = denied(**paging(pagerduty.url, aggregate_window_seconds=0))
    daemon = await make_daemon(registry_with(World()), config=config)
    first, second = labels("a", namespace="kube-system"), labels("b", namespace="kube-system")
    await post_and_settle(daemon, firing(first))
    await post_and_settle(daemon, firing(second))
    events = await pagerduty.wait_for(2)
    await eventually(lambda: nothing_pending(daemon))
    assert len(pagerduty.requests) == 7  # five failures, then the two events
    episodes = {e.labels["deployment"]: e.id for e in await daemon.engine.store.list_episodes()}
    assert [e["dedup_key"] for e in events] == [episodes["a"], episodes["b"]]
    # The second never overtook the first, although it was due while the first was failing.
    assert [r.body["dedup_key"] for r in pagerduty.requests] == [episodes["a"]] * 6 + [
        episodes["b"]
    ]
    assert (
        await metric(
            daemon, 'remediator_escalation_deliveries_total{channel="pagerduty",result="error"}'
        )
        >= 2
    )
    assert (
        await metric(
            daemon, 'remediator_escalation_deliveries_total{channel="pagerduty",result="ok"}'
        )
        == 2
    )
    assert await metric(daemon, 'remediator_outbox_pending{channel="pagerduty"}') == 0


async def test_429_retry_after_is_honoured(
    make_daemon: MakeDaemon, pagerduty: FakePagerDuty
) -> None:
    pagerduty.fail_next(Failure(429, retry_after=30))
    daemon = await make_daemon(
        registry_with(World()), config=denied(**paging(pagerduty.url)), clock=ManualClock()
    )
    await post_and_settle(daemon, firing(labels("a", namespace="kube-system")))
    await daemon.engine.outbox.settled()
    # No quick retry after a 429, and no backoff (0.05 s) either: it waits for Retry-After.
    await daemon.advance(29)
    assert [r.status for r in pagerduty.requests] == [429]
    await daemon.advance(1)
    assert [r.status for r in pagerduty.requests] == [429, 202]
    assert await nothing_pending(daemon)


async def nothing_pending(daemon: Daemon) -> bool:
    return not await daemon.engine.store.outbox_pending()


async def test_a_channel_that_is_down_never_blocks_the_pipeline_and_shows_in_metrics(
    make_daemon: MakeDaemon,
) -> None:
    world = World()
    down = FakePagerDuty(routing_key=PD_KEY)
    await down.start()
    url = down.url
    await down.stop()  # connection refused from now on
    daemon = await make_daemon(registry_with(world), config=denied(**paging(url)))
    started = time.monotonic()
    await post_and_settle(daemon, firing(labels("a", namespace="kube-system"), labels("b")))
    assert time.monotonic() - started < 1.0
    assert world.targets() == ["Deployment/shop/b"]  # the other alert was handled meanwhile

    async def failing() -> bool:
        return (
            await metric(
                daemon, 'remediator_escalation_deliveries_total{channel="pagerduty",result="error"}'
            )
            >= 2
        )

    await eventually(failing)
    assert await metric(daemon, 'remediator_outbox_pending{channel="pagerduty"}') == 1
    assert await daemon.engine.store.outbox_pending() == {"pagerduty": 1}


async def test_generic_webhook_gets_the_escalation_document(
    make_daemon: MakeDaemon, hook: FakeWebhook
) -> None:
    escalation = {
        "webhook": {"url": hook.url, "bearer_token": "hook-secret"},
        "delivery": fast_delivery(),
    }
    daemon = await make_daemon(registry_with(World()), config=denied(**escalation))
    hook.fail_next(Failure(503), Failure(502))
    alert = labels("a", namespace="kube-system")
    await post_and_settle(daemon, firing(alert))
    [document] = await hook.wait_for(1)
    [episode] = await daemon.engine.store.list_episodes()
    assert document["event"] == "escalation" and document["key"] == episode.id
    assert document["kind"] == "refused" and document["playbook"] == "scale"
    assert document["target"] == "Deployment/kube-system/a"
    assert document["labels"] == alert and "denied" in document["reason"]
    assert hook.invalid == []
    await post_and_settle(daemon, resolved(alert))
    documents = await hook.wait_for(2)
    assert documents[1]["event"] == "resolved" and documents[1]["key"] == episode.id


async def test_a_rejected_webhook_is_dead_lettered_and_that_never_loops(
    make_daemon: MakeDaemon, hook: FakeWebhook
) -> None:
    # The only channel refuses everything (no credentials, 400): the escalation is
    # dead-lettered after its retries, the escalation about that is dead-lettered too, and
    # that is where it stops.
    escalation = {"webhook": {"url": hook.url}, "delivery": fast_delivery()}
    daemon = await make_daemon(registry_with(World()), config=denied(**escalation))
    await post_and_settle(daemon, firing(labels("a", namespace="kube-system")))
    await eventually(lambda: dead_letters(daemon, 2))
    await eventually(lambda: nothing_pending(daemon))
    assert hook.accepted == []
    assert "header Authorization is missing or wrong" in hook.invalid[0].errors
    attempts = fast_delivery()["quick_retries"] + 1
    assert len(hook.requests) == 2 * attempts
    assert await metric(daemon, 'remediator_escalations_total{reason="dead_letter"}') == 1
    assert await metric(daemon, 'remediator_outbox_dead_letters{channel="webhook"}') == 2
    assert await metric(daemon, 'remediator_outbox_pending{channel="webhook"}') == 0
    [about, first] = await daemon.engine.store.dead_letters()
    assert first.payload["kind"] == "refused" and about.payload["kind"] == "dead_letter"
    assert first.last_error is not None and first.last_error.startswith("refused: HTTP 400")


async def dead_letters(daemon: Daemon, count: int) -> bool:
    return len(await daemon.engine.store.dead_letters()) >= count


async def test_slack_mentions_the_on_call_group(make_daemon: MakeDaemon) -> None:
    async with FakeSlack(token="xoxb-test") as slack:
        escalation = {
            "slack": {
                "channel": "C0123",
                "token": "xoxb-test",
                "mention": "<!subteam^S0ONCALL>",
                "base_url": slack.api_url,
            },
            "delivery": fast_delivery(),
        }
        slack.fail_next(Failure(429, retry_after=0.1))
        daemon = await make_daemon(registry_with(World()), config=denied(**escalation))
        await post_and_settle(daemon, firing(labels("a", namespace="kube-system")))
        [message] = await slack.wait_for(1)
        assert message["channel"] == "C0123"
        assert message["text"].startswith("<!subteam^S0ONCALL> :rotating_light: *KafkaLagHigh")
        assert slack.invalid == []
        await daemon.client.close()


async def test_a_critical_alert_without_a_playbook_pages(
    make_daemon: MakeDaemon, pagerduty: FakePagerDuty
) -> None:
    daemon = await make_daemon(registry_with(World()), config=denied(**paging(pagerduty.url)))
    nothing = {"alertname": "DiskFull", "severity": "critical", "instance": "db-1"}
    warning = {"alertname": "DiskAlmostFull", "severity": "warning", "instance": "db-1"}
    await post_and_settle(daemon, firing(nothing, warning))
    [event] = await pagerduty.wait_for(1)
    await daemon.engine.outbox.settled()  # a second page would have been sent by now
    assert len(pagerduty.events) == 1
    assert event["payload"]["summary"] == "DiskFull: a critical alert matches no playbook"
    assert event["payload"]["source"] == "remediator"
