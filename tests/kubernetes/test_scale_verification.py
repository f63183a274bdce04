"""scale-on-lag's verification against a real Prometheus scraping the test kit's exporter:
lag that stays flat above the threshold while KafkaLagHigh still fires is not a fix (not
verified, escalated); falling lag is progress (verified, and said so). The bake time comes from
`playbooks.scale-on-lag.verify.bake_seconds` (the playbook's own is 5 minutes)."""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import AsyncIterator
from typing import Any

import pytest

from remediator_testing.exporter import MetricsExporter
from remediator_testing.servers import PrometheusServer, wait_for
from tests.conftest import Daemon
from tests.governance.helpers import eventually
from tests.kubernetes.helpers import KUBE, Cluster, grant, labels, registry

pytestmark = pytest.mark.servers

LAG = "kafka_consumergroup_lag"
# The shipped KafkaLagHigh rule's expression (alert_rules/kafka.rules.yml), as Prometheus puts
# it into the alert's generatorURL.
RULE = "sum by (namespace, deployment, consumergroup, topic) (kafka_consumergroup_lag) > 10000"


def lag_alert(group: str) -> dict[str, str]:
    return labels(
        "KafkaLagHigh", deployment=group, consumergroup=group, topic="ticks", remediation="auto"
    )


@pytest.fixture
async def prometheus(
    metrics_exporter: MetricsExporter, prometheus_bin_check: Any
) -> AsyncIterator[PrometheusServer]:
    server = PrometheusServer(targets={"kafka": [metrics_exporter.target]})
    await asyncio.to_thread(server.start)
    try:
        yield server
    finally:
        await asyncio.to_thread(server.stop)


async def start(cluster: Cluster, prometheus: PrometheusServer, **verify: Any) -> Daemon:
    """The daemon with the built-in scale-on-lag, the emulator and the real Prometheus."""
    config = {
        "mode": "auto",
        "kubernetes": {
            "mode": "url",
            "url": cluster.emu.url,
            "token_file": str(grant(cluster.emu, cluster.tmp)),  # the shipped RBAC
            **KUBE,
        },
        "prometheus": {"url": prometheus.url, "timeout_seconds": 2},
        "playbooks": {"scale-on-lag": {"params": {"partitions": 12}, "verify": verify}},
    }
    cluster.daemon = await cluster.make_daemon(registry("scale_on_lag"), config=config)
    return cluster.daemon


def series(group: str) -> dict[str, str]:
    return {"namespace": "shop", "deployment": group, "consumergroup": group, "topic": "ticks"}


async def test_flat_lag_while_the_alert_fires_is_not_verified_falling_lag_is(
    cluster: Cluster, metrics_exporter: MetricsExporter, prometheus: PrometheusServer
) -> None:
    exporter = metrics_exporter
    exporter.set(LAG, 30_000, partition="0", **series("flat"))  # 3x the threshold, flat
    falling = itertools.count(60_000, -500)
    exporter.set_func(LAG, {"partition": "0", **series("draining")}, lambda: next(falling))

    def enough_samples() -> bool:
        counts = prometheus.query(f"count_over_time({LAG}[5m])")
        return len(counts) == 2 and all(s.value >= 3 for s in counts)

    await asyncio.to_thread(wait_for, enough_samples, timeout=30, what="three scrapes")
    for group in ("flat", "draining"):
        cluster.emu.add_deployment("shop", group, replicas=2)
    daemon = await start(cluster, prometheus, bake_seconds=0)

    flat = await cluster.fire(lag_alert("flat"), expr=RULE)
    draining = await cluster.fire(lag_alert("draining"), minutes=1, expr=RULE)
    assert flat.run.state == draining.run.state == "acted"

    store = daemon.engine.store

    async def verified() -> bool:
        return all([await store.verifications_for(o.episode.id) for o in (flat, draining)])

    await eventually(verified, within=20)
    [flat_check] = await store.verifications_for(flat.episode.id)
    assert flat_check.result == "not_verified", flat_check.detail
    assert flat_check.detail.startswith("the alert still fires after the bake")
    assert "no progress" in flat_check.detail
    kinds = [e.details["kind"] for e in await store.escalations_for(flat.episode.id)]
    assert kinds == ["verification_not_verified"]

    [draining_check] = await store.verifications_for(draining.episode.id)
    assert draining_check.result == "verified", draining_check.detail
    assert "still fires" in draining_check.detail and "improving" in draining_check.detail
    assert await store.escalations_for(draining.episode.id) == []


