"""The end-to-end scenarios: a problem appears in metrics, the real rules fire, the real
Alertmanager routes it, the daemon acts, and the metrics recover the way the system would.

Each scenario builds its own `Stack`, drives it with deadlines (never fixed sleeps as
assertions), and returns a `Result`: the firing->action and action->resolved figures and a copy
of everything the tests assert on (the record outlives the stack this way).
"""

from __future__ import annotations

import asyncio
import secrets
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import asyncpg

from remediator.store.records import ActionRecord, EpisodeRecord, EscalationRecord, RunRecord
from remediator_testing.harness.stack import Figures, Stack
from remediator_testing.harness.world import (
    AppTargets,
    ConsumerLag,
    HungPods,
    KubeStateMetrics,
    PoolSessions,
)
from remediator_testing.kube import KubeEmulator
from remediator_testing.servers._common import http_json

__all__ = ["SCENARIOS", "Result", "run"]

NAMESPACE = "shop"
RESTARTED_AT = "kubectl.kubernetes.io/restartedAt"
# Generous deadlines for a loaded 2-core CI machine; a healthy run takes a fraction of them.
FIRE_TIMEOUT = 120.0  # Prometheus start (first scrape ~5 s), `for:`, group_wait, the run
RESOLVE_TIMEOUT = 90.0


@dataclass
class Result:
    scenario: str
    figures: list[Figures]
    episodes: list[EpisodeRecord]
    runs: dict[str, list[RunRecord]]
    actions: dict[str, list[ActionRecord]]
    escalations: dict[str, list[EscalationRecord]]
    pages: list[dict[str, Any]]  # what the daemon sent to (fake) PagerDuty
    human_notifications: int  # what Alertmanager's human routes sent
    seconds: float  # wall time of the scenario, start-up included
    facts: dict[str, Any] = field(default_factory=dict)

    def episode(self, alertname: str) -> EpisodeRecord:
        [only] = [e for e in self.episodes if e.alertname == alertname]
        return only


async def _result(
    stack: Stack, scenario: str, episodes: list[EpisodeRecord], started: float
) -> Result:
    async def finished() -> bool:
        runs = [r for e in episodes for r in await stack.store.runs_for(e.id)]
        return all(r.finished_at is not None for r in runs)

    # A run may still be watching its rollout after the alert resolved.
    await stack.until(finished, timeout_s=RESOLVE_TIMEOUT, what="the runs to finish")
    final = [await stack.store.get_episode(e.id) or e for e in episodes]
    return Result(
        scenario=scenario,
        figures=[await stack.figures(scenario, e) for e in final],
        episodes=final,
        runs={e.id: await stack.store.runs_for(e.id) for e in final},
        actions={e.id: await stack.store.actions_for(e.id) for e in final},
        escalations={e.id: await stack.store.escalations_for(e.id) for e in final},
        pages=stack.pagerduty.events,
        human_notifications=len(stack.humans.requests),
        seconds=time.monotonic() - started,
    )


async def _acted(stack: Stack, alertname: str, **labels: str) -> EpisodeRecord:
    """Wait for the episode of `alertname` and for its first action's outcome."""
    found: list[EpisodeRecord] = []

    async def acted() -> bool:
        for episode in await stack.episodes(alertname, **labels):
            if any(a.finished_at is not None for a in await stack.actions(episode)):
                found.append(episode)
                return True
        return False

    await stack.until(acted, timeout_s=FIRE_TIMEOUT, what=f"an action on {alertname} {labels}")
    return found[0]


async def _resolved(stack: Stack, episode: EpisodeRecord) -> EpisodeRecord:
    current: list[EpisodeRecord] = []

    async def resolved() -> bool:
        record = await stack.store.get_episode(episode.id)
        if record is not None and record.resolved_at is not None:
            current.append(record)
            return True
        return False

    await stack.until(
        resolved, timeout_s=RESOLVE_TIMEOUT, what=f"{episode.alertname} to resolve after the action"
    )
    return current[0]


# -- 1. Kafka lag -------------------------------------------------------------------------


