"""A Prometheus exporter whose values a test scenario controls.

End-to-end scenarios need a real Prometheus to see a problem (consumer lag,
replication delay) appear and then go away once a playbook acts. This
exporter serves exactly the series the scenario sets, and values can be
computed at scrape time from emulator state (e.g. lag falling as replicas
are added), so Prometheus rules and remediator's verification see the same
thing production would.
"""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Literal

from aiohttp import web
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import Metric
from prometheus_client.registry import Collector

from remediator_testing.loopback import LoopbackApp
from remediator_testing.servers._common import LOOPBACK

__all__ = ["MetricsExporter", "ValueFunc"]

ValueFunc = Callable[[], float | Awaitable[float]]
MetricType = Literal["gauge", "counter"]
_LabelKey = tuple[tuple[str, str], ...]

_CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


@dataclass
class _Family:
    type: MetricType
    documentation: str
    series: dict[_LabelKey, float | ValueFunc]


class _SnapshotCollector(Collector):
    """Yields families whose values were resolved (and awaited) before collection."""

    def __init__(self, families: list[Metric]) -> None:
        self._families = families

    def collect(self) -> Iterable[Metric]:
        return self._families


class MetricsExporter(LoopbackApp):
    """aiohttp app on 127.0.0.1 serving ``/metrics`` from scenario-set values.

    Metric types are fixed by first use: ``set``/``set_func`` make a gauge,
    ``inc`` a counter (name it with or without ``_total``; it is exposed with).
    Label sets may differ between series of one metric.
    """

    def __init__(self) -> None:
        super().__init__()
        self._families: dict[str, _Family] = {}
        self._scrapes = 0
        self._scraped = asyncio.Condition()

    # -- lifecycle ----------------------------------------------------------------

    def build_app(self) -> web.Application:
        app = web.Application()
        app.router.add_get("/metrics", self._handle_metrics)
        return app

    @property
    def url(self) -> str:
        """The full ``/metrics`` URL."""
        return f"http://{LOOPBACK}:{self.port}/metrics"

    @property
    def target(self) -> str:
        """``host:port`` for a Prometheus static scrape config."""
        return f"{LOOPBACK}:{self.port}"

    # -- scenario controls --------------------------------------------------------

    def set(self, name: str, value: float, /, **labels: str) -> None:
        """Set gauge ``name{labels}`` to ``value``."""
        self._family(name, "gauge").series[_key(labels)] = float(value)

    def set_func(self, name: str, labels: Mapping[str, str], func: ValueFunc) -> None:
        """Make gauge ``name{labels}`` report ``func()`` (sync or async) at each scrape."""
        self._family(name, "gauge").series[_key(labels)] = func

    def inc(self, name: str, amount: float = 1.0, /, **labels: str) -> None:
        """Add ``amount`` (>= 0) to counter ``name{labels}``, creating it at 0."""
        if amount < 0:
            raise ValueError("counters can only go up")
        series = self._family(_counter_base(name), "counter").series
        current = series.get(_key(labels), 0.0)
        if callable(current):
            raise TypeError(f"{name}{labels} is computed by a function")
        series[_key(labels)] = current + amount

    def remove(self, name: str, /, **labels: str) -> None:
        """Drop series ``name{labels}``; Prometheus marks it stale at the next scrape.

        Raises KeyError if no such series is set.
        """
        base = name if name in self._families else _counter_base(name)
        family = self._families.get(base)
        if family is None or _key(labels) not in family.series:
            raise KeyError(f"no series {name}{dict(labels)}")
        del family.series[_key(labels)]
        if not family.series:
            del self._families[base]

    # -- scrapes ------------------------------------------------------------------

    @property
    def scrapes(self) -> int:
        """How many times /metrics has been served."""
        return self._scrapes

    async def wait_for_scrapes(self, count: int = 1) -> None:
        """Wait until ``count`` more scrapes have happened, e.g. after changing values.

        Wrap in ``asyncio.timeout()``: if nothing scrapes us this waits forever.
        """
        target = self._scrapes + count
        async with self._scraped:
            await self._scraped.wait_for(lambda: self._scrapes >= target)

    async def render(self) -> bytes:
        """The exposition text a scrape would get now (evaluates value functions)."""
        families: list[Metric] = []
        for base, family in self._families.items():
            metric = Metric(base, family.documentation, family.type)
            sample_name = base + "_total" if family.type == "counter" else base
            # Snapshot: a value function may await while the scenario mutates series.
            for key, source in list(family.series.items()):
                value = await _resolve(source)
                metric.add_sample(sample_name, dict(key), value)
            families.append(metric)
        registry = CollectorRegistry(auto_describe=False)
        registry.register(_SnapshotCollector(families))
        return generate_latest(registry)

    async def _handle_metrics(self, request: web.Request) -> web.Response:
        body = await self.render()
        async with self._scraped:
            self._scrapes += 1
            self._scraped.notify_all()
        return web.Response(body=body, headers={"Content-Type": _CONTENT_TYPE})

    def _family(self, base: str, metric_type: MetricType) -> _Family:
        family = self._families.get(base)
        if family is None:
            family = _Family(metric_type, f"{base} set by the test scenario", {})
            self._families[base] = family
        elif family.type != metric_type:
            raise TypeError(f"{base} is already a {family.type}, not a {metric_type}")
        return family


def _key(labels: Mapping[str, str]) -> _LabelKey:
    return tuple(sorted((name, str(value)) for name, value in labels.items()))


def _counter_base(name: str) -> str:
    return name.removesuffix("_total")


async def _resolve(source: float | ValueFunc) -> float:
    if not callable(source):
        return source
    result = source()
    if inspect.isawaitable(result):
        result = await result
    return float(result)
