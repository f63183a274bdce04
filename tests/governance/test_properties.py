"""Property-based tests over random alert streams (hypothesis), through the real webhook:
no target acted on twice in one episode, rate limits hold, nothing outside the allowed
namespaces is touched, the storm breaker opens exactly at its threshold and nothing passes
while it is open."""

from __future__ import annotations

import tempfile
from collections import Counter
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import timedelta
from fnmatch import fnmatchcase
from pathlib import Path
from typing import Any

from aiohttp.test_utils import TestClient, TestServer
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from remediator.config import Settings
from remediator.engine.assembly import playbook_params
from remediator.engine.engine import Engine
from remediator.http.app import build_app
from remediator.http.auth import Credentials
from remediator.playbook import Registry, Target
from remediator.playbook.changes import PODS, REPLICAS
from remediator_testing.alerts import alert, notification
from tests.conftest import TOKEN, Daemon
from tests.governance.helpers import START, World, actions, add_playbook, refusals, runs

NAMESPACES = ["shop", "team-a", "team-secret", "kube-system", "default"]
ALLOW, DENY = ["shop", "team-*"], ["kube-system", "team-secret"]
PER_TARGET, PER_PLAYBOOK, ALL = 2, 5, 7
PROPERTY_SETTINGS = settings(
    max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)


@asynccontextmanager
async def daemon(registry: Registry, config: dict[str, Any]) -> AsyncIterator[Daemon]:
    with tempfile.TemporaryDirectory() as tmp:
        data = {"builtin_playbooks": False, "state": {"path": str(Path(tmp) / "state.db")}}
        settings_ = Settings(**data, **config)
        params, problems = playbook_params(registry, settings_)
        assert not problems
        engine = Engine(settings_, registry, params)
        client: TestClient[Any, Any] = TestClient(
            TestServer(build_app(settings_, engine, Credentials(bearer=TOKEN)))
        )
        await client.start_server()
        try:
            yield Daemon(client, engine, settings_)
        finally:
            await client.close()


def two_playbooks(world: World) -> Registry:
    registry = Registry()
    add_playbook(registry, world, name="scale", change=lambda t: {REPLICAS: [2, 3]})
    add_playbook(
        registry,
        world,
        name="restart",
        match='alertname="CrashLooping"',
        verb="create",
        resource="pods/eviction",
        touch=lambda t: [Target("Pod", f"{t.name}-{i}", t.namespace) for i in (1, 2)],
        change=lambda t: {PODS: 1},
    )
    return registry


# One alert: (alertname, namespace, deployment, episode number); the episode number gives a
# new startsAt, i.e. a new episode of the same alert.
alerts = st.tuples(
    st.sampled_from(["KafkaLagHigh", "CrashLooping"]),
    st.sampled_from(NAMESPACES),
    st.sampled_from(["api", "orders", "billing"]),
    st.integers(0, 2),
)
# A stream of notifications; each alert firing, re-sent (it appears again) or resolved.
streams = st.lists(
    st.lists(st.tuples(alerts, st.sampled_from(["firing", "firing", "resolved"])), max_size=4),
    min_size=1,
    max_size=8,
)


def payload(batch: list[tuple[tuple[str, str, str, int], str]]) -> dict[str, Any]:
    return notification(
        [
            alert(
                {"alertname": name, "namespace": ns, "deployment": dep, "severity": "warning"},
                status=status,
                starts_at=START + timedelta(hours=episode),
            )
            for (name, ns, dep, episode), status in batch
        ]
    )


def allowed(namespace: str | None) -> bool:
    assert namespace is not None
    return any(fnmatchcase(namespace, p) for p in ALLOW) and not any(
        fnmatchcase(namespace, p) for p in DENY
    )


