"""Starting the daemon with the playbook against the test server, and reading what it recorded."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any

from remediator.alertmanager import Alert
from remediator.playbook import Registry
from remediator.store.records import (
    ActionRecord,
    DecisionRecord,
    EpisodeRecord,
    EscalationRecord,
    RunRecord,
)
from remediator.testing.alerts import alert, notification
from tests.conftest import Daemon, MakeDaemon
from tests.postgres.conftest import PLAYBOOK_NAME, Role

THRESHOLD = 2.0  # seconds: the runbook's 5 minutes, shortened


async def past_threshold() -> None:
    await asyncio.sleep(THRESHOLD + 0.5)


def pool_exhausted(datname: str, **labels: str) -> dict[str, Any]:
    return notification(
        [
            alert(
                {
                    "alertname": "DatabaseConnectionPoolExhausted",
                    "datname": datname,
                    "namespace": "shop",
                    "deployment": "orders",
                    "severity": "critical",
                    **labels,
                }
            )
        ]
    )


async def start(
    make_daemon: MakeDaemon,
    registry: Registry,
    databases: dict[str, dict[str, Any]],
    *,
    mode: str = "auto",
    params: dict[str, Any] | None = None,
    config: dict[str, Any] | None = None,
) -> Daemon:
    return await make_daemon(
        registry,
        config={
            **(config or {}),
            "mode": mode,
            "databases": databases,
            "playbooks": {
                PLAYBOOK_NAME: {"params": {"idle_threshold_seconds": THRESHOLD, **(params or {})}}
            },
        },
    )


def database(server: Any, role: Role, name: str, **extra: Any) -> dict[str, Any]:
    return {"dsn": server.dsn(role.name, role.password, name), **extra}


@dataclass
class Outcome:
    episode: EpisodeRecord
    runs: list[RunRecord]
    actions: list[ActionRecord]
    decisions: list[DecisionRecord]
    escalations: list[EscalationRecord]
    calls: list[dict[str, Any]]

    @property
    def run(self) -> RunRecord:
        [only] = self.runs
        return only

    def everything(self) -> str:
        """All of it as text, to look for what must never be recorded."""
        return repr([self.runs, self.actions, self.decisions, self.escalations, self.calls])


async def fire(daemon: Daemon, datname: str, **labels: str) -> Outcome:
    """POST the alert through the webhook, wait until it was handled, read the record."""
    payload = pool_exhausted(datname, **labels)
    status, answer = await daemon.post(payload)
    assert status == 200, answer
    await daemon.settle()
    store = daemon.engine.store
    episode = await store.get_episode(Alert.model_validate(payload["alerts"][0]).episode_id)
    assert episode is not None
    return Outcome(
        episode=episode,
        runs=await store.runs_for(episode.id),
        actions=await store.actions_for(episode.id),
        decisions=await store.decisions_for(episode.id),
        escalations=await store.escalations_for(episode.id),
        calls=await store.calls_for(episode.id),
    )


def pids(sessions: list[dict[str, Any]]) -> set[int]:
    return {s["pid"] for s in sessions}
