"""Fixtures for the server-helper tests, shared with other suites via remediator.testing."""

from remediator.testing.pytest_fixtures import (
    alertmanager_factory,
    alertmanager_server,
    metrics_exporter,
    postgres_database,
    postgres_server,
    prometheus_bin_check,
    prometheus_factory,
)

__all__ = [
    "alertmanager_factory",
    "alertmanager_server",
    "metrics_exporter",
    "postgres_database",
    "postgres_server",
    "prometheus_bin_check",
    "prometheus_factory",
]
