"""The whole loop on loopback: exporter -> Prometheus -> Alertmanager -> daemon -> cluster.

`Stack` starts, in two steps so a scenario can shape its world before Prometheus looks at it:

1. `async with Stack(...) as stack:` the in-process pieces: the metrics exporter, the
   application scrape targets, the fake PagerDuty the daemon pages, the fake receiver of the
   human routes, and (when asked) the Kubernetes emulator and a real PostgreSQL;
2. `await stack.launch()`: real Alertmanager (one, or an HA pair) loading the example config,
   real Prometheus loading the scaled copy of `alert_rules/` (see `harness.config`), and the
   daemon in auto mode, in process, on its own loopback port, with every built-in playbook.

Every process is started by the servers helpers and stopped by its PID; everything listens on
127.0.0.1 only.
"""

from __future__ import annotations

import asyncio
import secrets
import shutil
import tempfile
import time
import urllib.parse
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Self

from remediator.config import Settings
from remediator.engine.assembly import load_registry, playbook_params
from remediator.engine.engine import Engine
from remediator.http.app import Server, build_app
from remediator.http.auth import Credentials
from remediator.store import Store
from remediator.store.records import ActionRecord, EpisodeRecord, RunRecord
from remediator_testing.exporter import MetricsExporter
from remediator_testing.fakes import FakePagerDuty, FakeWebhook
from remediator_testing.harness.config import alertmanager_config, scaled_rules
from remediator_testing.harness.world import AppTargets
from remediator_testing.kube import KubeEmulator
from remediator_testing.servers import (
    LOOPBACK,
    AlertmanagerCluster,
    AlertmanagerServer,
    PostgresServer,
    PrometheusServer,
    free_port,
)
from remediator_testing.servers._common import http_json, http_request

__all__ = ["Figures", "Stack", "deep_merge"]

PAGERDUTY_KEY = "R" * 32
# Outbox retries in tenths of a second, so a page is out within a second of the escalation.
FAST_DELIVERY = {
    "quick_retries": 1,
    "quick_wait_seconds": 0.05,
    "initial_backoff_seconds": 0.2,
    "max_backoff_seconds": 1.0,
    "jitter_seconds": 0.05,
    "poll_seconds": 0.2,
}
# The Kubernetes client's retries and rollout polling, fast enough for the emulator.
FAST_KUBE = {
    "poll_seconds": 0.1,
    "request_timeout_seconds": 5.0,
    "retry": {
        "attempts": 3,
        "initial_backoff_seconds": 0.05,
        "max_backoff_seconds": 0.5,
        "max_retry_after_seconds": 1.0,
    },
}


def deep_merge(base: Mapping[str, Any], extra: Mapping[str, Any]) -> dict[str, Any]:
    merged = dict(base)
    for key, value in extra.items():
        if isinstance(value, Mapping) and isinstance(merged.get(key), Mapping):
            merged[key] = deep_merge(merged[key], value)
        else:
            merged[key] = value
    return merged


def _seconds(start: datetime | None, end: datetime | None) -> float | None:
    if start is None or end is None:
        return None
    return (end - start).total_seconds()


@dataclass(frozen=True)
class Figures:
    """When the rule fired in Prometheus, when the daemon acted, when the episode resolved."""

    scenario: str
    alertname: str
    fired_at: datetime | None  # first evaluation with the alert firing (ALERTS, Prometheus)
    acted_at: datetime | None  # the first action's intent (the daemon's record)
    action_done_at: datetime | None  # that action's outcome recorded
    resolved_at: datetime | None  # the episode's resolution (the daemon's record)

    @property
    def firing_to_action(self) -> float | None:
        return _seconds(self.fired_at, self.acted_at)

    @property
    def action_to_resolved(self) -> float | None:
        return _seconds(self.action_done_at or self.acted_at, self.resolved_at)

    def line(self) -> str:
        def fmt(value: float | None) -> str:
            return "   n/a" if value is None else f"{value:6.2f}s"

        return (
            f"{self.scenario:<22} {self.alertname:<32} firing->action {fmt(self.firing_to_action)}"
            f"  action->resolved {fmt(self.action_to_resolved)}"
        )


