"""Say what happened, once: a run that changed nothing but needs a human does not say "nothing
to do", and with reports and escalations on the same Slack channel an escalation is posted
once."""

from __future__ import annotations

from typing import Any

from remediator_testing.alerts import alert, notification
from remediator_testing.fakes import FakeSlack
from remediator_testing.kube import KubeEmulator
from tests.conftest import Daemon, MakeDaemon
from tests.governance.helpers import World, eventually, firing, labels, post_and_settle
from tests.kubernetes.helpers import KUBE, registry
from tests.reports.helpers import CHANNEL, SLACK_TOKEN, reporting, scaling, text_of


async def _nothing_pending(daemon: Daemon) -> bool:
    return await daemon.engine.store.outbox_pending() == {}


async def test_scale_on_lag_without_partitions_says_a_human_is_needed(
    make_daemon: MakeDaemon, slack: FakeSlack, emu: KubeEmulator
) -> None:
    emu.add_deployment("shop", "consumer", replicas=2)
    config: dict[str, Any] = reporting(slack)
    config["kubernetes"] = {"mode": "url", "url": emu.url, **KUBE}
    daemon = await make_daemon(registry("scale_on_lag"), config=config)
    lag = {
        "alertname": "KafkaLagHigh",
        "namespace": "shop",
        "deployment": "consumer",
        "consumergroup": "ingest",
        "topic": "ticks",
    }
    status, _ = await daemon.post(notification([alert(lag)]))
    assert status == 200
    await daemon.settle()
    await slack.wait_for(3)
    await eventually(lambda: _nothing_pending(daemon))
    (head_ts, _), (_, report), (_, escalated) = slack.posted
    said = text_of(report)
    assert "Nothing to do" not in said
    assert "Nothing changed: a human is needed" in said
    assert "partition count of topic 'ticks' is unknown" in said
    assert report["thread_ts"] == escalated["thread_ts"] == head_ts
    assert "Escalated" in text_of(escalated)


async def test_reports_and_escalations_on_one_channel_post_an_escalation_once(
    make_daemon: MakeDaemon, slack: FakeSlack
) -> None:
    config = reporting(slack)
    config["escalation"]["slack"] = {
        "channel": CHANNEL,
        "token": SLACK_TOKEN,
        "base_url": slack.api_url,
        "mention": "<!subteam^S0ONCALL>",
    }
    # A run refused at its action (3 -> 5 replicas over the cap): a report, then an escalation.
    config["guards"] = {"blast_radius": {"max_replicas": 4}}
    daemon = await make_daemon(scaling(World()), config=config)
    await post_and_settle(daemon, firing(labels("orders")))
    await slack.wait_for(3)
    await eventually(lambda: _nothing_pending(daemon))
    escalations = [m for m in slack.messages if ":rotating_light:" in text_of(m)]
    assert len(escalations) == 1, [text_of(m) for m in slack.messages]
    [escalated] = escalations
    head_ts = slack.posted[0][0]
    assert escalated["thread_ts"] == head_ts and escalated.get("reply_broadcast") is True
    assert text_of(escalated).startswith("<!subteam^S0ONCALL> ")
    assert len(slack.messages) == 3 and slack.invalid == []
