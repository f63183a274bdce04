"""Shared fixtures: a real daemon (engine + aiohttp app) on a temp SQLite file, and a check that
no test leaves a task running."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from remediator.config import Settings, load_settings
from remediator.engine.assembly import playbook_params
from remediator.engine.engine import Engine, Hooks
from remediator.engine.wiring import ClientSet
from remediator.http.app import build_app
from remediator.http.auth import Credentials
from remediator.playbook import Registry
from remediator_testing.alerts import body
from remediator_testing.clock import ManualClock
from remediator_testing.kube import KubeEmulator

TOKEN = "test-token"

# Real-server fixtures (postgres_server, prometheus_factory, ...) come from the test kit's
# pytest plugin (entry point `pytest11`), installed with it.


# The emulator's clocks, fast: pods are Ready 0.1 s after they start, crash-looping ones
# restart every 0.1 s.
TICK, READY_AFTER, CRASH_INTERVAL = 0.02, 0.1, 0.1


@pytest.fixture
async def emu() -> AsyncIterator[KubeEmulator]:
    """A running Kubernetes API-server emulator with a `shop` namespace."""
    emulator = KubeEmulator(tick=TICK, ready_after=READY_AFTER, crash_interval=CRASH_INTERVAL)
    await emulator.start()
    emulator.add_namespace("shop")
    try:
        yield emulator
    finally:
        await emulator.stop()


@pytest.fixture(autouse=True)
async def no_pending_tasks() -> AsyncIterator[None]:
    yield
    current = asyncio.current_task()
    for _ in range(50):  # give cancelled tasks a few loop turns to finish
        leftover = [t for t in asyncio.all_tasks() if t is not current and not t.done()]
        if not leftover:
            return
        await asyncio.sleep(0.01)
    raise AssertionError(f"tasks left running after the test: {leftover}")


@dataclass
class Daemon:
    client: TestClient[Any, Any]
    engine: Engine
    settings: Settings
    clock: ManualClock | None = None

    async def post(
        self,
        payload: Mapping[str, Any] | bytes,
        *,
        token: str | None = TOKEN,
        path: str = "/webhook",
    ) -> tuple[int, Any]:
        data = payload if isinstance(payload, bytes) else body(payload)
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        resp = await self.client.post(path, data=data, headers=headers)
        try:
            content = await resp.json()
        except Exception:
            content = await resp.text()
        return resp.status, content

    async def settle(self) -> None:
        """Wait until every recorded alert was digested, dispatched and handled."""
        await asyncio.sleep(0)
        await self.engine.digester.drained()
        await self.engine.dispatcher.drained()

    async def advance(self, seconds: float) -> None:
        """Move the daemon's manual clock (`make_daemon(..., clock=ManualClock())`) and wait
        until what came due happened: the due timers ran, then the due outbox messages had
        their attempt, then the work they caused was handled."""
        assert self.clock is not None, "make_daemon(..., clock=ManualClock()) to advance time"
        self.clock.advance(seconds)
        await self.engine.timers.settled()
        await self.engine.outbox.settled()
        await self.settle()


MakeDaemon = Callable[..., Awaitable[Daemon]]


@pytest.fixture
def state_path(tmp_path: Path) -> Path:
    return tmp_path / "state.db"


# A module (or test) whose behaviour is the store's runs against both backends:
# `pytestmark = BOTH_BACKENDS`. The PostgreSQL one gets a fresh database per test (the kit's
# `postgres_database`); a missing PostgreSQL fails, never skips.
BOTH_BACKENDS = pytest.mark.parametrize("state_backend", ["sqlite", "postgres"])


@pytest.fixture
def state_backend() -> str:
    """The state backend of `make_daemon`'s daemons (parametrize it: BOTH_BACKENDS)."""
    return "sqlite"


@pytest.fixture
def state_config(
    request: pytest.FixtureRequest, state_backend: str, state_path: Path
) -> dict[str, Any]:
    """The `state` section of the daemons' settings for the backend under test."""
    if state_backend == "postgres":
        database = request.getfixturevalue("postgres_database")
        return {"backend": "postgres", "dsn": database.dsn, "path": str(state_path)}
    return {"path": str(state_path)}


@pytest.fixture
async def make_daemon(
    state_config: dict[str, Any],  # first: its database outlives the daemons (torn down last)
    aiohttp_client: Any,
) -> AsyncIterator[MakeDaemon]:
    async def make(
        registry: Registry,
        *,
        config: Mapping[str, Any] | None = None,
        credentials: Credentials | None = None,
        hooks: Hooks | None = None,
        clients: ClientSet | None = None,
        clock: ManualClock | None = None,
    ) -> Daemon:
        data: dict[str, Any] = {"builtin_playbooks": False, "state": dict(state_config)}
        for key, value in (config or {}).items():
            if isinstance(value, dict) and isinstance(data.get(key), dict):
                data[key] = {**data[key], **value}
            else:
                data[key] = value
        settings = Settings(**data) if data else load_settings()
        params, problems = playbook_params(registry, settings)
        assert not problems, problems
        engine = Engine(settings, registry, params, hooks=hooks, clients=clients, clock=clock)
        app = build_app(settings, engine, credentials or Credentials(bearer=TOKEN))
        client = await aiohttp_client(app)
        return Daemon(client, engine, settings, clock)

    yield make
