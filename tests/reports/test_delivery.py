"""Storms summarised, the outbox across a restart, incoming webhooks, and no secrets."""

from __future__ import annotations

import json

from remediator_testing.clock import ManualClock
from remediator_testing.fakes import Failure, FakeSlack, FakeSlackWebhook
from tests.conftest import BOTH_BACKENDS, Daemon, MakeDaemon
from tests.governance.helpers import World, eventually, firing, labels, post_and_settle, resolved
from tests.reports.helpers import reporting, scaling, text_of

pytestmark = BOTH_BACKENDS


async def test_a_storm_is_one_summary_message(make_daemon: MakeDaemon, slack: FakeSlack) -> None:
    # The window is on the daemon's clock: however long 40 runs take, it holds their reports.
    config = reporting(slack, batch_window_seconds=8.0, admin_url="http://remediator:9095")
    config["guards"] = {
        "storm": {"distinct_targets": 1000},
        "rate_limits": {
            "all_playbooks": {"max_actions": 1000},
            "per_playbook": {"max_actions": 1000},
        },
        "concurrency": {"max_in_flight": 100},
    }
    daemon = await make_daemon(scaling(World()), config=config, clock=ManualClock())
    await post_and_settle(daemon, firing(*[labels(f"svc-{n}") for n in range(40)]))
    await daemon.engine.outbox.settled()
    assert slack.messages == []  # all 40 wait for the window
    await daemon.advance(8)  # every report came due and had its attempt: nothing else follows
    [summary] = slack.messages
    assert slack.invalid == []
    text = text_of(summary)
    assert "Alert storm: 40 reports for 40 episodes" in text
    assert "`KafkaLagHigh` in `shop`: 40 (acted 40)" in text
    assert "http://remediator:9095/admin/episodes" in text
    await eventually(lambda: _delivered(daemon))


async def test_queued_reports_survive_a_restart_in_order_in_the_same_thread(
    make_daemon: MakeDaemon, slack: FakeSlack
) -> None:
    config = reporting(slack)
    registry = scaling(World())
    first = await make_daemon(registry, config=config)
    await post_and_settle(first, firing(labels("orders")))
    await slack.wait_for(2)
    head_ts = slack.posted[0][0]
    slack.fail_next(*[Failure(503)] * 1000)  # Slack down for the rest of the first life
    await post_and_settle(first, resolved(labels("orders")))
    await post_and_settle(first, firing(labels("payments")))
    await slack.wait_for_requests(4)
    await first.client.close()

    slack.recover()
    second = await make_daemon(registry, config=config)
    await slack.wait_for(5)
    posted = slack.posted
    assert slack.invalid == []
    # The resolve goes in the old thread; the new episode opens its own, in queue order.
    assert posted[2][1]["thread_ts"] == head_ts and "Resolved" in text_of(posted[2][1])
    assert "thread_ts" not in posted[3][1] and "payments" in text_of(posted[3][1])
    assert posted[4][1]["thread_ts"] == posted[3][0]
    await eventually(lambda: _delivered(second))


async def _delivered(daemon: Daemon) -> bool:
    return await daemon.engine.store.outbox_pending() == {}


async def test_incoming_webhook_mode_one_message_per_report(make_daemon: MakeDaemon) -> None:
    async with FakeSlackWebhook() as hook:
        config = {
            "mode": "shadow",
            "reports": {"slack": {"webhook_url": hook.url}, "batch_window_seconds": 0.01},
        }
        daemon = await make_daemon(scaling(World()), config=config)
        await post_and_settle(daemon, firing(labels("orders")))
        [message] = await hook.wait_for(1)
        assert hook.invalid == []
        assert "KafkaLagHigh" in text_of(message) and "would have" in text_of(message)
        assert "thread_ts" not in message


async def test_no_configured_secret_appears_in_any_slack_payload(
    make_daemon: MakeDaemon, slack: FakeSlack
) -> None:
    secret = "s3cr3t-pg-password"
    config = reporting(slack)
    config["databases"] = {"main": {"dsn": f"postgresql://app:{secret}@db:5432/main"}}
    config["admin"] = {"tokens": [{"name": "ops", "role": "operator", "token": "admin-secret-1"}]}
    config["escalation"]["pagerduty"] = {
        "routing_key": "R" * 32,
        "events_url": "http://127.0.0.1:9",
    }
    daemon = await make_daemon(scaling(World()), config=config)
    hostile = labels("orders", leak=secret, token="admin-secret-1", key="R" * 32)
    await post_and_settle(daemon, firing(hostile))
    await slack.wait_for(2)
    everything = json.dumps([r.body for r in slack.requests]) + json.dumps(
        [dict(r.headers) for r in slack.requests if "Authorization" not in r.headers]
    )
    for value in (secret, "admin-secret-1", "R" * 32):
        assert value not in everything
    assert "[redacted]" in everything