@PROPERTY_SETTINGS
@given(stream=streams)
async def test_random_streams_never_break_the_guards(stream: list[Any]) -> None:
    world = World()
    config = {
        "mode": "auto",
        "guards": {
            "blast_radius": {"allow_namespaces": ALLOW, "deny_namespaces": DENY},
            "rate_limits": {
                "per_target": {"max_actions": PER_TARGET},
                "per_playbook": {"max_actions": PER_PLAYBOOK},
                "all_playbooks": {"max_actions": ALL},
            },
            "storm": {"distinct_targets": 1000},
        },
    }
    async with daemon(two_playbooks(world), config) as d:
        for batch in stream:
            if batch:
                status, _ = await d.post(payload(batch))
                assert status == 200
        await d.settle()
        real = [a for a in await actions(d) if a.state not in ("would", "refused")]
        acting = {r.id: r for r in await runs(d) if any(a.run_id == r.id for a in real)}
        # Nothing outside the allowed namespaces was touched.
        for _, key in world.calls:
            assert allowed(key.split("/")[1]), key
        # No target acted on twice in one episode; one pod per workload per episode.
        per_episode = Counter((r.episode_id, r.target_key) for r in acting.values())
        assert all(n == 1 for n in per_episode.values()), per_episode
        pods = Counter((a.episode_id, a.target_key) for a in real if a.change.get(PODS) is not None)
        assert all(n <= 1 for n in pods.values()), pods
        # Rate limits hold (the whole stream is within one window).
        assert all(n <= PER_TARGET for n in Counter(r.target_key for r in acting.values()).values())
        assert all(n <= PER_PLAYBOOK for n in Counter(r.playbook for r in acting.values()).values())
        assert len(acting) <= ALL
        # What was executed is exactly what was recorded as succeeded.
        assert sorted(k for _, k in world.calls) == sorted(
            a.object for a in real if a.state == "succeeded"
        )
        # Every firing episode ended in a decision; nothing is left running.
        assert all(r.state != "running" for r in await runs(d))


@PROPERTY_SETTINGS
@given(
    groups=st.lists(
        st.lists(st.sampled_from("abcdefg"), min_size=1, max_size=5), min_size=1, max_size=6
    ),
    threshold=st.integers(1, 5),
    wait_between=st.booleans(),
)
async def test_the_breaker_opens_at_its_threshold_and_then_nothing_passes(
    groups: list[list[str]], threshold: int, wait_between: bool
) -> None:
    """Any interleaving of alerts across notifications: the storm is decided on each whole
    notification before any of its alerts is dispatched, so no more than `threshold` distinct
    targets are ever acted on, and everything from the notification that crossed it on is held
    (no run at all), with one page."""
    world = World()
    registry = Registry()
    add_playbook(registry, world)
    config = {
        "mode": "auto",
        "guards": {
            "storm": {"distinct_targets": threshold},
            "rate_limits": {"per_target": {"max_actions": 100}},
        },
    }
    async with daemon(registry, config) as d:
        episode = 0
        for group in groups:
            alerts = []
            for name in group:
                labels = {"alertname": "KafkaLagHigh", "namespace": "shop", "deployment": name}
                alerts.append(alert(labels, starts_at=START + timedelta(minutes=episode)))
                episode += 1
            status, _ = await d.post(notification(alerts))
            assert status == 200
            if wait_between:
                await d.settle()
        await d.settle()
        # However the notifications were sliced for digestion: never more than the threshold.
        # A run dispatched before the breaker opened is refused by it at its action.
        assert len(set(world.targets())) <= threshold
        assert all(r.startswith("storm_breaker:") for r in await refusals(d))
        if not wait_between:
            return
        assert await refusals(d) == []
        seen: set[str] = set()
        expected: list[str] = []
        held = 0
        for group in groups:
            seen |= set(group)
            if held or len(seen) > threshold:
                held += len(group)
            else:
                expected += [f"Deployment/shop/{name}" for name in group]
        assert sorted(world.targets()) == sorted(expected)
        assert len(set(world.targets())) <= threshold
        breaker = await d.engine.governance.breaker()
        assert (breaker is not None) == (held > 0)
        assert await refusals(d) == []
        assert len(await runs(d)) == len(expected)  # a held alert has no run at all
        if breaker is not None:
            assert len(await d.engine.store.held_alerts(breaker.id)) == held
            pages = [
                e
                for e in await d.engine.store.escalations_for(breaker.page_key)
                if e.details["kind"] == "storm"
            ]
            assert len(pages) == 1
