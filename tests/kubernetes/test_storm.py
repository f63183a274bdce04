"""A storm of ServiceDown alerts through the real webhook, the built-in restart-on-down playbook,
the Kubernetes emulator, and the Slack and PagerDuty fakes: decided on the whole notification
before any action, one page, one Slack message updated with the list, nothing restarted."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Any

import pytest

from remediator_testing.alerts import alert, notification
from remediator_testing.fakes import FakePagerDuty, FakeSlack
from remediator_testing.kube import KubeEmulator
from tests.admin.helpers import READ, admin_config, call
from tests.conftest import Daemon, MakeDaemon
from tests.governance.helpers import PD_KEY, delivered, fast_delivery
from tests.kubernetes.helpers import KUBE, START, registry
from tests.reports.helpers import CHANNEL, SLACK_TOKEN, text_of

NAMESPACES = ("shop", "payments", "ingest")
PER_NAMESPACE = 20
THRESHOLD = 10  # guards.storm.distinct_targets, the default


@pytest.fixture
async def pagerduty() -> AsyncIterator[FakePagerDuty]:
    async with FakePagerDuty(routing_key=PD_KEY) as fake:
        yield fake


@pytest.fixture
async def slack() -> AsyncIterator[FakeSlack]:
    async with FakeSlack(SLACK_TOKEN, channels=[CHANNEL]) as fake:
        yield fake


def down(namespace: str, n: int) -> dict[str, str]:
    return {
        "alertname": "ServiceDown",
        "namespace": namespace,
        "deployment": f"svc-{n:02d}",
        "job": "technical-analysis",
        "severity": "critical",
    }


def storm_alerts() -> list[dict[str, str]]:
    return [down(ns, n) for ns in NAMESPACES for n in range(PER_NAMESPACE)]


def firing(labels: list[dict[str, str]]) -> dict[str, Any]:
    return notification([alert(a, starts_at=START) for a in labels])


def target(labels: dict[str, str]) -> str:
    return f"Deployment/{labels['namespace']}/{labels['deployment']}"


async def start(
    make_daemon: MakeDaemon,
    emu: KubeEmulator,
    pagerduty: FakePagerDuty,
    slack: FakeSlack,
    *,
    mode: str = "auto",
) -> Daemon:
    config = admin_config(
        mode=mode,
        kubernetes={"mode": "url", "url": emu.url, **KUBE},
        playbooks={"restart-on-down": {"params": {"rollout_deadline_seconds": 10}}},
        escalation={
            "pagerduty": {"routing_key": PD_KEY, "events_url": pagerduty.url},
            "delivery": fast_delivery(),
        },
        reports={
            "slack": {"channel": CHANNEL, "token": SLACK_TOKEN, "base_url": slack.api_url},
            "batch_window_seconds": 0.05,
        },
    )
    return await make_daemon(registry("restart_on_down"), config=config)


async def deploy_all(
    emu: KubeEmulator, labels: list[dict[str, str]], *, rolled_out: bool = True
) -> None:
    for namespace in sorted({a["namespace"] for a in labels} - {"shop", "default"}):
        emu.add_namespace(namespace)
    for a in labels:  # one replica each only where it will be restarted: 60 pods are slow
        replicas = 1 if rolled_out else 0
        emu.add_deployment(a["namespace"], a["deployment"], replicas=replicas, image="svc:1")
    for a in labels if rolled_out else []:
        await emu.wait_rolled_out(a["namespace"], a["deployment"])


def mutations(emu: KubeEmulator) -> list[str]:
    return [f"{r.method} {r.path}" for r in emu.requests if r.method != "GET"]


async def post_and_digest(daemon: Daemon, payload: dict[str, Any]) -> None:
    status, answer = await daemon.post(payload)
    assert status == 200, answer
    await daemon.engine.digester.drained()


# Shadow mode never touches a Deployment, so its variant skips creating 60 of them (the
# emulator takes tens of seconds for that on a loaded machine).
@pytest.mark.parametrize(
    ("mode", "present"),
    [("auto", True), ("auto", False), ("shadow", False)],
    ids=["deployments-present", "deployments-absent", "shadow-mode"],
)
@pytest.mark.parametrize("groups", [1, 3], ids=["one-group-of-60", "three-groups-of-20"])
async def test_a_recorded_storm_restarts_nothing_pages_once_and_lists_every_alert(
    make_daemon: MakeDaemon,
    emu: KubeEmulator,
    pagerduty: FakePagerDuty,
    slack: FakeSlack,
    groups: int,
    present: bool,
    mode: str,
) -> None:
    labels = storm_alerts()
    if present:  # nothing may touch them: no need to wait for their pods
        await deploy_all(emu, labels, rolled_out=False)
    daemon = await start(make_daemon, emu, pagerduty, slack, mode=mode)
    size = len(labels) // groups
    batches = [labels[i : i + size] for i in range(0, len(labels), size)]

    # The first notification alone opens the breaker, before any of its alerts is dispatched.
    await post_and_digest(daemon, firing(batches[0]))
    breaker = await daemon.engine.governance.breaker()
    assert breaker is not None
    assert breaker.reason.startswith(f"{size} distinct targets alerting")
    for batch in batches[1:]:
        await post_and_digest(daemon, firing(batch))
    await daemon.settle()
    await delivered(daemon)

    store = daemon.engine.store
    episodes = await store.list_episodes(limit=1000)
    assert len(episodes) == len(labels)
    assert mutations(emu) == []  # nothing restarted, nothing patched
    for episode in episodes:
        assert await store.runs_for(episode.id) == []  # held: no claim, no run, no action
        assert await store.escalations_for(episode.id) == []
    # The admin API lists every alert of the storm.
    status, body = await call(daemon, "GET", "/admin/breaker", token=READ)
    assert status == 200 and body["open"] is True and body["held_count"] == len(labels)
    assert sorted(h["target_key"] for h in body["held"]) == sorted(target(a) for a in labels)
    assert {h["episode_id"] for h in body["held"]} == {e.id for e in episodes}
    # Exactly one page; none in shadow mode.
    if mode == "auto":
        [page] = pagerduty.events
        assert page["event_action"] == "trigger" and page["dedup_key"] == breaker.page_key
    else:
        assert pagerduty.requests == []
    # One Slack message, updated in place (at most once per notification), listing them all.
    [(ts, posted)] = slack.posted
    assert len(slack.interactive.updates) <= groups and slack.invalid == []
    text = text_of(slack.interactive.current(ts))
    assert f"{len(labels)} alert(s) held" in text
    assert all(target(a) in text for a in labels)
    if mode == "shadow":
        assert "Would have escalated" in text_of(posted)
    else:
        assert "Storm breaker open" in text_of(posted)


async def test_a_growing_storm_opens_at_the_threshold(
    make_daemon: MakeDaemon, emu: KubeEmulator, pagerduty: FakePagerDuty, slack: FakeSlack
) -> None:
    """One Alertmanager group growing 10 -> 20 -> 30 alerts: the first notification is within
    the threshold and acted on; the second crosses it and nothing more is acted on."""
    labels = [down("shop", n) for n in range(30)]
    await deploy_all(emu, labels)
    daemon = await start(make_daemon, emu, pagerduty, slack)
    for size in (10, 20, 30):
        await post_and_digest(daemon, firing(labels[:size]))
        await daemon.settle()
    # The first notification was dispatched whole; nothing after it: at most the threshold.
    runs = [
        r
        for e in await daemon.engine.store.list_episodes()
        for r in await daemon.engine.store.runs_for(e.id)
    ]
    assert sorted(r.target_key for r in runs) == sorted(target(a) for a in labels[:THRESHOLD])
    restarted = {m.split()[1] for m in mutations(emu) if m.startswith("PATCH")}
    assert 0 < len(restarted) <= THRESHOLD
    breaker = await daemon.engine.governance.breaker()
    assert breaker is not None and breaker.reason.startswith("20 distinct targets alerting")
    held = await daemon.engine.store.held_alerts(breaker.id)
    assert sorted(h.target_key for h in held) == sorted(target(a) for a in labels[THRESHOLD:])
    await delivered(daemon)
    assert [e["dedup_key"] for e in pagerduty.events] == [breaker.page_key]


async def test_after_closing_the_breaker_a_new_alert_is_acted_on_and_reported(
    make_daemon: MakeDaemon, emu: KubeEmulator, pagerduty: FakePagerDuty, slack: FakeSlack
) -> None:
    labels = storm_alerts()[:PER_NAMESPACE]
    fresh = down("shop", 99)
    await deploy_all(emu, [*labels, fresh])
    daemon = await start(make_daemon, emu, pagerduty, slack)
    await post_and_digest(daemon, firing(labels))
    await daemon.settle()
    status, closed = await call(
        daemon, "POST", "/admin/breaker/close", json={"reason": "network partition healed"}
    )
    assert status == 200 and closed["closed_by"] == "alice"
    await delivered(daemon)
    [(ts, _)] = slack.posted
    assert "Storm breaker closed" in text_of(slack.interactive.current(ts))  # the message says so
    assert [e["event_action"] for e in pagerduty.events] == ["trigger", "resolve"]

    status, answer = await daemon.post(
        notification([alert(fresh, starts_at=START + timedelta(minutes=5))])
    )
    assert status == 200, answer
    await daemon.settle()
    await delivered(daemon)
    [patch] = mutations(emu)
    assert patch.startswith(
        f"PATCH /apis/apps/v1/namespaces/shop/deployments/{fresh['deployment']}"
    )
    [episode] = [
        e for e in await daemon.engine.store.list_episodes() if e.labels["deployment"] == "svc-99"
    ]
    [run] = await daemon.engine.store.runs_for(episode.id)
    assert run.state == "acted", run.error
    # Reported normally: a thread of its own with the run's report.
    header_ts = await daemon.engine.store.report_thread(episode.id)
    assert header_ts is not None and header_ts != ts
    assert any("Acted" in text_of(m) for m in slack.thread(header_ts))
    assert len(pagerduty.events) == 2  # no new page
