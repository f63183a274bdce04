import asyncio
import math
import socket
import textwrap
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

import pytest

from remediator_testing.exporter import MetricsExporter
from remediator_testing.servers import (
    AlertmanagerServer,
    PortClashError,
    PrometheusServer,
    ServerStartError,
    check_rules,
)
from remediator_testing.servers import _common as common
from tests.servers.helpers import assert_pid_gone

pytestmark = pytest.mark.servers

T = TypeVar("T")

LAG_RULES = textwrap.dedent(
    """
    groups:
      - name: test
        rules:
          - alert: ConsumerLagHigh
            expr: kafka_consumergroup_lag > 1000
            labels:
              severity: page
            annotations:
              summary: "lag {{ $value }}"
    """
)

# Prometheus 2.42 hands discovered targets to the scrape manager and notifier at
# most every 5 s, so the first scrape comes ~5 s after start.
FIRST_SCRAPE_TIMEOUT = 20.0


async def poll(probe: Callable[[], T | None], what: str, within: float = 10.0) -> T:
    """Poll a blocking probe in a thread, so the exporter on this loop keeps serving."""
    return await asyncio.to_thread(common.wait_for, probe, timeout=within, what=what)


async def test_scrapes_exporter_and_delivers_alert_to_alertmanager(
    tmp_path: Path,
    metrics_exporter: MetricsExporter,
    alertmanager_factory: Callable[..., AlertmanagerServer],
    prometheus_bin_check: Path,
) -> None:
    labels = {"consumergroup": "orders", "topic": "orders", "namespace": "shop"}
    metrics_exporter.set("kafka_consumergroup_lag", 12000, **labels)
    rules = tmp_path / "rules.yml"
    rules.write_text(LAG_RULES)
    check_rules(rules)
    alertmanager = alertmanager_factory()

    prometheus = PrometheusServer(
        targets={"kafka": [metrics_exporter.target]},
        rule_files=[rules],
        alertmanagers=[alertmanager.url],
    )
    await asyncio.to_thread(prometheus.start)
    try:
        pid = prometheus.pid
        samples = await poll(
            lambda: prometheus.query("kafka_consumergroup_lag"),
            "first scrape",
            within=FIRST_SCRAPE_TIMEOUT,
        )
        [sample] = samples
        assert sample.value == 12000
        assert sample.labels["job"] == "kafka"
        assert sample.labels["instance"] == metrics_exporter.target
        assert labels.items() <= sample.labels.items()

        fired = await poll(alertmanager.alerts, "alert delivered to alertmanager")
        [alert] = fired
        assert alert["labels"]["alertname"] == "ConsumerLagHigh"
        assert alert["labels"]["severity"] == "page"
        assert alert["annotations"]["summary"] == "lag 12000"

        # A value change reaches queries within a couple of scrape intervals.
        metrics_exporter.set("kafka_consumergroup_lag", 10, **labels)
        await poll(lambda: prometheus.query_value("kafka_consumergroup_lag") == 10, "new value")
        metrics_exporter.remove("kafka_consumergroup_lag", **labels)
        await poll(
            lambda: math.isnan(prometheus.query_value("kafka_consumergroup_lag")),
            "series going stale",
        )
    finally:
        await asyncio.to_thread(prometheus.stop)
    assert_pid_gone(pid)


def test_reload_picks_up_edited_rules(
    tmp_path: Path, prometheus_factory: Callable[..., PrometheusServer]
) -> None:
    rules = tmp_path / "rules.yml"
    rules.write_text("groups: []\n")
    prometheus = prometheus_factory(rule_files=[rules])
    rules.write_text("groups:\n- name: g\n  rules:\n  - alert: Always\n    expr: vector(1)\n")
    prometheus.reload()
    firing = common.wait_for(
        lambda: [a for a in prometheus.alerts() if a["state"] == "firing"],
        timeout=10,
        what="Always to fire",
    )
    assert firing[0]["labels"]["alertname"] == "Always"
    assert prometheus.query_value("1 + 1") == 2


def test_start_failure_reports_log_tail(tmp_path: Path) -> None:
    rules = tmp_path / "broken.yml"
    rules.write_text("groups:\n- name: g\n  rules:\n  - alert: Broken\n    expr: rate(\n")
    with pytest.raises(ValueError, match="promtool check rules failed"):
        check_rules(rules)
    server = PrometheusServer(rule_files=[rules])
    with pytest.raises(ServerStartError, match=r"broken\.yml"):
        server.start()
    assert not server.running


def test_retries_on_port_clash(monkeypatch: pytest.MonkeyPatch) -> None:
    with socket.socket() as squatter:
        squatter.bind((common.LOOPBACK, 0))
        squatter.listen()
        taken = squatter.getsockname()[1]
        ports = iter([taken, taken])
        real_free_port = common.free_port
        monkeypatch.setattr(
            common, "free_port", lambda **kw: next(ports, None) or real_free_port(**kw)
        )
        with PrometheusServer() as prometheus:
            assert prometheus.port != taken
            assert prometheus.query_value("vector(7)") == 7
            log = prometheus.log_path.read_text()
        # Two failed attempts, then the one that worked.
        assert log.count("=== ") == 3


def test_gives_up_after_repeated_port_clashes(monkeypatch: pytest.MonkeyPatch) -> None:
    with socket.socket() as squatter:
        squatter.bind((common.LOOPBACK, 0))
        squatter.listen()
        taken = squatter.getsockname()[1]
        monkeypatch.setattr(common, "free_port", lambda **kw: taken)
        with pytest.raises(PortClashError, match="address already in use"):
            PrometheusServer().start()


def test_missing_binary_names_the_debian_package(tmp_path: Path) -> None:
    with pytest.raises(RuntimeError, match="'prometheus'"):
        PrometheusServer(binary=tmp_path / "no-prometheus").start()
    with pytest.raises(RuntimeError, match="'prometheus'"):
        check_rules(tmp_path / "rules.yml", promtool=tmp_path / "no-promtool")
