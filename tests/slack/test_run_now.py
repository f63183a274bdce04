"""Run now: a shadow run's report offers approvers to run the playbook for real, once, through
every guard (a run by hand)."""

from __future__ import annotations

from typing import Any

from remediator.engine.delivery.approval_render import RUN_NOW
from remediator.store.records import Scope
from remediator_testing.fakes import FakeSlack
from tests.conftest import BOTH_BACKENDS, Daemon, MakeDaemon
from tests.governance.helpers import World, eventually, firing, labels, post_and_settle, runs
from tests.reports.helpers import scaling, text_of
from tests.slack.helpers import (
    ALICE,
    MALLORY,
    SECRET,
    approving,
    button_message,
    has_buttons,
    response_text,
    url,
)

pytestmark = BOTH_BACKENDS


def shadow(slack: FakeSlack) -> dict[str, Any]:
    return {**approving(slack), "mode": "shadow"}


async def shadow_report(daemon: Daemon, slack: FakeSlack) -> tuple[int, str, dict[str, Any]]:
    await post_and_settle(daemon, firing(labels("orders")))
    [run] = await runs(daemon)
    assert run.state == "shadow"
    ts, message = await button_message(slack)

    async def recorded() -> bool:
        return await daemon.engine.store.approval_message(run.id) is not None

    await eventually(recorded)
    return run.id, ts, message


async def test_run_now_runs_a_shadow_run_for_real_once(
    make_daemon: MakeDaemon, slack: FakeSlack
) -> None:
    world = World()
    daemon = await make_daemon(scaling(world), config=shadow(slack))
    run_id, ts, message = await shadow_report(daemon, slack)
    assert "Shadow mode: would have" in text_of(message) and "replicas 3 → 5" in text_of(message)
    [button] = [e for b in message["blocks"] if b["type"] == "actions" for e in b["elements"]]
    assert button["action_id"] == RUN_NOW and "confirm" in button
    assert world.calls == []

    assert (await slack.interactive.click(url(daemon), message, RUN_NOW, MALLORY, SECRET))[0] == 200
    assert (await response_text(slack, 1)).startswith(
        f":no_entry: You are not allowed to run now run {run_id}"
    )
    assert (await slack.interactive.click(url(daemon), message, RUN_NOW, ALICE, SECRET))[0] == 200
    answer = await response_text(slack, 2)
    assert answer.startswith("You ran scale now on Deployment/shop/orders; it ended acted")
    assert world.calls == [("scale", "Deployment/shop/orders")]
    [update] = await slack.interactive.wait_updates(1)
    assert update["ts"] == ts and not has_buttons(update)
    assert "Run now* by <@U0ALICE1>" in text_of(update) and "acted (episode" in text_of(update)

    assert (await slack.interactive.click(url(daemon), message, RUN_NOW, ALICE, SECRET))[0] == 200
    again = await response_text(slack, 3)
    assert again.startswith(f"Nothing changed: run {run_id} was already run now by <@U0ALICE1>")
    assert world.calls == [("scale", "Deployment/shop/orders")]
    audit = [(a.who, a.action) for a in await daemon.engine.governance.audit()]
    assert ("slack:U0ALICE1", "run_now") in audit and (
        "slack:U0MALLORY",
        "slack_not_allowed",
    ) in audit


async def test_run_now_goes_through_the_guards(make_daemon: MakeDaemon, slack: FakeSlack) -> None:
    world = World()
    daemon = await make_daemon(scaling(world), config=shadow(slack))
    _, _, message = await shadow_report(daemon, slack)
    await daemon.engine.governance.pause(Scope.PLAYBOOK, "scale", who="frank", reason="freeze")
    assert (await slack.interactive.click(url(daemon), message, RUN_NOW, ALICE, SECRET))[0] == 200
    assert (await response_text(slack, 1)).startswith(
        "You ran scale now on Deployment/shop/orders; it ended refused"
    )
    assert world.calls == []
