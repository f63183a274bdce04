"""Approve and Deny from Slack: signed clicks, allowed approvers, one decision per run, the
guards checked again, and nothing lost across a restart."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from pydantic import ValidationError

from remediator.config import ConfigError, SlackApprovalSettings, load_settings
from remediator.store.records import Scope
from remediator_testing.fakes import FakeSlack
from tests.conftest import MakeDaemon
from tests.governance.helpers import (
    World,
    eventually,
    firing,
    labels,
    post_and_settle,
    refusals,
    runs,
)
from tests.reports.helpers import scaling, text_of
from tests.slack.helpers import (
    ALICE,
    APPROVE,
    BOB,
    DENY,
    MALLORY,
    SECRET,
    approving,
    has_buttons,
    pending,
    response_text,
    url,
)


async def test_the_report_of_a_pending_run_carries_buttons_the_change_and_the_deadline(
    make_daemon: MakeDaemon, slack: FakeSlack
) -> None:
    world = World()
    daemon = await make_daemon(scaling(world), config=approving(slack))
    run_id, ts, message = await pending(daemon, slack)
    head_ts = slack.posted[0][0]
    assert message["thread_ts"] == head_ts and message["reply_broadcast"] is True
    text = text_of(message)
    assert "Waiting for approval" in text and "replicas 3 → 5" in text
    assert "kill switch: none engaged" in text and "storm breaker: closed" in text
    assert "Decide by <!date^" in text and "(decide by " in message["text"]
    assert "May decide: <@U0ALICE1>, <!subteam^S0ONCALL1>" in text
    [actions] = [b for b in message["blocks"] if b["type"] == "actions"]
    buttons = {e["action_id"]: e for e in actions["elements"]}
    assert set(buttons) == {APPROVE, DENY}
    assert buttons[APPROVE]["value"] == str(run_id) and "confirm" in buttons[APPROVE]
    assert await daemon.engine.store.approval_message(run_id) == (message["channel"], ts)


async def test_approve_acts_replaces_the_buttons_and_names_the_approver(
    make_daemon: MakeDaemon, slack: FakeSlack
) -> None:
    world = World()
    daemon = await make_daemon(scaling(world), config=approving(slack))
    run_id, ts, message = await pending(daemon, slack)
    status, _ = await slack.interactive.click(url(daemon), message, APPROVE, ALICE, SECRET)
    assert status == 200
    [update] = await slack.interactive.wait_updates(1)
    assert update["ts"] == ts and not has_buttons(update)
    assert "Approved* by <@U0ALICE1> at <!date^" in text_of(update)
    assert "approved by <@U0ALICE1> at " in update["text"] and "replicas 3 → 5" in update["text"]
    assert await response_text(slack, 1) == f"You approved run {run_id}; it ended acted."
    assert world.calls == [("scale", "Deployment/shop/orders")]
    [run] = await runs(daemon)
    assert run.state == "acted"
    [audit] = await daemon.engine.governance.audit()
    assert (audit.who, audit.action, audit.subject) == (
        "slack:U0ALICE1",
        "approved",
        f"run:{run_id}",
    )

    async def acted_in_thread() -> bool:
        return any("Acted" in text_of(m) for m in slack.thread(slack.posted[0][0]))

    await eventually(acted_in_thread)
    [acted] = [m for m in slack.thread(slack.posted[0][0]) if "Acted" in text_of(m)]
    assert "approved by <@U0ALICE1>: approved in Slack" in text_of(acted)


async def test_a_member_of_an_approver_group_may_deny(
    make_daemon: MakeDaemon, slack: FakeSlack
) -> None:
    world = World()
    daemon = await make_daemon(scaling(world), config=approving(slack))
    _, _, message = await pending(daemon, slack)
    status, _ = await slack.interactive.click(url(daemon), message, DENY, BOB, SECRET)
    assert status == 200
    [update] = await slack.interactive.wait_updates(1)
    assert "Denied* by <@U0BOB123>" in text_of(update) and not has_buttons(update)

    async def ended() -> bool:
        return [r.state for r in await runs(daemon)] == ["refused"]

    await eventually(ended)
    [run] = await runs(daemon)
    assert run.error == "approval denied by slack:U0BOB123: denied in Slack"
    assert world.calls == []


async def test_anyone_else_is_told_no_and_audited(
    make_daemon: MakeDaemon, slack: FakeSlack
) -> None:
    world = World()
    daemon = await make_daemon(scaling(world), config=approving(slack))
    run_id, _, message = await pending(daemon, slack)
    status, _ = await slack.interactive.click(url(daemon), message, APPROVE, MALLORY, SECRET)
    assert status == 200
    answer = await response_text(slack, 1)
    assert answer.startswith(f":no_entry: You are not allowed to approve run {run_id}")
    [audit] = await daemon.engine.governance.audit()
    assert (audit.who, audit.action) == ("slack:U0MALLORY", "slack_not_allowed")
    assert audit.details["user"] == MALLORY
    assert [a.run_id for a in await daemon.engine.governance.pending_approvals()] == [run_id]
    assert world.calls == [] and slack.interactive.updates == []


async def test_unsigned_wrongly_signed_and_stale_requests_get_401_and_change_nothing(
    make_daemon: MakeDaemon, slack: FakeSlack
) -> None:
    world = World()
    daemon = await make_daemon(scaling(world), config=approving(slack))
    run_id, _, message = await pending(daemon, slack)
    payload = slack.interactive.block_actions(message, APPROVE, ALICE)
    good = slack.interactive.signed(payload, SECRET)
    wrong = slack.interactive.signed(payload, "not-the-signing-secret")
    stale = slack.interactive.signed(payload, SECRET, timestamp=int(time.time()) - 301)
    unsigned = type(good)(good.body, {"Content-Type": good.headers["Content-Type"]})
    tampered = type(good)(good.body.replace(b"U0ALICE1", b"U0MALLOR"), good.headers)
    not_a_number = type(good)(good.body, {**good.headers, "X-Slack-Request-Timestamp": "soon"})
    for request in (wrong, stale, unsigned, tampered, not_a_number):
        status, _ = await slack.interactive.send(url(daemon), request)
        assert status == 401
    [run] = await runs(daemon)
    assert [t.kind for t in await daemon.engine.store.timers_for(run.episode_id)] == [
        "approval_timeout"
    ]
    assert [a.run_id for a in await daemon.engine.governance.pending_approvals()] == [run_id]
    assert await daemon.engine.governance.audit() == [] and world.calls == []


async def test_a_replayed_request_is_refused(make_daemon: MakeDaemon, slack: FakeSlack) -> None:
    world = World()
    daemon = await make_daemon(scaling(world), config=approving(slack))
    _, _, message = await pending(daemon, slack)
    status, sent = await slack.interactive.click(url(daemon), message, DENY, ALICE, SECRET)
    assert status == 200
    again, _ = await slack.interactive.send(url(daemon), sent)
    assert again == 401
    await slack.interactive.wait_updates(1)
    [run] = await runs(daemon)
    kinds = [t.kind for t in await daemon.engine.store.timers_for(run.episode_id)]
    assert kinds == ["approval_timeout", "slack_click"]
    assert [a.action for a in await daemon.engine.governance.audit()] == ["denied"]


async def test_a_second_click_changes_nothing_and_says_so(
    make_daemon: MakeDaemon, slack: FakeSlack
) -> None:
    world = World()
    daemon = await make_daemon(scaling(world), config=approving(slack))
    run_id, _, message = await pending(daemon, slack)
    assert (await slack.interactive.click(url(daemon), message, APPROVE, ALICE, SECRET))[0] == 200
    assert (await slack.interactive.click(url(daemon), message, APPROVE, ALICE, SECRET))[0] == 200
    assert (await slack.interactive.click(url(daemon), message, DENY, BOB, SECRET))[0] == 200
    assert await response_text(slack, 1) == f"You approved run {run_id}; it ended acted."
    second = await response_text(slack, 2)
    assert second.startswith(f"Nothing changed: run {run_id} was already approved by <@U0ALICE1>")
    assert (await response_text(slack, 3)).startswith("Nothing changed: ")
    assert world.calls == [("scale", "Deployment/shop/orders")]
    assert len(slack.interactive.updates) == 1
    assert [a.action for a in await daemon.engine.governance.audit()] == ["approved"]


async def test_a_click_after_the_deadline_changes_nothing(
    make_daemon: MakeDaemon, slack: FakeSlack
) -> None:
    world = World()
    config = approving(slack, timeout_seconds=0.2)
    daemon = await make_daemon(scaling(world), config=config)
    run_id, ts, message = await pending(daemon, slack)
    [update] = await slack.interactive.wait_updates(1)  # the timeout decided
    assert update["ts"] == ts and "Expired" in text_of(update) and not has_buttons(update)
    assert (await slack.interactive.click(url(daemon), message, APPROVE, ALICE, SECRET))[0] == 200
    answer = await response_text(slack, 1)
    assert answer.startswith(f"Nothing changed: the approval of run {run_id} expired at ")
    assert world.calls == [] and [r.state for r in await runs(daemon)] == ["refused"]


async def test_a_click_after_an_admin_api_decision_changes_nothing(
    make_daemon: MakeDaemon, slack: FakeSlack
) -> None:
    world = World()
    daemon = await make_daemon(scaling(world), config=approving(slack))
    run_id, ts, message = await pending(daemon, slack)
    await daemon.engine.governance.deny(run_id, who="carol", reason="not during the sale")
    [update] = await slack.interactive.wait_updates(1)
    assert update["ts"] == ts and "Denied* by carol at" in text_of(update)
    assert update["text"].endswith("UTC: not during the sale")
    assert (await slack.interactive.click(url(daemon), message, APPROVE, ALICE, SECRET))[0] == 200
    answer = await response_text(slack, 1)
    assert answer.startswith(f"Nothing changed: run {run_id} was already denied by carol at ")
    assert world.calls == [] and len(slack.interactive.updates) == 1


async def test_guards_are_checked_again_when_approved_in_slack(
    make_daemon: MakeDaemon, slack: FakeSlack
) -> None:
    world = World()
    daemon = await make_daemon(scaling(world), config=approving(slack))
    run_id, _, message = await pending(daemon, slack)
    await daemon.engine.governance.pause(Scope.GLOBAL, who="frank", reason="freeze")
    assert (await slack.interactive.click(url(daemon), message, APPROVE, ALICE, SECRET))[0] == 200
    assert await response_text(slack, 1) == f"You approved run {run_id}; it ended refused."
    assert world.calls == []
    assert await refusals(daemon) == ["kill_switch: paused (global) by frank: freeze"]


async def test_a_signed_request_that_is_not_a_click_changes_nothing(
    make_daemon: MakeDaemon, slack: FakeSlack
) -> None:
    world = World()
    daemon = await make_daemon(scaling(world), config=approving(slack))
    run_id, _, message = await pending(daemon, slack)
    click = slack.interactive.block_actions(message, APPROVE, ALICE)
    other_button = {**click, "actions": [{**click["actions"][0], "action_id": "somebody_else"}]}
    bad_value = {**click, "actions": [{**click["actions"][0], "value": "not-a-run"}]}
    no_user = {key: value for key, value in click.items() if key != "user"}
    cases = [
        ({"type": "view_submission", "user": {"id": ALICE}}, 200),  # not ours: ignored
        (other_button, 200),
        (bad_value, 400),
        (no_user, 400),
        ([1, 2], 400),
    ]
    for payload, expected in cases:
        sent = slack.interactive.signed(payload, SECRET)
        status, _ = await slack.interactive.send(url(daemon), sent)
        assert status == expected, payload
    for body in (b"payload=%7Bnot+json", b"nothing=here"):
        sent = slack.interactive.signed_body(body, SECRET)
        status, _ = await slack.interactive.send(url(daemon), sent)
        assert status == 400, body
    [run] = await runs(daemon)
    assert [t.kind for t in await daemon.engine.store.timers_for(run.episode_id)] == [
        "approval_timeout"
    ]
    assert [a.run_id for a in await daemon.engine.governance.pending_approvals()] == [run_id]


def test_the_settings_say_what_is_missing_or_wrong(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"approval\.slack needs reports\.slack\.channel"):
        load_settings(environ={"REMEDIATOR_APPROVAL__SLACK__SIGNING_SECRET": SECRET})
    with pytest.raises(ValidationError, match=r"\['alice'\] are not Slack user"):
        SlackApprovalSettings(playbooks={"scale": ["alice"]})
    settings = load_settings(
        environ={
            "REMEDIATOR_APPROVAL__SLACK__SIGNING_SECRET": SECRET,
            "REMEDIATOR_REPORTS__SLACK__CHANNEL": "C0REPORTS",
            "REMEDIATOR_REPORTS__SLACK__TOKEN": "xoxb-1",
        }
    )
    assert settings.approval.slack.secret() == SECRET
    missing = SlackApprovalSettings(signing_secret_file=tmp_path / "nope")
    with pytest.raises(ConfigError, match=r"approval\.slack\.signing_secret: cannot read"):
        missing.secret()
    (tmp_path / "empty").write_text("\n")
    with pytest.raises(ConfigError, match=r"approval\.slack\.signing_secret: empty"):
        SlackApprovalSettings(signing_secret_file=tmp_path / "empty").secret()


async def test_no_buttons_where_nobody_may_press_them(
    make_daemon: MakeDaemon, slack: FakeSlack
) -> None:
    world = World()
    config = approving(slack)
    config["approval"]["slack"]["playbooks"] = {}  # only namespace `shop` has approvers
    daemon = await make_daemon(scaling(world), config=config)
    await post_and_settle(daemon, firing(labels("orders", namespace="web")))
    await slack.wait_for(2)
    waiting = slack.messages[1]
    assert "Waiting for approval" in text_of(waiting) and not has_buttons(waiting)
    [approval] = await daemon.engine.governance.pending_approvals()
    assert await daemon.engine.store.approval_message(approval.run_id) is None
