"""A run in flight shows its progress in its thread: a rolling restart that waits for each
replacement pod posts each eviction as it happens, before the run's report; a quick run says it
all in its report; Slack being down never holds the run back."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from typing import Any

import pytest

from remediator_testing.alerts import alert, notification
from remediator_testing.fakes import Failure, FakeSlack
from remediator_testing.kube import KubeEmulator
from tests.conftest import Daemon, MakeDaemon
from tests.governance.helpers import World, eventually, firing, labels, post_and_settle
from tests.kubernetes.helpers import KUBE, registry
from tests.reports.helpers import reporting, scaling, text_of

# Each replacement pod is Ready a second after it starts: a three-pod restart takes 3 s or more.
READY_AFTER = 1.0


@pytest.fixture
async def slow_emu() -> AsyncIterator[KubeEmulator]:
    emulator = KubeEmulator(tick=0.02, ready_after=READY_AFTER, crash_interval=0.1)
    await emulator.start()
    emulator.add_namespace("shop")
    try:
        yield emulator
    finally:
        await emulator.stop()


def _ready(emu: KubeEmulator) -> int:
    return sum(
        1
        for pod in emu.pods("shop", "app=redis")
        for c in pod["status"].get("conditions") or []
        if c["type"] == "Ready" and c["status"] == "True"
    )


async def _run_state(daemon: Daemon) -> str:
    [episode] = await daemon.engine.store.list_episodes()
    [run] = await daemon.engine.store.runs_for(episode.id)
    return str(run.state)


async def test_a_rolling_restart_posts_each_eviction_before_it_ends(
    make_daemon: MakeDaemon, slack: FakeSlack, slow_emu: KubeEmulator
) -> None:
    slow_emu.add_statefulset("shop", "redis", replicas=3, image="redis:7")
    await slow_emu.wait_for(lambda: _ready(slow_emu) == 3, what="3 ready redis pods")
    config: dict[str, Any] = reporting(slack, progress_after_seconds=0.2)
    config["kubernetes"] = {"mode": "url", "url": slow_emu.url, **KUBE}
    config["guards"] = {"blast_radius": {"max_pods_per_episode": 3}}
    daemon = await make_daemon(registry("statefulset_rolling_restart"), config=config)
    redis_down = {"alertname": "RedisCacheDown", "namespace": "shop", "statefulset": "redis"}
    status, _ = await daemon.post(notification([alert(redis_down)]))
    assert status == 200

    # The header and the first eviction arrive while the run still waits for its pods.
    await slack.wait_for(3, within=10)
    assert await _run_state(daemon) == "running"
    (head_ts, head), (_, intent), (_, done) = slack.posted[:3]
    assert "RedisCacheDown" in text_of(head) and "taken up by `statefulset-rolling-restart`" in (
        text_of(head)
    )
    assert intent["thread_ts"] == done["thread_ts"] == head_ts
    assert "evict pod shop/redis-2" in text_of(intent) and "(1 pod of 3 replicas)…" in text_of(
        intent
    )
    assert "evict pod shop/redis-2" in text_of(done) and "_succeeded_" in text_of(done)

    await daemon.settle()
    assert await _run_state(daemon) == "acted"
    await eventually(lambda: _nothing_pending(daemon), within=10)
    messages = slack.messages
    report = messages[-1]
    assert "Acted" in text_of(report) and report["thread_ts"] == head_ts
    notes = [text_of(m) for m in messages[1:-1]]
    assert all(m["thread_ts"] == head_ts for m in messages[1:])
    evicted = [n.split("evict pod shop/")[1].split(" ")[0] for n in notes if "_succeeded_" in n]
    assert evicted[:2] == ["redis-2", "redis-1"]  # in the order they happened
    assert slack.invalid == []


async def test_a_quick_run_posts_no_progress_notes(
    make_daemon: MakeDaemon, slack: FakeSlack
) -> None:
    daemon = await make_daemon(scaling(World()), config=reporting(slack))
    await post_and_settle(daemon, firing(labels("orders")))
    await slack.wait_for(2)
    await eventually(lambda: _nothing_pending(daemon))
    assert len(slack.messages) == 2  # the header and the report: the run took no time
    assert "Acted" in text_of(slack.messages[1])


async def test_slack_down_never_holds_a_run_back(make_daemon: MakeDaemon, slack: FakeSlack) -> None:
    slack.fail_next(*[Failure(503)] * 1000)
    world = World()
    daemon = await make_daemon(scaling(world), config=reporting(slack, progress_after_seconds=0))
    started = time.monotonic()
    await post_and_settle(daemon, firing(labels("orders")))
    assert time.monotonic() - started < 2.0
    assert world.targets() == ["Deployment/shop/orders"]
    slack.recover()
    await eventually(lambda: _nothing_pending(daemon), within=10)
    # Every step was noted, in order, and the report came last.
    texts = [text_of(m) for m in slack.messages]
    assert "taken up by `scale`" in texts[0], texts
    assert texts[1].startswith(":hourglass_flowing_sand: patch Deployment/shop/orders")
    assert "_succeeded_" in texts[2] and "Acted" in texts[3] and len(texts) == 4


async def _nothing_pending(daemon: Daemon) -> bool:
    return await daemon.engine.store.outbox_pending() == {}
