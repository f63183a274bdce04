import asyncio

import aiohttp
import pytest
from prometheus_client.parser import text_string_to_metric_families

from remediator_testing.exporter import MetricsExporter


async def scrape(exporter: MetricsExporter) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    async with aiohttp.ClientSession() as session, session.get(exporter.url) as response:
        assert response.status == 200
        assert response.headers["Content-Type"].startswith("text/plain; version=0.0.4")
        text = await response.text()
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def key(name: str, **labels: str) -> tuple[str, frozenset[tuple[str, str]]]:
    return name, frozenset(labels.items())


async def test_serves_gauges_counters_and_computed_values(
    metrics_exporter: MetricsExporter,
) -> None:
    exp = metrics_exporter
    assert exp.target == f"127.0.0.1:{exp.port}"
    assert exp.url == f"http://{exp.target}/metrics"
    exp.set("kafka_consumergroup_lag", 12000, consumergroup="orders", topic="orders")
    exp.set("kafka_consumergroup_lag", 5, consumergroup="billing", topic="billing")
    exp.inc("remediator_test_events_total", playbook="scale")
    exp.inc("remediator_test_events", 2.5, playbook="scale")
    replicas = {"orders-consumer": 2}
    exp.set_func("lag", {"deployment": "orders"}, lambda: 9000 / replicas["orders-consumer"])

    async def async_value() -> float:
        await asyncio.sleep(0)
        return 42

    exp.set_func("async_value", {}, async_value)

    samples = await scrape(exp)
    assert samples == {
        key("kafka_consumergroup_lag", consumergroup="orders", topic="orders"): 12000,
        key("kafka_consumergroup_lag", consumergroup="billing", topic="billing"): 5,
        key("remediator_test_events_total", playbook="scale"): 3.5,
        key("lag", deployment="orders"): 4500,
        key("async_value"): 42,
    }

    replicas["orders-consumer"] = 6
    exp.remove("kafka_consumergroup_lag", consumergroup="billing", topic="billing")
    samples = await scrape(exp)
    assert samples[key("lag", deployment="orders")] == 1500
    assert key("kafka_consumergroup_lag", consumergroup="billing", topic="billing") not in samples
    assert exp.scrapes == 2


async def test_removing_last_series_drops_the_metric(metrics_exporter: MetricsExporter) -> None:
    metrics_exporter.inc("jobs_total", 1, queue="a")
    metrics_exporter.remove("jobs_total", queue="a")
    assert b"jobs" not in await metrics_exporter.render()
    with pytest.raises(KeyError):
        metrics_exporter.remove("jobs_total", queue="a")


async def test_type_and_value_errors(metrics_exporter: MetricsExporter) -> None:
    metrics_exporter.set("up_gauge", 1)
    with pytest.raises(TypeError, match="already a gauge"):
        metrics_exporter.inc("up_gauge")
    with pytest.raises(ValueError, match="only go up"):
        metrics_exporter.inc("events_total", -1)


async def test_wait_for_scrapes(metrics_exporter: MetricsExporter) -> None:
    waiter = asyncio.create_task(metrics_exporter.wait_for_scrapes(2))
    await asyncio.sleep(0)
    await scrape(metrics_exporter)
    assert not waiter.done()
    await scrape(metrics_exporter)
    async with asyncio.timeout(5):
        await waiter


async def test_start_stop_releases_port() -> None:
    exporter = await MetricsExporter().start()
    port = exporter.port
    await exporter.stop()
    async with aiohttp.ClientSession() as session:
        with pytest.raises(aiohttp.ClientConnectionError):
            await session.get(f"http://127.0.0.1:{port}/metrics")
