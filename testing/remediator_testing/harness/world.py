"""Models that make the exporter's values move the way the real system would.

Each turns state the daemon can change (the emulator's Deployments and pods, PostgreSQL's
sessions) into the metrics the alert rules read, so an action shows up in Prometheus only
through the same path it would in production:

- `ConsumerLag`: a Kafka consumer group's lag, integrating the producer rate minus what the
  consumer Deployment's ready replicas consume (scaling up makes it fall);
- `KubeStateMetrics`: the kube-state-metrics series of the emulator's pods (restart counts,
  CrashLoopBackOff, owners), kept in step with the emulator on every change;
- `AppTargets`: scrape targets of application pods; a target answers 503 (Prometheus sets
  `up` to 0) while its `up()` is false;
- `HungPods`: a Deployment whose current pods hang (no longer answer scrapes) until they are
  replaced, e.g. by a rollout restart;
- `PoolSessions`: a HikariCP pool's `active` connections, counted from PostgreSQL's real
  `pg_stat_activity` at each scrape.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import asyncpg
from aiohttp import web

from remediator.playbook import workloads
from remediator_testing.exporter import MetricsExporter
from remediator_testing.kube import KubeEmulator, WatchEvent
from remediator_testing.servers import LOOPBACK

__all__ = ["AppTargets", "ConsumerLag", "HungPods", "KubeStateMetrics", "PoolSessions"]


class ConsumerLag:
    """Lag (messages) = integral of `produce_rate - consume_rate * ready consumers`, >= 0.

    Exported per partition (evenly split) as kafka-exporter's `kafka_consumergroup_lag`.
    """

    def __init__(
        self,
        *,
        emulator: KubeEmulator,
        namespace: str,
        deployment: str,
        lag: float,
        produce_rate: float,
        consume_rate: float,
    ) -> None:
        self.emulator = emulator
        self.namespace = namespace
        self.deployment = deployment
        self.produce_rate = produce_rate
        self.consume_rate = consume_rate
        self._lag = lag
        self._at = time.monotonic()

    def consumers(self) -> int:
        """Ready replicas of the consumer Deployment: only those consume."""
        try:
            d = self.emulator.get("apps/v1", "deployments", self.namespace, self.deployment)
        except KeyError:
            return 0
        return int((d.get("status") or {}).get("readyReplicas") or 0)

    def lag(self) -> float:
        now = time.monotonic()
        rate = self.produce_rate - self.consume_rate * self.consumers()
        self._lag = max(0.0, self._lag + rate * (now - self._at))
        self._at = now
        return self._lag

    def set_produce_rate(self, rate: float) -> None:
        self.lag()  # account for the time at the old rate first
        self.produce_rate = rate

    def export(
        self, exporter: MetricsExporter, *, consumergroup: str, topic: str, partitions: int
    ) -> None:
        for partition in range(partitions):
            labels = {
                "consumergroup": consumergroup,
                "topic": topic,
                "partition": str(partition),
                "namespace": self.namespace,
                "deployment": self.deployment,
            }
            exporter.set_func("kafka_consumergroup_lag", labels, lambda: self.lag() / partitions)


_RESTARTS = "kube_pod_container_status_restarts_total"
_WAITING = "kube_pod_container_status_waiting_reason"
_POD_OWNER = "kube_pod_owner"
_RS_OWNER = "kube_replicaset_owner"


@dataclass
class KubeStateMetrics:
    """kube-state-metrics for the pods and ReplicaSets of `namespace` in the emulator."""

    emulator: KubeEmulator
    exporter: MetricsExporter
    namespace: str
    _restarts: dict[tuple[str, str], int] = field(default_factory=dict)
    _series: set[tuple[str, tuple[tuple[str, str], ...]]] = field(default_factory=set)

    def start(self) -> None:
        self.emulator.store.listeners.append(self._on_change)
        self.sync()

    def stop(self) -> None:
        if self._on_change in self.emulator.store.listeners:
            self.emulator.store.listeners.remove(self._on_change)

    def _on_change(self, _event: WatchEvent) -> None:
        self.sync()

    def sync(self) -> None:
        wanted: set[tuple[str, tuple[tuple[str, str], ...]]] = set()
        ns = self.namespace
        for pod in self.emulator.pods(ns):
            name = pod["metadata"]["name"]
            for owner in pod["metadata"].get("ownerReferences") or []:
                labels = {"namespace": ns, "pod": name, "owner_kind": owner["kind"]}
                labels["owner_name"] = owner["name"]
                wanted.add(self._gauge(_POD_OWNER, labels, 1))
            for status in (pod.get("status") or {}).get("containerStatuses") or []:
                labels = {"namespace": ns, "pod": name, "container": status["name"]}
                count = int(status.get("restartCount") or 0)
                before = self._restarts.get((name, status["name"]), 0)
                self.exporter.inc(_RESTARTS, max(0, count - before), **labels)
                self._restarts[(name, status["name"])] = max(count, before)
                wanted.add((_RESTARTS, tuple(sorted(labels.items()))))
                reason = ((status.get("state") or {}).get("waiting") or {}).get("reason")
                crash = {**labels, "reason": "CrashLoopBackOff"}
                wanted.add(self._gauge(_WAITING, crash, 1 if reason == "CrashLoopBackOff" else 0))
        for rs in self.emulator.list_objects("apps/v1", "replicasets", ns):
            for owner in rs["metadata"].get("ownerReferences") or []:
                labels = {
                    "namespace": ns,
                    "replicaset": rs["metadata"]["name"],
                    "owner_kind": owner["kind"],
                    "owner_name": owner["name"],
                }
                wanted.add(self._gauge(_RS_OWNER, labels, 1))
        for name, key in self._series - wanted:  # pods and ReplicaSets that are gone
            self.exporter.remove(name, **dict(key))
            if name == _RESTARTS:
                self._restarts.pop((dict(key)["pod"], dict(key)["container"]), None)
        self._series = wanted

    def _gauge(
        self, name: str, labels: dict[str, str], value: float
    ) -> tuple[str, tuple[tuple[str, str], ...]]:
        self.exporter.set(name, value, **labels)
        return name, tuple(sorted(labels.items()))


@dataclass(frozen=True)
class _Target:
    job: str
    labels: dict[str, str]
    up: Callable[[], bool]


class AppTargets:
    """Application scrape targets on one loopback server, each with its own path and labels."""

    def __init__(self) -> None:
        self._targets: dict[str, _Target] = {}
        self._runner: web.AppRunner | None = None
        self.port = 0

    def add(self, job: str, labels: dict[str, str], up: Callable[[], bool]) -> None:
        """A target of `job` carrying `labels` (target labels, as relabelling would attach)."""
        self._targets["/" + "/".join([job, *labels.values(), "metrics"])] = _Target(
            job, dict(labels), up
        )

    async def start(self) -> AppTargets:
        app = web.Application()
        app.router.add_get("/{tail:.*}", self._handle)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        await web.TCPSite(runner, LOOPBACK, 0).start()
        self._runner = runner
        self.port = int(runner.addresses[0][1])
        return self

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def _handle(self, request: web.Request) -> web.Response:
        target = self._targets.get(request.path)
        if target is None:
            return web.Response(status=404)
        if not target.up():
            return web.Response(status=503, text="not responding\n")
        return web.Response(text="app_info 1\n", content_type="text/plain")

    def scrape_configs(self) -> list[dict[str, Any]]:
        """One scrape config per job, each target with its labels and its own path."""
        jobs: dict[str, list[dict[str, Any]]] = {}
        for path, target in self._targets.items():
            jobs.setdefault(target.job, []).append(
                {
                    "targets": [f"{LOOPBACK}:{self.port}"],
                    "labels": {**target.labels, "__metrics_path__": path},
                }
            )
        return [{"job_name": job, "static_configs": groups} for job, groups in jobs.items()]


class HungPods:
    """The pods a Deployment runs now hang after `hang()`; pods started later answer."""

    def __init__(self, emulator: KubeEmulator, namespace: str, deployment: str) -> None:
        self.emulator = emulator
        self.namespace = namespace
        self.deployment = deployment
        self.hung: set[str] = set()

    def pods(self) -> list[dict[str, Any]]:
        return self.emulator.pods(self.namespace, f"app={self.deployment}")

    def hang(self) -> None:
        self.hung |= {p["metadata"]["uid"] for p in self.pods()}

    def up(self) -> bool:
        return any(
            workloads.is_ready(p) and p["metadata"]["uid"] not in self.hung for p in self.pods()
        )


class PoolSessions:
    """A HikariCP pool's active connections: the role's non-idle sessions in the database."""

    def __init__(self, superuser_dsn: str, database: str, role: str) -> None:
        self.superuser_dsn = superuser_dsn
        self.database = database
        self.role = role
        self._conn: Any = None
        # Prometheus' scrape and the scenario's own reading may ask at once, and one asyncpg
        # connection runs one query at a time.
        self._lock = asyncio.Lock()

    async def active(self) -> float:
        async with self._lock:
            if self._conn is None or self._conn.is_closed():
                self._conn = await asyncpg.connect(self.superuser_dsn)
            count = await self._conn.fetchval(
                "SELECT count(*) FROM pg_stat_activity WHERE datname = $1 AND usename = $2 "
                "AND backend_type = 'client backend' AND state IS DISTINCT FROM 'idle'",
                self.database,
                self.role,
            )
        return float(count)

    async def close(self) -> None:
        if self._conn is not None:
            await self._conn.close()
            self._conn = None