async def kafka_lag() -> Result:
    """Lag rises -> KafkaLagHigh -> scale-on-lag adds 2 consumers -> lag falls -> resolved ->
    after the 3 s cool-down the Deployment returns to 2 replicas.

    Lag integrates the producer rate (4000/s during the surge) minus 1500/s per ready consumer:
    it grows with 2 consumers and falls with 4. When the alert has resolved the surge ends
    (2000/s, which 2 consumers keep up with), so the scale-back does not bring it back.
    """
    started = time.monotonic()
    async with Stack(
        kube=True,
        daemon={
            "playbooks": {
                "scale-on-lag": {"params": {"partitions": 6, "step": 2, "cooldown_seconds": 3}}
            }
        },
    ) as stack:
        emu = _emulator(stack)
        emu.add_deployment(NAMESPACE, "orders-consumer", replicas=2, image="consumer:1")
        await emu.wait_rolled_out(NAMESPACE, "orders-consumer", timeout_s=30)
        lag = ConsumerLag(
            emulator=emu,
            namespace=NAMESPACE,
            deployment="orders-consumer",
            lag=8000,
            produce_rate=4000,
            consume_rate=1500,
        )
        lag.export(stack.exporter, consumergroup="orders", topic="orders", partitions=6)
        await stack.launch()

        episode = await _acted(stack, "KafkaLagHigh", deployment="orders-consumer")
        scaled_to = _replicas(emu, "orders-consumer")
        await stack.until(
            lambda: lag.consumers() == 4, timeout_s=30, what="4 ready consumers after scaling"
        )
        episode = await _resolved(stack, episode)
        lag.set_produce_rate(2000)  # the surge is over
        await stack.until(
            lambda: _replicas(emu, "orders-consumer") == 2,
            timeout_s=60,
            what="the scale back to 2 replicas after the cool-down",
        )
        result = await _result(stack, "kafka-lag", [episode], started)
        result.facts.update(scaled_to=scaled_to, replicas_after=_replicas(emu, "orders-consumer"))
        return result


# -- 2. Crash loop after a rollout ------------------------------------------------------------


async def crashloop_rollback() -> Result:
    """api:1 runs; a rollout to api:2 crash-loops -> PodCrashLooping (with `deployment` from the
    kube-state-metrics owner series) -> restart-crashloop rolls back to api:1 -> the crashing
    pod is gone, its series go stale -> the alert resolves."""
    started = time.monotonic()
    async with Stack(kube=True) as stack:
        emu = _emulator(stack)
        emu.add_deployment(NAMESPACE, "api", replicas=2, image="api:1")
        await emu.wait_rolled_out(NAMESPACE, "api", timeout_s=30)
        ksm = KubeStateMetrics(emu, stack.exporter, NAMESPACE)
        ksm.start()
        stack.on_stop(_sync(ksm.stop))
        emu.set_template_health(NAMESPACE, "api", image="api:2", healthy=False)
        await _merge_patch(
            emu,
            f"/apis/apps/v1/namespaces/{NAMESPACE}/deployments/api",
            {"spec": {"template": {"spec": {"containers": [{"name": "api", "image": "api:2"}]}}}},
        )
        await emu.wait_for(lambda: bool(_crash_looping(emu, "api")), timeout_s=30, what="crash")
        crashing = _crash_looping(emu, "api")
        await stack.launch()

        episode = await _acted(stack, "PodCrashLooping", deployment="api")
        await emu.wait_rolled_out(NAMESPACE, "api", timeout_s=60)
        episode = await _resolved(stack, episode)
        result = await _result(stack, "crashloop-rollback", [episode], started)
        result.facts.update(
            crashing_pods=crashing,
            images={p["spec"]["containers"][0]["image"] for p in emu.pods(NAMESPACE, "app=api")},
        )
        return result


# -- 3. Connection pool exhausted by idle-in-transaction sessions -------------------------------


async def pool_exhaustion() -> Result:
    """4 sessions of the application's role sit `idle in transaction` in a real PostgreSQL:
    the pool (max 4) is exhausted -> DatabaseConnectionPoolExhausted -> pg-idle-in-transaction
    terminates them -> `hikaricp_connections_active` (counted from `pg_stat_activity`) drops to
    0 -> the alert resolves.

    Parameter shortened: `idle_threshold_seconds` 2 (the runbook's 300).
    """
    started = time.monotonic()
    async with Stack(postgres=True) as stack:
        pg = stack.postgres
        assert pg is not None
        suffix = secrets.token_hex(3)
        database, app, remediator = f"orders_{suffix}", f"orders_app_{suffix}", f"rem_{suffix}"
        app_password, rem_password = secrets.token_urlsafe(12), secrets.token_urlsafe(12)
        await asyncio.to_thread(pg.create_role, app, app_password)
        await asyncio.to_thread(
            pg.create_role,
            remediator,
            rem_password,
            in_roles=("pg_signal_backend", "pg_read_all_stats"),
        )
        await asyncio.to_thread(pg.create_database, database)
        leaked = await _idle_in_transaction(stack, pg.dsn(app, app_password, database), count=4)
        pool = PoolSessions(pg.superuser_dsn, database, app)
        stack.on_stop(pool.close)
        labels = {
            "pool": "HikariPool-1",
            "namespace": NAMESPACE,
            "deployment": "orders",
            "datname": database,
            "pod": "orders-6c9f8d7b5-x2x7q",
        }
        stack.exporter.set("hikaricp_connections_max", 4, **labels)
        stack.exporter.set_func("hikaricp_connections_active", labels, pool.active)
        stack.daemon_overrides = {
            "databases": {database: {"dsn": pg.dsn(remediator, rem_password, database)}},
            "playbooks": {"pg-idle-in-transaction": {"params": {"idle_threshold_seconds": 2}}},
        }
        await stack.launch()

        episode = await _acted(stack, "DatabaseConnectionPoolExhausted", datname=database)
        episode = await _resolved(stack, episode)
        result = await _result(stack, "pool-exhaustion", [episode], started)
        result.facts.update(
            leaked_pids=sorted(leaked),
            sessions_left=await pool.active(),
        )
        return result


