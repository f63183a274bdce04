"""Starting the daemon with the playbook against the test server, and reading what it recorded."""

from __future__ import annotations

import asyncio
from typing import Any

from remediator.alertmanager import Alert
from remediator.playbook import Registry
from remediator_testing.alerts import alert, notification
from remediator_testing.clock import ManualClock
from tests.conftest import Daemon, MakeDaemon
from tests.outcome import Outcome, read_outcome
from tests.postgres.conftest import PLAYBOOK_NAME, Role

THRESHOLD = 2.0  # seconds: the runbook's 5 minutes, shortened


async def past_threshold() -> None:
    """Real time: PostgreSQL measures how long a session is idle (its `state_change`), which
    no clock of the daemon can advance."""
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
    clock: ManualClock | None = None,
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
        clock=clock,
    )


def database(server: Any, role: Role, name: str, **extra: Any) -> dict[str, Any]:
    return {"dsn": server.dsn(role.name, role.password, name), **extra}


async def fire(daemon: Daemon, datname: str, **labels: str) -> Outcome:
    """POST the alert through the webhook, wait until it was handled, read the record."""
    payload = pool_exhausted(datname, **labels)
    status, answer = await daemon.post(payload)
    assert status == 200, answer
    await daemon.settle()
    episode_id = Alert.model_validate(payload["alerts"][0]).episode_id
    return await read_outcome(daemon.engine.store, episode_id)


def pids(sessions: list[dict[str, Any]]) -> set[int]:
    return {s["pid"] for s in sessions}
