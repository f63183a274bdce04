"""`remediator demo`: scripted incidents against an emulated shop, narrated as they happen.

Nothing to install: the Kubernetes API-server emulator plays the cluster (a Kafka consumer, a
web API with an HPA, a Redis StatefulSet, a dozen small services), the daemon runs in auto mode
against it with the built-in playbooks and every guard at its default, and a fake PagerDuty
counts the pages. If PostgreSQL is installed, a real server joins for the pool-exhaustion
incident. Every process it starts is stopped by its handle or PID on the way out.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import tempfile
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

import aiohttp
import asyncpg

from remediator.config import Settings
from remediator.engine.assembly import load_registry, playbook_params
from remediator.logs import configure
from remediator_testing.alerts import alert, body, notification
from remediator_testing.fakes import FakePagerDuty
from remediator_testing.kube import KubeEmulator
from remediator_testing.local import LocalDaemon
from remediator_testing.servers import PostgresServer
from remediator_testing.servers.postgres import DEFAULT_BIN_DIR

__all__ = ["run_demo"]

NS = "shop"
STORM = [f"svc-{n:02d}" for n in range(1, 13)]  # more than the breaker's default 10 targets
PAGERDUTY_KEY = "D" * 32
MERGE = "application/merge-patch+json"


@dataclass
class Narrator:
    """Prints what the daemon records as it records it: decisions, changes, escalations and
    pages, polled from the same store the admin API reads."""

    daemon: LocalDaemon
    pagerduty: FakePagerDuty
    out: TextIO
    started: float = field(default_factory=time.monotonic)
    seen: set[tuple[Any, ...]] = field(default_factory=set)
    pages: int = 0

    def say(self, text: str) -> None:
        elapsed = time.monotonic() - self.started
        print(f"[{int(elapsed // 60):02d}:{elapsed % 60:04.1f}] {text}", file=self.out, flush=True)

    async def poll(self) -> None:
        store = self.daemon.engine.store
        for episode in reversed(await store.list_episodes(limit=200)):
            for d in await store.decisions_for(episode.id):
                if ("d", d.id) not in self.seen:
                    self.seen.add(("d", d.id))
                    who = f"{d.playbook}: " if d.playbook else ""
                    self.say(f"  {episode.alertname} · decision {d.kind} · {who}{d.reason}")
            for a in await store.actions_for(episode.id):
                if ("a", a.id, a.state) not in self.seen:
                    self.seen.add(("a", a.id, a.state))
                    self.say(f"  {episode.alertname} · change [{a.state}] {a.summary}")
            for e in await store.escalations_for(episode.id):
                if ("e", e.id) not in self.seen:
                    self.seen.add(("e", e.id))
                    self.say(f"  {episode.alertname} · escalated: {e.reason}")
        events = self.pagerduty.events
        for event in events[self.pages :]:
            summary = event.get("payload", {}).get("summary", event.get("event_action"))
            self.say(f"  PAGE ({event.get('event_action')}): {summary}")
        self.pages = len(events)

    async def follow(self) -> None:
        while True:
            with contextlib.suppress(Exception):  # a narration hiccup must not end the demo
                await self.poll()
            await asyncio.sleep(0.2)


async def _until(check: Callable[[], Awaitable[bool]], timeout_s: float, what: str) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if await check():
            return True
        await asyncio.sleep(0.1)
    return False


def _seed(emu: KubeEmulator) -> None:
    emu.add_namespace(NS)
    emu.add_deployment(NS, "orders-consumer", replicas=3, image="orders-consumer:1.4")
    emu.add_deployment(NS, "web-api", replicas=2, image="web-api:2.0")
    emu.add_hpa(NS, "web-api", min_replicas=2, max_replicas=10)
    emu.add_statefulset(NS, "redis", replicas=3, image="redis:7")
    emu.add_deployment("kube-system", "coredns", replicas=2, image="coredns:1.11")
    for name in STORM:
        emu.add_deployment(NS, name, replicas=1, image=f"{name}:1")


def _postgres_binary() -> Path | None:
    binary = Path(DEFAULT_BIN_DIR) / "postgres"
    return binary if binary.exists() else None


@contextlib.asynccontextmanager
async def _postgres(out: TextIO) -> AsyncIterator[tuple[PostgresServer, str] | None]:
    if _postgres_binary() is None:
        print(
            "PostgreSQL is not installed, so the pool-exhaustion incident is left out. To add "
            "it: `apt-get install postgresql` (Debian), then run the demo again.",
            file=out,
        )
        yield None
        return
    server = PostgresServer()
    await asyncio.to_thread(server.start)
    print(f"PostgreSQL started for the pool-exhaustion incident (pid {server.pid})", file=out)
    try:
        server.create_role("remediator", "remediator-demo", in_roles=["pg_signal_backend"])
        server.psql("GRANT pg_read_all_stats TO remediator")
        server.create_role("shop_app", "shop-app-demo")
        server.create_database("shop", owner="shop_app")
        yield server, server.dsn("remediator", "remediator-demo", "shop")
    finally:
        await asyncio.to_thread(server.stop)


def _settings(state_dir: Path, kubeconfig: Path, pagerduty: str, dsn: str | None) -> Settings:
    data: dict[str, Any] = {
        "mode": "auto",
        "state": {"path": str(state_dir / "demo.db")},
        "kubernetes": {"mode": "kubeconfig", "kubeconfig": str(kubeconfig), "poll_seconds": 0.2},
        "escalation": {
            "pagerduty": {"routing_key": PAGERDUTY_KEY, "events_url": pagerduty},
            "delivery": {"quick_wait_seconds": 0.1, "initial_backoff_seconds": 0.5},
        },
        "playbooks": {
            # Short cool-downs so the scale-back happens while you watch.
            "scale-on-lag": {"params": {"cooldown_seconds": 5}},
            "pg-idle-in-transaction": {"params": {"idle_threshold_seconds": 1}},
        },
    }
    if dsn is not None:
        data["databases"] = {"shop": {"dsn": dsn}}
    return Settings(**data)


class Script:
    """The incidents, one after another; each ends with one line saying how it ended."""

    def __init__(
        self,
        emu: KubeEmulator,
        daemon: LocalDaemon,
        narrator: Narrator,
        postgres: tuple[PostgresServer, str] | None,
    ) -> None:
        self.emu, self.daemon, self.narrator, self.postgres = emu, daemon, narrator, postgres
        self.outcomes: list[str] = []

    async def fire(self, *alerts: dict[str, Any]) -> None:
        status, answer = await self.daemon.post(body(notification(list(alerts))))
        if status >= 300:
            self.narrator.say(f"  the daemon answered {status}: {answer}")
        await self.daemon.settle()
        await self.narrator.poll()

    def outcome(self, text: str) -> None:
        self.outcomes.append(text)
        self.narrator.say(f"OUTCOME: {text}")

    def replicas(self, name: str) -> int:
        return int(self.emu.get("apps/v1", "deployments", NS, name)["spec"]["replicas"])

    async def kafka_lag(self) -> None:
        self.narrator.say("INCIDENT 1: Kafka consumer lag on shop/orders-consumer (3 replicas)")
        labels = {
            "alertname": "KafkaLagHigh",
            "namespace": NS,
            "deployment": "orders-consumer",
            "consumergroup": "orders",
            "topic": "orders",
            "partitions": "12",
            "severity": "warning",
        }
        await self.fire(alert(labels))
        scaled = self.replicas("orders-consumer")
        self.narrator.say("  ...the consumers catch up; Alertmanager sends the resolve")
        await self.fire(alert(labels, status="resolved"))

        async def back() -> bool:
            await self.narrator.poll()
            return self.replicas("orders-consumer") == 3

        returned = await _until(back, 30, "the scale-back")
        self.outcome(
            f"Kafka lag: scaled orders-consumer 3 -> {scaled}, "
            + ("scaled back to 3 after the resolve" if returned else "NOT scaled back yet")
        )

    async def bad_rollout(self) -> None:
        self.narrator.say("INCIDENT 2: a bad rollout of shop/web-api (2.0 -> 2.1 crash-loops)")
        self.emu.set_template_health(NS, "web-api", image="web-api:2.1", healthy=False)
        patch = {"spec": {"template": {"spec": {"containers": [
            {"name": "web-api", "image": "web-api:2.1"}
        ]}}}}  # fmt: skip
        async with (
            aiohttp.ClientSession() as session,
            session.patch(
                f"{self.emu.url}/apis/apps/v1/namespaces/{NS}/deployments/web-api",
                json=patch,
                headers={"Content-Type": MERGE},
            ) as answer,
        ):
            answer.raise_for_status()
        self.narrator.say("  deployed web-api:2.1; its pods crash and errors spike")
        await self.fire(
            alert({"alertname": "HighErrorRate", "namespace": NS, "deployment": "web-api",
                   "severity": "critical"})
        )  # fmt: skip
        image = self.emu.get("apps/v1", "deployments", NS, "web-api")["spec"]["template"]["spec"][
            "containers"
        ][0]["image"]
        self.outcome(
            "bad rollout: "
            + ("rolled web-api back to web-api:2.0" if image == "web-api:2.0" else f"image {image}")
        )

    async def hostile(self) -> None:
        self.narrator.say("INCIDENT 3: hostile and out-of-scope labels")
        await self.fire(
            alert({"alertname": "ServiceDown", "namespace": "kube-system", "deployment": "coredns",
                   "severity": "critical"}),
            alert({"alertname": "ServiceDown", "namespace": NS,
                   "deployment": "../../api/v1/secrets", "severity": "critical"}),
        )  # fmt: skip
        store = self.daemon.engine.store
        refusals = [
            d.reason
            for e in await store.list_episodes(alertname="ServiceDown")
            for d in await store.decisions_for(e.id)
            if d.kind == "refused"
        ]
        restarted = "kubectl.kubernetes.io/restartedAt" in (
            self.emu.get("apps/v1", "deployments", "kube-system", "coredns")["spec"]["template"][
                "metadata"
            ].get("annotations")
            or {}
        )
        self.outcome(
            f"hostile labels: {'coredns WAS restarted' if restarted else 'nothing touched'}; "
            f"{len(refusals)} refused ({'; '.join(refusals)})"
        )

    async def storm(self) -> None:
        self.narrator.say(f"INCIDENT 5: an alert storm: {len(STORM)} services down at once")
        pages_before = len(self.narrator.pagerduty.events)
        await self.fire(
            *(
                alert({"alertname": "ServiceDown", "namespace": NS, "deployment": name,
                       "severity": "critical"})
                for name in STORM
            )
        )  # fmt: skip
        breaker = await self.daemon.engine.governance.breaker()
        restarts = sum(
            "kubectl.kubernetes.io/restartedAt"
            in (
                self.emu.get("apps/v1", "deployments", NS, n)["spec"]["template"]["metadata"].get(
                    "annotations"
                )
                or {}
            )
            for n in STORM
        )
        await asyncio.sleep(1.5)  # the pages' outbox delivers within a second
        await self.narrator.poll()
        pages = len(self.narrator.pagerduty.events) - pages_before
        self.outcome(
            f"storm: breaker {'OPEN (' + breaker.reason + ')' if breaker else 'closed'}; "
            f"{restarts} restart(s); {pages} page(s)"
        )

    async def pool_exhaustion(self) -> None:
        if self.postgres is None:
            return
        server, _ = self.postgres
        self.narrator.say("INCIDENT 4: the shop's connection pool is exhausted by stuck sessions")
        conns = []
        try:
            for _ in range(4):
                conn = await asyncpg.connect(
                    server.dsn("shop_app", "shop-app-demo", "shop"),
                    server_settings={"application_name": "shop"},
                )
                conns.append(conn)
                await conn.execute("BEGIN")
                await conn.fetchval("SELECT 1")
            await asyncio.sleep(1.2)  # idle in transaction longer than the demo's threshold
            self.narrator.say("  4 sessions idle in transaction; HikariCP reports 0 idle")
            await self.fire(
                alert({"alertname": "DatabaseConnectionPoolExhausted", "namespace": NS,
                       "deployment": "orders-consumer", "datname": "shop",
                       "severity": "critical"})
            )  # fmt: skip
            alive = 0
            for conn in conns:
                with contextlib.suppress(Exception):
                    await conn.fetchval("SELECT 1")
                    alive += 1
            self.outcome(f"pool exhaustion: {len(conns) - alive} of {len(conns)} sessions ended")
        finally:
            for conn in conns:
                conn.terminate()


async def _demo(port: int, exit_after_script: bool, out: TextIO) -> int:
    configure("console", "critical")  # the narration is the output; the daemon's log stays quiet
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    with tempfile.TemporaryDirectory(prefix="remediator-demo-") as tmp:
        emu = KubeEmulator(tick=0.05, ready_after=0.3, crash_interval=0.3)
        await emu.start()
        try:
            _seed(emu)
            kubeconfig = emu.kubeconfig(Path(tmp) / "kubeconfig", namespace=NS)
            async with FakePagerDuty(PAGERDUTY_KEY) as pagerduty, _postgres(out) as postgres:
                settings = _settings(
                    Path(tmp), kubeconfig, pagerduty.url, postgres[1] if postgres else None
                )
                registry, problems = load_registry(settings)
                params, param_problems = playbook_params(registry, settings)
                if problems + param_problems:
                    print(f"demo: cannot load the playbooks: {problems + param_problems}", file=out)
                    return 1
                async with LocalDaemon(settings, registry, params, port=port) as daemon:
                    print(f"\nWatch the cluster:  export KUBECONFIG={kubeconfig}", file=out)
                    print(
                        "                    kubectl get deploy,statefulset,pods -n shop -w",
                        file=out,
                    )
                    print(
                        f"The web page:       {daemon.url}/ui/  (token: {daemon.admin_token})",
                        file=out,
                    )
                    print("Ctrl-C stops everything.\n", file=out, flush=True)  # fmt: skip
                    narrator = Narrator(daemon, pagerduty, out)
                    follow = asyncio.create_task(narrator.follow(), name="demo-narrator")
                    script = Script(emu, daemon, narrator, postgres)
                    try:
                        for incident in (
                            script.kafka_lag,
                            script.bad_rollout,
                            script.hostile,
                            script.pool_exhaustion,
                            script.storm,
                        ):
                            if stop.is_set():
                                break
                            await incident()
                        print("\nWhat happened:", file=out)
                        for line in script.outcomes:
                            print(f"  - {line}", file=out)
                        if not exit_after_script and not stop.is_set():
                            print("\nStill serving; Ctrl-C to stop.", file=out, flush=True)
                            await stop.wait()
                    finally:
                        follow.cancel()
                        with contextlib.suppress(asyncio.CancelledError):
                            await follow
        finally:
            await emu.stop()
    print("demo stopped; everything it started is stopped.", file=out, flush=True)
    return 0


def run_demo(*, port: int, exit_after_script: bool, out: TextIO) -> int:
    return asyncio.run(_demo(port, exit_after_script, out))