async def _idle_in_transaction(stack: Stack, dsn: str, *, count: int) -> set[int]:
    conns: list[Any] = []

    async def close() -> None:
        for conn in conns:
            conn.terminate()  # also those the playbook killed, whose sockets are dead

    stack.on_stop(close)
    for _ in range(count):
        conn = await asyncpg.connect(dsn, server_settings={"application_name": "orders"})
        conns.append(conn)
        await conn.execute("BEGIN")
        await conn.fetchval("SELECT 1")
    return {int(c.get_server_pid()) for c in conns}


# -- 4. A storm of ServiceDown alerts -------------------------------------------------------


STORM_SIZE = 8
STORM_THRESHOLD = 5


async def service_down_storm() -> Result:
    """8 Deployments of job technical-analysis stop answering at once (a network partition)
    -> 8 ServiceDown alerts in one evaluation -> the storm breaker (`distinct_targets` 5) opens
    on the whole picture: every alert it sees from then on is held, those dispatched before (at
    most the threshold) are refused at their action; nothing is restarted, one page.

    All targets go down right after a rule evaluation, with scrapes (0.5 s) faster than
    evaluations (2 s), so every alert becomes pending, and fires, in the same evaluation, as it
    would when a partition takes them all down at once.
    """
    started = time.monotonic()
    down = asyncio.Event()
    names = [f"technical-analysis-{i}" for i in range(STORM_SIZE)]
    async with Stack(
        kube=True,
        scrape_interval="500ms",
        evaluation_interval="2s",
        daemon={"guards": {"storm": {"distinct_targets": STORM_THRESHOLD}}},
    ) as stack:
        emu = _emulator(stack)
        for name in names:
            emu.add_deployment(NAMESPACE, name, replicas=1, image="ta:1")
            _add_target(stack.apps, name, lambda: not down.is_set())
        for name in names:
            await emu.wait_rolled_out(NAMESPACE, name, timeout_s=30)
        await stack.launch()

        async def all_up() -> bool:
            value = await asyncio.to_thread(
                stack.prom.query_value, 'count(up{job="technical-analysis"} == 1)'
            )
            return value == STORM_SIZE

        await stack.until(all_up, timeout_s=60, what="Prometheus to scrape every target as up")
        await _after_evaluation(stack, "remediator.kubernetes")
        down.set()

        async def all_held() -> bool:
            episodes = await stack.episodes("ServiceDown")
            assert stack.engine is not None
            breaker = await stack.engine.governance.breaker()
            if len(episodes) < STORM_SIZE or breaker is None:
                return False
            # Alertmanager groups by deployment: a notification per alert, so those digested
            # before the breaker opened (at most its threshold) were dispatched, and are
            # refused by it at their action.
            held = {h.episode_id for h in await stack.store.held_alerts(breaker.id)}
            for episode in episodes:
                runs = await stack.runs(episode)
                if episode.id not in held and not (runs and runs[0].finished_at is not None):
                    return False
            return True

        await stack.until(all_held, timeout_s=FIRE_TIMEOUT, what="every ServiceDown decided")
        await stack.pagerduty.wait_for(1, within=30)
        # Room for (wrong) extra pages or restarts: outbox polls every 0.2 s.
        await asyncio.sleep(2)
        assert stack.engine is not None
        breaker = await stack.engine.governance.breaker()
        assert breaker is not None
        episodes = await stack.episodes("ServiceDown")
        result = await _result(stack, "service-down-storm", episodes, started)
        result.facts.update(
            breaker=breaker,
            held=[h.episode_id for h in await stack.store.held_alerts(breaker.id)],
            restarted=[
                n
                for n in names
                if RESTARTED_AT
                in (
                    emu.get("apps/v1", "deployments", NAMESPACE, n)["spec"]["template"][
                        "metadata"
                    ].get("annotations", {})
                )
            ],
            mutations=[r.path for r in emu.requests if r.method in ("PATCH", "POST", "PUT")],
        )
        return result


