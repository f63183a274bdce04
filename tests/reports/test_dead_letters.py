"""Delivery never jams: an escalation can open its episode's thread, and a message that cannot
be rendered or that Slack refuses for good is dead-lettered (counted, listed, escalated once,
re-sent on request) while the messages behind it go out."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest

from remediator.cli import main
from remediator.engine.delivery.report import REPORT, SLACK_REPORT
from remediator_testing.fakes import Failure, FakePagerDuty, FakeSlack
from tests.admin.helpers import OPERATOR, admin_config, call
from tests.conftest import BOTH_BACKENDS, Daemon, MakeDaemon
from tests.governance.helpers import (
    PD_KEY,
    World,
    eventually,
    firing,
    labels,
    metric,
    post_and_settle,
)
from tests.reports.helpers import reporting, scaling, text_of

pytestmark = BOTH_BACKENDS


async def _nothing_pending(daemon: Daemon) -> bool:
    return await daemon.engine.store.outbox_pending() == {}


async def _dead_letter_escalations(daemon: Daemon) -> float:
    return await metric(daemon, 'remediator_escalations_total{reason="dead_letter"}')


async def test_an_escalation_before_any_report_opens_the_thread(
    make_daemon: MakeDaemon, slack: FakeSlack
) -> None:
    # A critical alert no playbook handles is escalated; no report ever opened its thread.
    daemon = await make_daemon(scaling(World()), config=reporting(slack))
    disk = {"alertname": "DiskFull", "severity": "critical", "instance": "db-1"}
    await post_and_settle(daemon, firing(disk))
    await slack.wait_for(2)
    (head_ts, head), (_, escalated) = slack.posted
    assert "thread_ts" not in head and "DiskFull (critical)" in text_of(head)
    assert escalated["thread_ts"] == head_ts and escalated.get("reply_broadcast") is True
    assert "a critical alert matches no playbook" in text_of(escalated)
    assert slack.invalid == []
    await eventually(lambda: _nothing_pending(daemon))


async def test_escalations_after_a_storm_summary_open_their_threads(
    make_daemon: MakeDaemon, slack: FakeSlack
) -> None:
    # The storm of the issue: seven runs wait for approval, their reports go out as one
    # summary (no thread per episode), then each approval expires and is escalated.
    config = reporting(slack, mode="approve", batch_window_seconds=2.0)
    config["approval"] = {"timeout_seconds": 3.0}
    daemon = await make_daemon(scaling(World()), config=config)
    names = [f"svc-{n}" for n in range(7)]
    await post_and_settle(daemon, firing(*[labels(name) for name in names]))
    messages = await slack.wait_for(1 + 2 * len(names), within=20)
    assert slack.invalid == []
    assert "Alert storm: 7 reports for 7 episodes" in text_of(messages[0])
    heads = {ts: body for ts, body in slack.posted[1:] if "thread_ts" not in body}
    replies = [body for _, body in slack.posted[1:] if "thread_ts" in body]
    assert len(heads) == len(replies) == len(names)
    for reply in replies:
        assert reply["thread_ts"] in heads and "approval expired" in text_of(reply)
    shown = " ".join(text_of(body) for body in heads.values())
    assert all(f"deployment={name}" in shown for name in names)
    await eventually(lambda: _nothing_pending(daemon))


def _rejects_payments(body: Any) -> bool:
    return "payments" in json.dumps(body)


async def test_a_bad_message_in_the_middle_is_dead_lettered_escalated_once_and_resent(
    make_daemon: MakeDaemon, slack: FakeSlack, capsys: pytest.CaptureFixture[str]
) -> None:
    async with FakePagerDuty(routing_key=PD_KEY) as pagerduty:
        await _dead_letters_scenario(make_daemon, slack, pagerduty, capsys)


async def _dead_letters_scenario(
    make_daemon: MakeDaemon,
    slack: FakeSlack,
    pagerduty: FakePagerDuty,
    capsys: pytest.CaptureFixture[str],
) -> None:
    # Shadow mode: one report per episode (no progress notes), which keeps the queue readable.
    config = reporting(slack, mode="shadow", batch_threshold=50)
    config["escalation"]["pagerduty"] = {"routing_key": PD_KEY, "events_url": pagerduty.url}
    daemon = await make_daemon(scaling(World()), config={**config, **admin_config()})
    store = daemon.engine.store
    # Slack is down while the queue builds up: orders, payments, a corrupted report, billing.
    slack.fail_next(*[Failure(503)] * 1000)
    await post_and_settle(daemon, firing(labels("orders")))
    await post_and_settle(daemon, firing(labels("payments")))
    [orders, payments] = sorted(await store.list_episodes(), key=lambda e: e.first_seen)
    corrupted = {"kind": "run_shadow", "state": "shadow", "actions": "not a list of actions"}
    bad_id = await daemon.engine.outbox.enqueue(SLACK_REPORT, orders.id, REPORT, corrupted)
    await post_and_settle(daemon, firing(labels("billing")))
    # ...then Slack is back, but refuses every message about payments (`ok: false`).
    slack.recover()
    slack.fail_when(_rejects_payments, Failure(200, body="invalid_blocks"))

    await eventually(lambda: _nothing_pending(daemon), within=15)
    texts = [text_of(body) for body in slack.messages]
    assert any("billing" in t for t in texts), "the messages behind the bad ones went out"
    assert not any("payments" in t for t in texts)
    dead = await store.dead_letters()
    assert sorted(d.episode_id or "" for d in dead) == sorted([orders.id, payments.id])
    unrenderable = next(d for d in dead if d.id == bad_id)
    assert unrenderable.last_error is not None
    assert unrenderable.last_error.startswith("cannot render: AttributeError")
    rejected = next(d for d in dead if d.id != bad_id)
    assert rejected.last_error == "refused: Slack HTTP 200: invalid_blocks"

    # Escalated once for both: one record, one page, one Slack message.
    assert await _dead_letter_escalations(daemon) == 1
    [page] = await pagerduty.wait_for(1)
    assert "could not be delivered" in page["payload"]["summary"]
    assert "/admin/dead-letters" in page["payload"]["summary"]
    assert sum("dead-lettered" in t for t in texts) == 1
    dead_gauge = 'remediator_outbox_dead_letters{channel="slack_report"}'
    assert await metric(daemon, dead_gauge) == 2
    counted = 'remediator_escalation_deliveries_total{channel="slack_report",result="dead_letter"}'
    assert await metric(daemon, counted) == 2

    # The admin API lists both; once Slack accepts payments again, a re-send delivers it.
    status, listed = await call(daemon, "GET", "/admin/dead-letters")
    assert status == 200
    assert {d["id"] for d in listed["dead_letters"]} == {d.id for d in dead}
    slack.recover()
    status, resent = await call(
        daemon,
        "POST",
        f"/admin/dead-letters/{rejected.id}/resend",
        json={"reason": "Slack accepts it again"},
    )
    assert status == 200 and resent["dead_at"] is None
    await eventually(lambda: _delivered(daemon, rejected.id))
    assert any("payments" in text_of(body) for body in slack.messages)
    assert await metric(daemon, dead_gauge) == 1
    status, again = await call(
        daemon, "POST", f"/admin/dead-letters/{rejected.id}/resend", json={"reason": "twice"}
    )
    assert status == 409 and "not a dead letter" in again["error"]
    status, _ = await call(
        daemon, "POST", "/admin/dead-letters/999999/resend", json={"reason": "x"}
    )
    assert status == 404

    # The corrupted one still cannot be rendered: dead again, and not escalated again.
    url = str(daemon.client.make_url("/")).rstrip("/")
    admin = ["admin", "--url", url, "--token", OPERATOR]
    assert await asyncio.to_thread(main, [*admin, "dead-letters"]) == 0
    listing = capsys.readouterr().out
    assert f"#{bad_id}  slack_report" in listing and "cannot render" in listing
    resend = [*admin, "resend-dead-letter", str(bad_id), "--reason", "try it"]
    assert await asyncio.to_thread(main, resend) == 0
    await eventually(lambda: _dead(daemon, bad_id))
    assert await _dead_letter_escalations(daemon) == 1
    resends = [a for a in await store.audit_log() if a.action == "resend_dead_letter"]
    assert [(a.who, a.reason) for a in resends] == [
        ("alice", "try it"),
        ("alice", "Slack accepts it again"),
    ]


async def _delivered(daemon: Daemon, item_id: int) -> bool:
    item = await daemon.engine.store.get_outbox_item(item_id)
    return item is not None and item.delivered_at is not None


async def _dead(daemon: Daemon, item_id: int) -> bool:
    item = await daemon.engine.store.get_outbox_item(item_id)
    return item is not None and item.dead_at is not None
