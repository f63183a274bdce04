"""One Slack thread per episode: the header when the alert is taken up, then a reply per step.
What fired, the exact change, the evidence, and "would have" in shadow mode."""

from __future__ import annotations

from remediator_testing.fakes import FakeSlack
from tests.conftest import Daemon, MakeDaemon
from tests.governance.helpers import World, eventually, firing, labels, post_and_settle, resolved
from tests.reports.helpers import CHANNEL, reporting, scaling, text_of


async def test_acted_episode_gets_one_thread_with_the_change(
    make_daemon: MakeDaemon, slack: FakeSlack
) -> None:
    daemon = await make_daemon(scaling(World()), config=reporting(slack))
    await post_and_settle(daemon, firing(labels("orders")))
    await slack.wait_for(2)
    await post_and_settle(daemon, resolved(labels("orders")))
    await slack.wait_for(3)
    assert slack.invalid == []
    (head_ts, head), (_, acted), (_, done) = slack.posted
    assert head["channel"] == CHANNEL and "thread_ts" not in head
    assert "KafkaLagHigh (warning)" in text_of(head) and "taken up by `scale`" in text_of(head)
    assert "`deployment=orders`" in text_of(head) and "`namespace=shop`" in text_of(head)
    assert "http://prometheus:9090/graph" in text_of(head)  # the link to the alert's expression
    assert acted["thread_ts"] == head_ts and done["thread_ts"] == head_ts
    assert "Acted" in text_of(acted) and "replicas 3 → 5" in text_of(acted)
    assert "Resolved" in text_of(done)
    [episode] = await daemon.engine.store.list_episodes()
    assert await daemon.engine.store.report_thread(episode.id) == head_ts


async def test_shadow_mode_reports_say_would_have(
    make_daemon: MakeDaemon, slack: FakeSlack
) -> None:
    world = World()
    daemon = await make_daemon(scaling(world), config=reporting(slack, mode="shadow"))
    await post_and_settle(daemon, firing(labels("orders")))
    _, report = (await slack.wait_for(2))[0], slack.messages[1]
    assert world.calls == []
    assert "would have" in text_of(report) and "replicas 3 → 5" in text_of(report)


async def test_an_escalation_is_a_reply_in_the_thread(
    make_daemon: MakeDaemon, slack: FakeSlack
) -> None:
    config = reporting(slack)
    # A run refused at its action (3 -> 5 replicas over the cap): a report, then an escalation.
    config["guards"] = {"blast_radius": {"max_replicas": 4}}
    daemon = await make_daemon(scaling(World()), config=config)
    await post_and_settle(daemon, firing(labels("orders")))
    await slack.wait_for(3)
    (head_ts, _), (_, refused), (_, escalated) = slack.posted
    assert "Refused" in text_of(refused) and refused["thread_ts"] == head_ts
    assert escalated["thread_ts"] == head_ts and escalated.get("reply_broadcast") is True
    assert "Escalated" in text_of(escalated) and "<!here>" in text_of(escalated)


async def test_reports_go_out_in_order_after_429_and_500(
    make_daemon: MakeDaemon, slack: FakeSlack
) -> None:
    from remediator_testing.fakes import Failure

    slack.fail_next(Failure(429, retry_after=0.3), Failure(500), Failure(500), Failure(500))
    daemon = await make_daemon(scaling(World()), config=reporting(slack))
    started = daemon.engine.metrics  # the remediation itself never waits for Slack
    await post_and_settle(daemon, firing(labels("orders")))
    await post_and_settle(daemon, resolved(labels("orders")))
    assert started.runs.labels(playbook="scale", outcome="acted")._value.get() == 1
    await slack.wait_for(3, within=10)
    statuses = [r.status for r in slack.requests]
    assert statuses[0] == 429 and 500 in statuses
    (head_ts, _), (_, acted), (_, done) = slack.posted
    assert "Acted" in text_of(acted) and "Resolved" in text_of(done)
    assert acted["thread_ts"] == done["thread_ts"] == head_ts
    await eventually(lambda: _no_pending(daemon))


async def _no_pending(daemon: Daemon) -> bool:
    pending = await daemon.engine.store.outbox_pending()
    return not pending
