"""Real PostgreSQL, Prometheus and Alertmanager servers on loopback, for tests.

remediator's behaviour depends on how these servers really answer (auth,
rule evaluation, alert grouping, HA duplicates), so tests, benchmarks under
``bench/`` and users testing their own playbooks run the actual Debian
binaries rather than fakes. Every server gets a fresh temp dir and a free
127.0.0.1 port, and is stopped by the PID we spawned.
"""

from remediator_testing.servers._common import (
    LOOPBACK,
    ManagedServer,
    PortClashError,
    ServerStartError,
    free_port,
    require_binary,
    wait_for,
)
from remediator_testing.servers.alertmanager import (
    AlertmanagerCluster,
    AlertmanagerServer,
    alertmanager_cluster,
)
from remediator_testing.servers.postgres import PostgresServer
from remediator_testing.servers.prometheus import (
    PrometheusServer,
    Sample,
    check_rules,
    prometheus_config,
)

__all__ = [
    "LOOPBACK",
    "AlertmanagerCluster",
    "AlertmanagerServer",
    "ManagedServer",
    "PortClashError",
    "PostgresServer",
    "PrometheusServer",
    "Sample",
    "ServerStartError",
    "alertmanager_cluster",
    "check_rules",
    "free_port",
    "prometheus_config",
    "require_binary",
    "wait_for",
]