# The partition count from Prometheus (kafka_exporter's kafka_topic_partitions), when neither
# the alert nor the parameters carry one.


async def start_without_partitions(
    cluster: Cluster, prometheus: PrometheusServer | None, **params: Any
) -> Daemon:
    config: dict[str, Any] = {
        "mode": "auto",
        "kubernetes": {
            "mode": "url",
            "url": cluster.emu.url,
            "token_file": str(grant(cluster.emu, cluster.tmp)),
            **KUBE,
        },
        "playbooks": {"scale-on-lag": {"params": {"step": 5, **params}}},
    }
    if prometheus is not None:
        config["prometheus"] = {"url": prometheus.url, "timeout_seconds": 2}
    cluster.daemon = await cluster.make_daemon(registry("scale_on_lag"), config=config)
    return cluster.daemon


async def test_the_partition_count_is_read_from_prometheus(
    cluster: Cluster, metrics_exporter: MetricsExporter, prometheus: PrometheusServer
) -> None:
    metrics_exporter.set("kafka_topic_partitions", 4, topic="ticks")
    await asyncio.to_thread(
        wait_for,
        lambda: prometheus.query("kafka_topic_partitions"),
        timeout=30,
        what="kafka_topic_partitions scraped",
    )
    for group in ("from-prometheus", "from-label", "unknown-topic"):
        cluster.emu.add_deployment("shop", group, replicas=2)
    await start_without_partitions(cluster, prometheus)

    outcome = await cluster.fire(lag_alert("from-prometheus"))

    assert outcome.run.state == "acted", outcome.run.error
    assert outcome.escalations == []
    assert outcome.run.evidence["cap"] == {"replicas": 4, "why": "4 partitions"}
    assert outcome.run.evidence["partitions"] == {
        "count": 4,
        "from": 'Prometheus: min(kafka_topic_partitions{topic="ticks"})',
    }
    assert ("query", "prometheus") in {(c["verb"], c["resource"]) for c in outcome.calls}
    assert cluster.replicas("from-prometheus") == 4  # 2 + step 5, capped by the 4 partitions

    # The alert's own label still wins (it can only lower the cap); Prometheus is not asked.
    outcome = await cluster.fire({**lag_alert("from-label"), "partitions": "3"}, minutes=1)
    assert outcome.run.evidence["cap"] == {"replicas": 3, "why": "3 partitions"}
    assert ("query", "prometheus") not in {(c["verb"], c["resource"]) for c in outcome.calls}

    # A topic Prometheus does not know: not scaled, escalated with the reason.
    other = {**lag_alert("unknown-topic"), "topic": "nobody-knows"}
    outcome = await cluster.fire(other, minutes=2)
    assert cluster.replicas("unknown-topic") == 2
    [escalation] = outcome.escalations
    assert "Prometheus has no kafka_topic_partitions for topic 'nobody-knows'" in (
        escalation.reason
    )


async def test_the_parameter_wins_over_prometheus(
    cluster: Cluster, metrics_exporter: MetricsExporter, prometheus: PrometheusServer
) -> None:
    metrics_exporter.set("kafka_topic_partitions", 12, topic="ticks")
    cluster.emu.add_deployment("shop", "param", replicas=2)
    await start_without_partitions(cluster, prometheus, partitions=3)
    outcome = await cluster.fire(lag_alert("param"))
    assert outcome.run.evidence["cap"] == {"replicas": 3, "why": "3 partitions"}
    assert ("query", "prometheus") not in {(c["verb"], c["resource"]) for c in outcome.calls}


async def test_without_prometheus_the_escalation_says_what_is_missing(cluster: Cluster) -> None:
    cluster.emu.add_deployment("shop", "blind", replicas=2)
    await start_without_partitions(cluster, None)
    outcome = await cluster.fire(lag_alert("blind"))
    assert cluster.replicas("blind") == 2
    [escalation] = outcome.escalations
    assert "no Prometheus is configured (prometheus.url) to look it up" in escalation.reason
