"""Verification against a real Prometheus scraping an exporter the test controls: verified,
not verified, Prometheus down (unknown, escalated); and the failed share opening the breaker."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from typing import Any

import pytest

from remediator.engine.runs.verify import QueryError, alert_expression, escape_promql, render_query
from remediator.playbook import Action, Registry, Target, Verify, playbook, targets
from remediator_testing.alerts import alert, notification
from remediator_testing.exporter import MetricsExporter
from remediator_testing.servers import PrometheusServer, wait_for
from tests.conftest import Daemon, MakeDaemon
from tests.governance.helpers import (
    eventually,
    firing,
    held,
    labels,
    post_and_settle,
    refusals,
)

pytestmark = pytest.mark.servers
NOW = Verify(bake=timedelta(0))
LAG = "kafka_consumergroup_lag"


def lag_labels(group: str, exporter: MetricsExporter, alertname: str) -> dict[str, str]:
    """The labels Prometheus would put on the alert: the series' labels plus the rule's."""
    return {
        "alertname": alertname,
        "severity": "warning",
        "namespace": "shop",
        "deployment": group,
        "consumergroup": group,
        "job": "kafka",
        "instance": exporter.target,
    }


def lag_registry(exporter: MetricsExporter) -> Registry:
    registry = Registry()

    async def fix(group: str) -> None:
        exporter.set(LAG, 10, consumergroup=group, namespace="shop", deployment=group)
        await asyncio.wait_for(exporter.wait_for_scrapes(2), 10)

    @playbook(
        match='alertname="LagOwn"', target=targets.deployment(), verify=NOW, registry=registry
    )
    async def scale_own(*, run: Any, target: Target, **_: Any) -> None:
        async def call() -> None:
            if target.name.startswith("fixed"):  # "stuck" and "later" stay high
                await fix(target.name)

        await run.act(Action("patch", "deployments/scale", target, "scale"), call)

    own_query = Verify(
        bake=timedelta(0), promql=LAG + '{consumergroup="{{ $labels.consumergroup }}"} > 1000'
    )

    @playbook(
        match='alertname="LagCustom"',
        target=targets.deployment(),
        verify=own_query,
        registry=registry,
    )
    async def scale_custom(*, run: Any, target: Target, **_: Any) -> None:
        await run.act(
            Action("patch", "deployments/scale", target, "scale"), lambda: fix(target.name)
        )

    return registry


async def verification(daemon: Daemon, deployment: str) -> tuple[str, str]:
    store = daemon.engine.store
    [episode] = [e for e in await store.list_episodes() if e.labels["deployment"] == deployment]

    async def done() -> bool:
        # The timer is finished only after the verification's report and escalation are
        # recorded: waiting for the record alone races the escalation the tests read next.
        timers = [t for t in await store.timers_for(episode.id) if t.kind == "verify"]
        # A claimed timer is "running" until its verification, report and escalation are all
        # recorded: only a finished state means the record is there to read.
        return bool(timers) and all(t.state not in ("waiting", "running") for t in timers)

    await eventually(done, within=15)
    [record] = await store.verifications_for(episode.id)
    return record.result, record.detail


async def escalation_kinds(daemon: Daemon, deployment: str) -> list[str]:
    store = daemon.engine.store
    [episode] = [e for e in await store.list_episodes() if e.labels["deployment"] == deployment]
    return [e.details["kind"] for e in await store.escalations_for(episode.id)]


async def test_verified_not_verified_and_prometheus_down(
    make_daemon: MakeDaemon, metrics_exporter: MetricsExporter, prometheus_bin_check: Any
) -> None:
    exporter = metrics_exporter
    for group in ("stuck", "fixed-own", "fixed-custom", "later"):
        exporter.set(LAG, 5000, consumergroup=group, namespace="shop", deployment=group)
    prometheus = PrometheusServer(targets={"kafka": [exporter.target]})
    await asyncio.to_thread(prometheus.start)
    try:
        await asyncio.to_thread(
            wait_for, lambda: len(prometheus.query(LAG)) == 4, timeout=30, what="first scrape"
        )
        config = {"mode": "auto", "prometheus": {"url": prometheus.url, "timeout_seconds": 2}}
        daemon = await make_daemon(lag_registry(exporter), config=config)
        expr = f"{LAG} > 1000"
        alerts = [
            alert(lag_labels("stuck", exporter, "LagOwn"), expr=expr),
            alert(lag_labels("fixed-own", exporter, "LagOwn"), expr=expr),
            alert(lag_labels("fixed-custom", exporter, "LagCustom"), expr=expr),
        ]
        await post_and_settle(daemon, notification(alerts))
        # The alert's own expression still returns this alert's series: not verified.
        result, detail = await verification(daemon, "stuck")
        assert result == "not_verified" and "1 series returned" in detail
        assert "verification_not_verified" in await escalation_kinds(daemon, "stuck")
        # Its expression returns other alerts' series (stuck, later), but none of this one.
        assert await verification(daemon, "fixed-own") == ("verified", "0 series returned")
        assert await escalation_kinds(daemon, "fixed-own") == []
        # The playbook's own query, with the alert's label filled in; and the alert's own
        # expression no longer returns its series.
        assert await verification(daemon, "fixed-custom") == (
            "verified",
            "0 series returned; the alert's condition no longer holds",
        )
        counts = daemon.engine.metrics.verifications
        assert counts.labels(playbook="scale-own", result="verified")._value.get() == 1
        assert counts.labels(playbook="scale-own", result="not_verified")._value.get() == 1

        await asyncio.to_thread(prometheus.stop)
        later = alert(lag_labels("later", exporter, "LagOwn"), expr=expr)
        await post_and_settle(daemon, notification([later]))
        result, detail = await verification(daemon, "later")
        assert result == "unknown" and detail.startswith("Prometheus: ")
        assert "verification_unknown" in await escalation_kinds(daemon, "later")
    finally:
        await asyncio.to_thread(prometheus.stop)


async def test_failed_verifications_open_the_storm_breaker(
    make_daemon: MakeDaemon, prometheus_bin_check: Any
) -> None:
    registry = Registry()

    @playbook(
        match='alertname="KafkaLagHigh"',
        target=targets.deployment(),
        verify=Verify(bake=timedelta(0), promql="vector(1)"),  # never clears
        registry=registry,
    )
    async def scale(*, run: Any, target: Target, **_: Any) -> None:
        async def call() -> None:
            return None

        await run.act(Action("patch", "deployments/scale", target, "scale"), call)

    prometheus = PrometheusServer()
    await asyncio.to_thread(prometheus.start)
    try:
        config = {
            "mode": "auto",
            "prometheus": {"url": prometheus.url},
            "guards": {"storm": {"min_verifications": 2, "failed_verification_share": 0.5}},
        }
        daemon = await make_daemon(registry, config=config)
        for name in ("a", "b"):
            await post_and_settle(daemon, firing(labels(name)))
            assert (await verification(daemon, name))[0] == "not_verified"

        async def opened() -> bool:
            return await daemon.engine.governance.breaker() is not None

        await eventually(opened)  # judged right after the verification was recorded
        breaker = await daemon.engine.governance.breaker()
        assert breaker is not None
        assert breaker.reason.startswith("2 of the last 2 verified actions did not fix")
        await post_and_settle(daemon, firing(labels("c")))
        assert await held(daemon) == ["Deployment/shop/c"]
        assert await refusals(daemon) == []
    finally:
        await asyncio.to_thread(prometheus.stop)


def test_alert_expression_comes_from_the_generator_url() -> None:
    url = "http://prometheus:9090/graph?g0.expr=rate%28errors%5B5m%5D%29+%3E+0.1&g0.tab=1"
    assert alert_expression(url) == "rate(errors[5m]) > 0.1"
    assert alert_expression("http://prometheus:9090/graph") is None
    assert alert_expression("") is None


def test_placeholders_are_filled_and_escaped() -> None:
    template = 'lag{group="{{ $labels.group }}", ns="{{$labels.namespace}}"} > 0'
    query = render_query(template, {"group": 'a"b\\c\nd', "namespace": "shop"})
    assert query == 'lag{group="a\\"b\\\\c\\nd", ns="shop"} > 0'
    assert escape_promql('"}) or vector(1) #') == '\\"}) or vector(1) #'
    with pytest.raises(QueryError, match="no label 'group'"):
        render_query(template, {"namespace": "shop"})