async def _after_evaluation(stack: Stack, group: str) -> None:
    """Return just after Prometheus evaluated rule group `group`."""

    def last() -> str:
        reply = http_json("GET", f"{stack.prom.url}/api/v1/rules?type=alert")
        [found] = [g for g in reply["data"]["groups"] if g["name"] == group]
        return str(found["lastEvaluation"])

    before = await asyncio.to_thread(last)

    async def evaluated() -> bool:
        return await asyncio.to_thread(last) != before

    deadline = time.monotonic() + 30
    while not await evaluated():
        if time.monotonic() > deadline:
            raise TimeoutError(f"rule group {group} was not evaluated within 30 s")
        await asyncio.sleep(0.05)


# -- 5. Re-sends and an HA pair ----------------------------------------------------------------


async def ha_resends() -> Result:
    """technical-analysis' pods hang -> ServiceDown, delivered by an HA pair of Alertmanagers
    (gossip slower than the peer timeout, so both send) and re-sent every second -> exactly one
    rollout restart -> the new pods answer, 4 s later (the alert keeps firing and being re-sent
    meanwhile) -> resolved."""
    started = time.monotonic()
    async with Stack(
        kube=True,
        alertmanagers=2,
        emulator_clock={"tick": 0.05, "ready_after": 4.0, "crash_interval": 0.5},
        daemon={"playbooks": {"restart-on-down": {"params": {"rollout_deadline_seconds": 30}}}},
    ) as stack:
        emu = _emulator(stack)
        emu.add_deployment(NAMESPACE, "technical-analysis", replicas=2, image="ta:1")
        await emu.wait_rolled_out(NAMESPACE, "technical-analysis", timeout_s=30)
        hung = HungPods(emu, NAMESPACE, "technical-analysis")
        hung.hang()
        _add_target(stack.apps, "technical-analysis", hung.up)
        await stack.launch()

        episode = await _acted(stack, "ServiceDown", deployment="technical-analysis")

        async def delivered_by_both() -> bool:
            counts = [await stack.deliveries_to_daemon(am) for am in stack.alertmanagers]
            return all(c >= 1 for c in counts)

        await stack.until(
            delivered_by_both, timeout_s=60, what="both Alertmanagers to deliver to the daemon"
        )
        episode = await _resolved(stack, episode)
        result = await _result(stack, "ha-resends", [episode], started)
        assert stack.engine is not None
        recorded = stack.engine.metrics.notifications.labels("recorded")
        result.facts.update(
            daemon_notifications=recorded._value.get(),
            deliveries=[await stack.deliveries_to_daemon(am) for am in stack.alertmanagers],
            restart_patches=[
                r.path
                for r in emu.requests
                if r.method == "PATCH" and r.path.endswith("/deployments/technical-analysis")
            ],
        )
        return result


# -- helpers --------------------------------------------------------------------------------


def _emulator(stack: Stack) -> KubeEmulator:
    assert stack.emulator is not None
    return stack.emulator


def _replicas(emu: KubeEmulator, name: str) -> int:
    return int(emu.get("apps/v1", "deployments", NAMESPACE, name)["spec"]["replicas"])


def _add_target(apps: AppTargets, deployment: str, up: Callable[[], bool]) -> None:
    apps.add("technical-analysis", {"namespace": NAMESPACE, "deployment": deployment}, up)


def _crash_looping(emu: KubeEmulator, app: str) -> list[str]:
    return sorted(
        p["metadata"]["name"]
        for p in emu.pods(NAMESPACE, f"app={app}")
        for c in (p.get("status") or {}).get("containerStatuses") or []
        if ((c.get("state") or {}).get("waiting") or {}).get("reason") == "CrashLoopBackOff"
    )


async def _merge_patch(emu: KubeEmulator, path: str, body: Any) -> None:
    """Change an object as a CD system would: a merge patch through the API."""
    async with (
        aiohttp.ClientSession() as session,
        session.patch(
            emu.url + path, json=body, headers={"Content-Type": "application/merge-patch+json"}
        ) as response,
    ):
        if response.status != 200:
            raise RuntimeError(f"PATCH {path}: {response.status} {await response.text()}")


def _sync(func: Callable[[], None]) -> Callable[[], Awaitable[None]]:
    async def call() -> None:
        func()

    return call


SCENARIOS: dict[str, Callable[[], Awaitable[Result]]] = {
    "kafka-lag": kafka_lag,
    "crashloop-rollback": crashloop_rollback,
    "pool-exhaustion": pool_exhaustion,
    "service-down-storm": service_down_storm,
    "ha-resends": ha_resends,
}


async def run(name: str) -> Result:
    return await SCENARIOS[name]()
