"""A daemon in approve mode whose reports carry Slack buttons, and a fake Slack to click them."""

from __future__ import annotations

from typing import Any

from remediator.engine.delivery.approval_render import APPROVE, DENY
from remediator_testing.fakes import FakeSlack
from tests.conftest import Daemon
from tests.governance.helpers import eventually, firing, labels, post_and_settle
from tests.reports.helpers import reporting

SECRET = "8f14e45fceea167a5a36dedd4bea2543"  # the Slack app's signing secret
ALICE = "U0ALICE1"  # may approve the `scale` playbook
BOB = "U0BOB123"  # in the on-call user group, which may approve in namespace `shop`
MALLORY = "U0MALLORY"  # nobody
ONCALL = "S0ONCALL1"

__all__ = ["ALICE", "APPROVE", "BOB", "DENY", "MALLORY", "ONCALL", "SECRET"]


def approving(slack: FakeSlack, **approval: Any) -> dict[str, Any]:
    config = reporting(slack, mode="approve")
    config["approval"] = {
        "slack": {
            "signing_secret": SECRET,
            "playbooks": {"scale": [ALICE]},
            "namespaces": {"shop": [ONCALL]},
        },
        **approval,
    }
    slack.interactive.usergroups[ONCALL] = [BOB]
    return config


def url(daemon: Daemon) -> str:
    return str(daemon.client.make_url("/slack/interactions"))


def has_buttons(message: dict[str, Any]) -> bool:
    return any(block.get("type") == "actions" for block in message.get("blocks") or [])


async def button_message(slack: FakeSlack) -> tuple[str, dict[str, Any]]:
    """The posted message with the Approve/Deny buttons, and its ts."""
    found: list[tuple[str, dict[str, Any]]] = []

    async def posted() -> bool:
        found[:] = [(ts, m) for ts, m in slack.posted if has_buttons(m)]
        return bool(found)

    await eventually(posted)
    return found[0]


async def pending(daemon: Daemon, slack: FakeSlack) -> tuple[int, str, dict[str, Any]]:
    """An alert whose run waits for approval: its run id, and the message with buttons."""
    await post_and_settle(daemon, firing(labels("orders")))
    [approval] = await daemon.engine.governance.pending_approvals()
    ts, message = await button_message(slack)

    async def delivered() -> bool:  # the message's ts recorded, nothing left in the outbox
        store = daemon.engine.store
        return await store.approval_message(approval.run_id) is not None and not sum(
            (await store.outbox_pending()).values()
        )

    await eventually(delivered)
    return approval.run_id, ts, message


async def response_text(slack: FakeSlack, count: int) -> str:
    """The text of the `count`-th ephemeral answer (waiting for it)."""
    responses = await slack.interactive.wait_responses(count)
    answer = responses[count - 1]
    assert answer["response_type"] == "ephemeral" and answer["replace_original"] is False
    return str(answer["text"])
