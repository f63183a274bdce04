"""Shared pytest fixtures for the real test servers.

Starting PostgreSQL or Alertmanager once per session and handing each test an
isolated slice (its own database and role) keeps suites fast without tests
leaking state into each other. The kit registers this module as a pytest
plugin (the `pytest11` entry point `remediator_testing`), so every suite run
where the kit is installed has these fixtures without importing anything.

Missing server binaries make these fixtures error, never skip: a CI image
without the servers must go red.
"""

from __future__ import annotations

import secrets
from collections.abc import AsyncIterator, Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio

from remediator_testing.clock import ManualClock
from remediator_testing.exporter import MetricsExporter
from remediator_testing.servers import (
    AlertmanagerServer,
    PostgresServer,
    PrometheusServer,
    require_binary,
)
from remediator_testing.servers import prometheus as prometheus_module
from remediator_testing.servers.postgres import quote_ident

__all__ = [
    "PostgresDatabase",
    "alertmanager_factory",
    "alertmanager_server",
    "manual_clock",
    "metrics_exporter",
    "postgres_database",
    "postgres_server",
    "prometheus_bin_check",
    "prometheus_factory",
]


@dataclass(frozen=True)
class PostgresDatabase:
    """A database owned by its own login role on the session's PostgreSQL."""

    server: PostgresServer
    name: str
    user: str
    password: str

    @property
    def dsn(self) -> str:
        return self.server.dsn(self.user, self.password, self.name)


@pytest.fixture(scope="session")
def prometheus_bin_check() -> Path:
    """Fail (not skip) unless prometheus and promtool are installed; returns prometheus."""
    require_binary(prometheus_module.DEFAULT_PROMTOOL, prometheus_module.PACKAGE)
    return require_binary(prometheus_module.DEFAULT_BINARY, prometheus_module.PACKAGE)


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PostgresServer]:
    """One PostgreSQL cluster for the whole session; prefer ``postgres_database`` in tests."""
    with PostgresServer() as server:
        yield server


@pytest.fixture
def postgres_database(postgres_server: PostgresServer) -> Iterator[PostgresDatabase]:
    """A fresh database and owner role per test, dropped (connections and all) afterwards."""
    suffix = secrets.token_hex(4)
    database = PostgresDatabase(
        server=postgres_server,
        name=f"test_{suffix}",
        user=f"test_{suffix}",
        password=secrets.token_urlsafe(12),
    )
    postgres_server.create_role(database.user, database.password)
    postgres_server.create_database(database.name, owner=database.user)
    yield database
    postgres_server.psql(f"DROP DATABASE {quote_ident(database.name)} WITH (FORCE)")
    postgres_server.psql(f"DROP ROLE {quote_ident(database.user)}")


@pytest.fixture(scope="session")
def alertmanager_server() -> Iterator[AlertmanagerServer]:
    """A session Alertmanager that routes everything nowhere: a sink for alerts."""
    with AlertmanagerServer() as server:
        yield server


@pytest.fixture
def alertmanager_factory() -> Iterator[Callable[..., AlertmanagerServer]]:
    """``alertmanager_factory(config, **kwargs)`` starts an Alertmanager stopped after the test."""
    started: list[AlertmanagerServer] = []

    def start(config: str | Mapping[str, Any] | None = None, **kwargs: Any) -> AlertmanagerServer:
        server = AlertmanagerServer(config, **kwargs)
        started.append(server)
        return server.start()

    yield start
    for server in reversed(started):
        server.stop()


@pytest.fixture
def prometheus_factory() -> Iterator[Callable[..., PrometheusServer]]:
    """``prometheus_factory(targets=..., rule_files=..., alertmanagers=...)``.

    Returns a started PrometheusServer, stopped after the test. Expect about 5 s
    before the first scrape: Prometheus 2.42 batches service discovery updates.
    """
    started: list[PrometheusServer] = []

    def start(**kwargs: Any) -> PrometheusServer:
        server = PrometheusServer(**kwargs)
        started.append(server)
        return server.start()

    yield start
    for server in reversed(started):
        server.stop()


@pytest_asyncio.fixture
async def metrics_exporter() -> AsyncIterator[MetricsExporter]:
    """A started MetricsExporter on the test's event loop."""
    async with MetricsExporter() as exporter:
        yield exporter


@pytest.fixture
def manual_clock() -> ManualClock:
    """A clock that moves only by `advance` (remediator_testing.clock): give it to the daemon
    (`Engine(..., clock=manual_clock)`) and advance it instead of sleeping."""
    return ManualClock()
