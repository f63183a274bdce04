"""The clients a playbook can ask for by keyword, built from the settings.

Each entry opens a network client once (in `open`) and hands every run a run-bound view of it,
whose mutating calls go through `run.act`. Playbooks name what they need as keyword arguments
(`kube=`, `postgres=`, ...); nothing is opened that the configuration does not mention.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field, replace

from remediator.clients.kube import open_kube
from remediator.clients.postgres import PostgresClient
from remediator.clients.prometheus import PrometheusClient
from remediator.config import DatabaseSettings, KubernetesSettings, PrometheusSettings, Settings
from remediator.playbook import ClientFactory, ResolveScope
from remediator.playbook.gitops import GitOpsRules
from remediator.playbook.kube import Kube
from remediator.playbook.postgres import Postgres
from remediator.playbook.prometheus import Prometheus


@dataclass
class ClientSet:
    factories: dict[str, ClientFactory] = field(default_factory=dict)
    scope: ResolveScope = field(default_factory=ResolveScope)
    _closers: list[Callable[[], Awaitable[None]]] = field(default_factory=list)

    def add(
        self, name: str, factory: ClientFactory, close: Callable[[], Awaitable[None]] | None = None
    ) -> None:
        self.factories[name] = factory
        if close is not None:
            self._closers.append(close)

    async def close(self) -> None:
        for closer in reversed(self._closers):
            await closer()
        self._closers.clear()


async def build_clients(settings: Settings) -> ClientSet:
    """Open the clients the configuration asks for."""
    clients = ClientSet()
    if settings.databases:
        add_postgres(clients, settings.databases)
    if settings.kubernetes.mode != "none":
        await add_kube(clients, settings.kubernetes, gitops_rules(settings))
    add_prometheus(clients, settings.prometheus)
    return clients


def prometheus_client(settings: PrometheusSettings) -> PrometheusClient | None:
    if settings.url is None:
        return None
    return PrometheusClient(
        settings.url,
        timeout=settings.timeout_seconds,
        retries=settings.retries,
        bearer=settings.bearer(),
        verify_tls=settings.verify_tls,
    )


def add_prometheus(clients: ClientSet, settings: PrometheusSettings) -> None:
    """`prometheus=`: read-only queries (e.g. a topic's partition count), recorded per run."""
    client = prometheus_client(settings)
    if client is None:
        return

    async def close() -> None:
        client.close()

    clients.add("prometheus", lambda run: Prometheus(run, client), close)


def gitops_rules(settings: Settings) -> GitOpsRules:
    return GitOpsRules(settings.gitops, settings.playbook)


async def add_kube(
    clients: ClientSet, settings: KubernetesSettings, gitops: GitOpsRules | None = None
) -> None:
    """`kube=`: one API client for the daemon; each run gets a view bound to it, whose changes
    pass the GitOps gate with `gitops` (playbook/gitops_gate.py)."""
    client = await open_kube(settings)
    clients.add("kube", lambda run: Kube(run, client, gitops), client.close)


def postgres_clients(databases: Mapping[str, DatabaseSettings]) -> dict[str, PostgresClient]:
    """One client per configured database, by its name in the configuration."""
    return {
        name: PostgresClient(
            name,
            db.dsn_value,
            datname=db.datname,
            protected_applications=db.protected_applications,
            connect_timeout_seconds=db.connect_timeout_seconds,
            statement_timeout_ms=db.statement_timeout_ms,
            terminate_wait_ms=db.terminate_wait_ms,
        )
        for name, db in databases.items()
    }


def add_postgres(clients: ClientSet, databases: Mapping[str, DatabaseSettings]) -> None:
    """`postgres=`: the configured databases; alert labels can name only these (or aliases)."""
    by_name = postgres_clients(databases)
    clients.add("postgres", lambda run: Postgres(run, by_name))
    clients.scope = replace(
        clients.scope,
        databases=frozenset(by_name),
        database_aliases={alias: name for name, db in databases.items() for alias in db.aliases},
    )