Predicate = Callable[[], Awaitable[bool] | bool]


class Stack:
    def __init__(
        self,
        *,
        kube: bool = False,
        postgres: bool = False,
        alertmanagers: int = 1,
        daemon: Mapping[str, Any] | None = None,
        scrape_interval: str = "1s",
        evaluation_interval: str = "1s",
        am_timing: str = "1s",
        am_repeat_interval: str | None = None,
        emulator_clock: Mapping[str, float] | None = None,
        base_dir: Path | None = None,
    ) -> None:
        """`daemon` is merged into the daemon's settings (e.g. guards, playbook params)."""
        self.want_kube = kube
        self.want_postgres = postgres
        self.alertmanager_count = alertmanagers
        self.daemon_overrides = dict(daemon or {})
        self.scrape_interval = scrape_interval
        self.evaluation_interval = evaluation_interval
        self.am_timing = am_timing
        self.am_repeat_interval = am_repeat_interval
        self.emulator_clock = dict(
            emulator_clock or {"tick": 0.05, "ready_after": 0.3, "crash_interval": 0.5}
        )
        self._own_dir = base_dir is None
        self.dir = Path(base_dir or tempfile.mkdtemp(prefix="remediator-e2e-"))
        self.token = secrets.token_urlsafe(24)
        self.token_file = self.dir / "remediator-token"
        self.exporter = MetricsExporter()
        self.apps = AppTargets()
        self.pagerduty = FakePagerDuty(routing_key=PAGERDUTY_KEY)
        self.humans = FakeWebhook()
        self.emulator: KubeEmulator | None = None
        self.postgres: PostgresServer | None = None
        self.alertmanagers: list[AlertmanagerServer] = []
        self._cluster: AlertmanagerCluster | None = None
        self.prometheus: PrometheusServer | None = None
        self.engine: Engine | None = None
        self.settings: Settings | None = None
        self._server: Server | None = None
        self._cleanups: list[Callable[[], Awaitable[None]]] = []

    # -- lifecycle ----------------------------------------------------------------

    async def __aenter__(self) -> Self:
        try:
            await self.start_world()
        except BaseException:
            await self.stop()
            raise
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.stop()

    async def start_world(self) -> None:
        self.token_file.write_text(self.token + "\n")
        for fake in (self.exporter, self.apps, self.pagerduty, self.humans):
            await fake.start()
            self._cleanups.append(fake.stop)
        if self.want_kube:
            self.emulator = KubeEmulator(**self.emulator_clock)
            await self.emulator.start()
            self._cleanups.append(self.emulator.stop)
            self.emulator.add_namespace("shop")
        if self.want_postgres:
            server = PostgresServer()
            self._cleanups.append(lambda: asyncio.to_thread(server.stop))
            await asyncio.to_thread(server.start)
            self.postgres = server

    def on_stop(self, cleanup: Callable[[], Awaitable[None]]) -> None:
        """Run `cleanup` when the stack stops (before the servers it may use)."""
        self._cleanups.append(cleanup)

    @property
    def daemon_url(self) -> str:
        return f"http://{LOOPBACK}:{self._daemon_port}"

    async def launch(self) -> None:
        """Start Alertmanager(s), Prometheus and the daemon on the world as set up now."""
        self._daemon_port = free_port()
        am_config = alertmanager_config(
            daemon_url=self.daemon_url,
            token_file=self.token_file,
            humans_url=self.humans.url,
            timing=self.am_timing,
            repeat_interval=self.am_repeat_interval,
        )
        if self.alertmanager_count == 1:
            am = AlertmanagerServer(am_config)
            self._cleanups.append(lambda: asyncio.to_thread(am.stop))
            await asyncio.to_thread(am.start)
            self.alertmanagers = [am]
        else:
            # Gossip slower than the peer timeout: the members send their own notifications
            # before hearing of each other's, the at-least-once delivery an HA pair makes.
            cluster = AlertmanagerCluster(
                self.alertmanager_count, am_config, peer_timeout="10ms", gossip_interval="200ms"
            )
            self._cleanups.append(lambda: asyncio.to_thread(cluster.stop))
            await asyncio.to_thread(cluster.start)
            self.alertmanagers = list(cluster.members)
        rules = scaled_rules(self.dir / "rules")
        prometheus = PrometheusServer(
            targets={"exporter": [self.exporter.target]},
            rule_files=rules,
            alertmanagers=[am.url for am in self.alertmanagers],
            scrape_interval=self.scrape_interval,
            evaluation_interval=self.evaluation_interval,
        )
        prometheus.config["scrape_configs"].extend(self.apps.scrape_configs())
        self._cleanups.append(lambda: asyncio.to_thread(prometheus.stop))
        await asyncio.to_thread(prometheus.start)
        self.prometheus = prometheus
        await self._start_daemon(prometheus.url)

    async def _start_daemon(self, prometheus_url: str) -> None:
        config: dict[str, Any] = {
            "mode": "auto",
            "builtin_playbooks": True,
            "server": {"host": LOOPBACK, "port": self._daemon_port},
            "state": {"path": str(self.dir / "state.db")},
            "webhook": {"auth": {"bearer_token_file": str(self.token_file)}},
            "prometheus": {"url": prometheus_url},
            "escalation": {
                "pagerduty": {"routing_key": PAGERDUTY_KEY, "events_url": self.pagerduty.url},
                "delivery": FAST_DELIVERY,
            },
        }
        if self.emulator is not None:
            config["kubernetes"] = {"mode": "url", "url": self.emulator.url, **FAST_KUBE}
        settings = Settings(**deep_merge(config, self.daemon_overrides))
        registry, problems = load_registry(settings)
        params, param_problems = playbook_params(registry, settings)
        if problems + param_problems:
            raise RuntimeError(f"the daemon refuses to start: {problems + param_problems}")
        engine = Engine(settings, registry, params)
        app = build_app(settings, engine, Credentials(bearer=settings.webhook.auth.bearer()))
        server = Server(app, LOOPBACK, self._daemon_port)
        self._cleanups.append(server.stop)
        await server.start()
        self.settings, self.engine, self._server = settings, engine, server

    async def stop(self) -> None:
        errors: list[BaseException] = []
        while self._cleanups:
            cleanup = self._cleanups.pop()
            try:
                await cleanup()
            except Exception as exc:  # stop everything else first
                errors.append(exc)
        if self._own_dir:
            shutil.rmtree(self.dir, ignore_errors=True)
        if errors:
            raise errors[0]

    # -- reading the record and Prometheus -----------------------------------------

    @property
    def store(self) -> Store:
        if self.engine is None:
            raise RuntimeError("launch() first")
        return self.engine.store

    @property
    def prom(self) -> PrometheusServer:
        if self.prometheus is None:
            raise RuntimeError("launch() first")
        return self.prometheus

    async def episodes(self, alertname: str | None = None, **labels: str) -> list[EpisodeRecord]:
        found = await self.store.list_episodes(limit=1000)
        return [
            e
            for e in found
            if (alertname is None or e.alertname == alertname)
            and all(e.labels.get(k) == v for k, v in labels.items())
        ]

    async def actions(self, episode: EpisodeRecord) -> list[ActionRecord]:
        return await self.store.actions_for(episode.id)

    async def runs(self, episode: EpisodeRecord) -> list[RunRecord]:
        return await self.store.runs_for(episode.id)

    async def prometheus_alerts(self, alertname: str) -> list[dict[str, Any]]:
        alerts = await asyncio.to_thread(self.prom.alerts)
        return [a for a in alerts if a["labels"].get("alertname") == alertname]

    async def first_firing(self, alertname: str, labels: Mapping[str, str]) -> datetime | None:
        """The first evaluation at which Prometheus had the alert firing (from `ALERTS`)."""
        matchers = [f'alertname="{alertname}"', 'alertstate="firing"']
        matchers += [f'{k}="{v}"' for k, v in labels.items() if k != "alertname"]
        query = "ALERTS{" + ",".join(matchers) + "}[1h]"
        url = f"{self.prom.url}/api/v1/query?" + urllib.parse.urlencode({"query": query})
        reply = await asyncio.to_thread(http_json, "GET", url)
        stamps = [float(v[0]) for s in reply["data"]["result"] for v in s["values"]]
        return datetime.fromtimestamp(min(stamps), UTC) if stamps else None

    async def figures(self, scenario: str, episode: EpisodeRecord) -> Figures:
        current = await self.store.get_episode(episode.id) or episode
        actions = sorted(await self.actions(current), key=lambda a: a.intended_at)
        first = actions[0] if actions else None
        acted_at = first.intended_at if first else None
        if first is None:  # held by the storm breaker: its decision is the daemon's answer
            held = [
                d.at for d in await self.store.decisions_for(current.id) if d.kind == "storm_held"
            ]
            acted_at = held[0] if held else None
        return Figures(
            scenario=scenario,
            alertname=current.alertname,
            fired_at=await self.first_firing(current.alertname, current.labels),
            acted_at=acted_at,
            action_done_at=first.finished_at if first else None,
            resolved_at=current.resolved_at,
        )

    async def notifications_sent(self, am: AlertmanagerServer, integration: str) -> float:
        """Alertmanager's own count of notifications it sent through `integration`."""
        _, text = await asyncio.to_thread(http_request, "GET", f"{am.url}/metrics")
        total = 0.0
        for line in text.decode().splitlines():
            if line.startswith("alertmanager_notifications_total{") and (
                f'integration="{integration}"' in line
            ):
                total += float(line.rsplit(" ", 1)[1])
        return total

    async def deliveries_to_daemon(self, am: AlertmanagerServer) -> float:
        """Notifications `am` sent to the daemon: its webhook notifications minus those the
        human receivers (webhooks too) got from it, told apart by the payload's externalURL."""
        total = await self.notifications_sent(am, "webhook")
        humans = sum(
            1
            for r in self.humans.requests
            if isinstance(r.body, dict)
            and str(r.body.get("externalURL", "")).rstrip("/").endswith(f":{am.port}")
        )
        return total - humans

    async def describe(self) -> str:
        """What Prometheus and the daemon see now, for a failure message."""
        lines = []
        if self.prometheus is not None:
            alerts = await asyncio.to_thread(self.prometheus.alerts)
            lines += [f"prometheus: {a['labels'].get('alertname')} {a['state']}" for a in alerts]
        if self.engine is not None:
            for e in await self.store.list_episodes(limit=1000):
                runs = [(r.playbook, r.state, r.error) for r in await self.runs(e)]
                lines.append(
                    f"episode {e.alertname} {e.labels.get('deployment') or e.labels.get('pod')}"
                    f" {e.status} notifications={e.notifications} runs={runs}"
                )
        return "\n".join(lines) or "(nothing yet)"

    async def until(self, predicate: Predicate, *, timeout_s: float, what: str) -> None:
        """Poll `predicate` every 0.2 s; TimeoutError naming `what` and the state if it never
        holds within `timeout_s` seconds."""
        deadline = time.monotonic() + timeout_s
        while True:
            value = predicate()
            if not isinstance(value, bool):
                value = await value
            if value:
                return
            if time.monotonic() > deadline:
                raise TimeoutError(
                    f"timed out after {timeout_s:g}s waiting for {what}\n{await self.describe()}"
                )
            await asyncio.sleep(0.2)
