"""Slack's three seconds and restarts: the click is answered before the work, is durable when
answered, and a restart between the request and the click loses nothing."""

from __future__ import annotations

import asyncio

from remediator_testing.fakes import FakeSlack
from tests.conftest import BOTH_BACKENDS, MakeDaemon
from tests.governance.helpers import World, eventually, runs
from tests.reports.helpers import scaling
from tests.slack.helpers import ALICE, APPROVE, SECRET, approving, pending, response_text, url

pytestmark = BOTH_BACKENDS


async def test_the_answer_comes_before_the_work(make_daemon: MakeDaemon, slack: FakeSlack) -> None:
    world = World(gate=asyncio.Event())  # the approved call waits until the test lets it go
    daemon = await make_daemon(scaling(world), config=approving(slack))
    run_id, _, message = await pending(daemon, slack)
    interaction = slack.interactive.signed(
        slack.interactive.block_actions(message, APPROVE, ALICE), SECRET
    )
    status, seconds = await slack.interactive.send(url(daemon), interaction)
    assert status == 200 and seconds < 3.0
    await asyncio.wait_for(world.started.wait(), 5)  # the approved run is acting, after the answer
    assert world.calls == [] and world.waiting == 1
    assert world.gate is not None
    world.gate.set()
    assert await response_text(slack, 1) == f"You approved run {run_id}; it ended acted."
    assert world.calls == [("scale", "Deployment/shop/orders")]


async def test_a_restart_between_the_request_and_the_click(
    make_daemon: MakeDaemon, slack: FakeSlack
) -> None:
    world = World()
    registry, config = scaling(world), approving(slack)
    first = await make_daemon(registry, config=config)
    run_id, ts, message = await pending(first, slack)
    await first.client.close()

    second = await make_daemon(registry, config=config)
    status, _ = await slack.interactive.click(url(second), message, APPROVE, ALICE, SECRET)
    assert status == 200
    [update] = await slack.interactive.wait_updates(1)
    assert update["ts"] == ts and "by <@U0ALICE1>" in update["text"]
    assert await response_text(slack, 1) == f"You approved run {run_id}; it ended acted."
    assert world.calls == [("scale", "Deployment/shop/orders")]


async def test_a_click_answered_before_a_crash_is_processed_after_the_restart(
    make_daemon: MakeDaemon, slack: FakeSlack
) -> None:
    world = World()
    registry, config = scaling(world), approving(slack)
    first = await make_daemon(registry, config=config)
    run_id, _, message = await pending(first, slack)
    await first.engine.timers.stop()  # the daemon dies right after answering
    status, _ = await slack.interactive.click(url(first), message, APPROVE, ALICE, SECRET)
    assert status == 200
    await first.client.close()
    assert world.calls == []

    second = await make_daemon(registry, config=config)

    async def acted() -> bool:
        return [r.state for r in await runs(second)] == ["acted"]

    await eventually(acted)
    assert world.calls == [("scale", "Deployment/shop/orders")]
    assert await response_text(slack, 1) == f"You approved run {run_id}; it ended acted."
