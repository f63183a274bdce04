"""Test playbooks and payload helpers for the governance tests."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from remediator.playbook import (
    JSON,
    Action,
    Budget,
    Registry,
    Target,
    Verify,
    playbook,
    targets,
)
from remediator.store.records import ActionRecord, RunRecord
from remediator_testing.alerts import alert, notification
from tests.conftest import Daemon

START = datetime(2026, 11, 22, 3, 0, tzinfo=UTC)
PD_KEY = "R" * 32


def labels(deployment: str = "orders", namespace: str = "shop", **extra: str) -> dict[str, str]:
    return {
        "alertname": "KafkaLagHigh",
        "namespace": namespace,
        "deployment": deployment,
        "severity": "warning",
        **extra,
    }


def firing(*alert_labels: Mapping[str, str], minutes: int = 0) -> dict[str, Any]:
    return notification(
        [alert(a, starts_at=START + timedelta(minutes=minutes)) for a in alert_labels]
    )


def resolved(*alert_labels: Mapping[str, str], minutes: int = 0) -> dict[str, Any]:
    return notification(
        [
            alert(a, status="resolved", starts_at=START + timedelta(minutes=minutes))
            for a in alert_labels
        ]
    )


@dataclass
class World:
    """What the test playbooks really did: (playbook, object key) per executed call."""

    calls: list[tuple[str, str]] = field(default_factory=list)
    gate: asyncio.Event | None = None  # when set, calls wait for it (to hold actions in flight)
    started: asyncio.Event = field(default_factory=asyncio.Event)
    waiting: int = 0  # calls held at the gate now

    def targets(self) -> list[str]:
        return [key for _, key in self.calls]


Change = Callable[[Target], Mapping[str, JSON]]
Touch = Callable[[Target], list[Target]]


def add_playbook(
    registry: Registry,
    world: World,
    *,
    name: str = "scale",
    match: str = 'alertname="KafkaLagHigh"',
    change: Change | None = None,
    touch: Touch | None = None,
    verb: str = "patch",
    resource: str = "deployments/scale",
    verify: Verify | None = None,
    priority: int = 0,
    budget: Budget | None = None,
) -> None:
    """A playbook making one action per touched object (default: the target itself)."""

    @playbook(
        match=match,
        target=targets.deployment(),
        name=name,
        registry=registry,
        verify=verify,
        priority=priority,
        budget=budget,
    )
    async def act(*, run: Any, target: Target, **_: Any) -> None:
        for obj in touch(target) if touch else [target]:

            async def call(obj: Target = obj) -> str:
                world.started.set()
                if world.gate is not None:
                    world.waiting += 1
                    await world.gate.wait()
                    world.waiting -= 1
                world.calls.append((name, obj.key))
                return "ok"

            await run.act(
                Action(
                    verb,
                    resource,
                    obj,
                    f"{verb} {obj.key}",
                    body={"spec": {"replicas": 3}},
                    change=dict(change(target)) if change else {},
                ),
                call,
            )


def registry_with(world: World, **kwargs: Any) -> Registry:
    registry = Registry()
    add_playbook(registry, world, **kwargs)
    return registry


async def runs(daemon: Daemon) -> list[RunRecord]:
    out: list[RunRecord] = []
    for episode in await daemon.engine.store.list_episodes(limit=10_000):
        out += await daemon.engine.store.runs_for(episode.id)
    return sorted(out, key=lambda r: r.id)


async def actions(daemon: Daemon) -> list[ActionRecord]:
    out: list[ActionRecord] = []
    for episode in await daemon.engine.store.list_episodes(limit=10_000):
        out += await daemon.engine.store.actions_for(episode.id)
    return sorted(out, key=lambda a: a.id)


async def refusals(daemon: Daemon) -> list[str]:
    """`guard: reason` of every refused action, in order."""
    return [a.error or "" for a in await actions(daemon) if a.state == "refused"]


async def held(daemon: Daemon) -> list[str]:
    """The targets of the alerts the open storm breaker holds, in arrival order."""
    breaker = await daemon.engine.governance.breaker()
    assert breaker is not None
    return [h.target_key for h in await daemon.engine.store.held_alerts(breaker.id)]


async def eventually(check: Callable[[], Awaitable[bool]], within: float = 5.0) -> None:
    async with asyncio.timeout(within):
        while not await check():
            await asyncio.sleep(0.01)


async def delivered(daemon: Daemon, within: float = 10.0) -> None:
    """Wait until the outbox has delivered everything queued so far (on every channel)."""

    async def empty() -> bool:
        return not any((await daemon.engine.store.outbox_pending()).values())

    await eventually(empty, within)


async def post_and_settle(daemon: Daemon, payload: Mapping[str, Any]) -> None:
    status, answer = await daemon.post(payload)
    assert status == 200, answer
    await daemon.settle()


def auto(**config: Any) -> dict[str, Any]:
    """A config in auto mode, verification off unless a test asks for it."""
    return {"mode": "auto", **config}


def guards(**sections: Any) -> dict[str, Any]:
    return {"guards": sections}


def fast_delivery() -> dict[str, Any]:
    """Outbox retries in milliseconds, so failure tests take no time."""
    return {
        "quick_retries": 1,
        "quick_wait_seconds": 0.01,
        "initial_backoff_seconds": 0.05,
        "max_backoff_seconds": 0.2,
        "jitter_seconds": 0.01,
        "poll_seconds": 0.05,
    }


def paging(pagerduty_url: str, **escalation: Any) -> dict[str, Any]:
    return {
        "pagerduty": {"routing_key": PD_KEY, "events_url": pagerduty_url},
        "delivery": fast_delivery(),
        **escalation,
    }


async def metric(daemon: Daemon, line_start: str) -> float:
    """The value of the first /metrics line starting with `line_start` (0 if none)."""
    text = await (await daemon.client.get("/metrics")).text()
    for line in text.splitlines():
        if line.startswith(line_start):
            return float(line.rsplit(" ", 1)[1])
    return 0.0
