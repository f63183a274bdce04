"""Webhook intake benchmark: the real daemon against a bare aiohttp endpoint, in one run.

    .venv/bin/python bench/webhook.py [--distinct 100000] [--phases sqlite,pg1,pg2]

Starts three reference servers, each as its own process on 127.0.0.1: a bare aiohttp endpoint
that only reads the body and answers 200; the same plus remediator's payload validation; and the
same plus a group-committed append-and-fdatasync of the body before answering. Then the daemon,
`remediator serve` (shadow mode), in three configurations one after the other: on SQLite (fsync
on every commit), on PostgreSQL with one replica, and on PostgreSQL with two replicas sharing the
database (the client alternates between them); PostgreSQL is a server of the bench's own with
fsync and synchronous commit on. All get the same pre-built Alertmanager notifications (20
alerts each: new, re-sent and resolving) from the same client. Prints throughput (as ratios of
the bare endpoint's and of the validated-durable reference's), CPU per notification of each
server (PostgreSQL included) and of the client, the drain after the blast, p50/p99
acknowledgement latency at a fixed 500 notifications/s, the daemon's RSS as distinct alerts
grow, and checks that every distinct alert is one episode and no (episode, playbook) ran twice.
Every process it starts is stopped by PID.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import random
import resource
import secrets
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import aiohttp
import asyncpg

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from remediator_testing.alerts import alert, notification
from remediator_testing.fakes import FakePagerDuty, FakeSlack
from remediator_testing.replicas import Replicas
from remediator_testing.servers import PostgresServer, free_port

TOKEN = "bench-token"
PD_KEY = "B" * 32
SLACK_TOKEN = "xoxb-bench-token"
SLACK_CHANNEL = "C0BENCH"
PER_NOTIFICATION = 20

BARE_SERVER = """
import sys
from aiohttp import web

async def ok(request):
    await request.read()
    return web.Response(text="ok")

app = web.Application(client_max_size=2**20)
app.router.add_post("/webhook", ok)
web.run_app(app, host="127.0.0.1", port=int(sys.argv[1]), access_log=None, print=None)
"""

# The same server plus remediator's own payload validation, and nothing recorded: how much of
# the bare endpoint's throughput the validation the contract requires leaves, in this run.
VALIDATE_ONLY_SERVER = """
import sys
from aiohttp import web
from remediator.alertmanager import Limits, PayloadError, validate_notification

async def ok(request):
    try:
        validate_notification(await request.read(), Limits())
    except PayloadError as exc:
        return web.Response(status=exc.status, text=exc.message)
    return web.Response(text="ok")

app = web.Application(client_max_size=2**20)
app.router.add_post("/webhook", ok)
web.run_app(app, host="127.0.0.1", port=int(sys.argv[1]), access_log=None, print=None)
"""

# The least a server meeting the contract does: validate, then answer only once the body is on
# disk. Group commit as in the daemon (whatever waits goes in one write and one fdatasync, on
# a thread, while the next batch gathers), and nothing else: no episodes, no metrics, no auth.
DURABLE_ONLY_SERVER = """
import asyncio, os, sys
from concurrent.futures import ThreadPoolExecutor
from aiohttp import web
from remediator.alertmanager import Limits, PayloadError, validate_notification

waiting = []
disk = ThreadPoolExecutor(1)
fd = os.open(sys.argv[2], os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)

def append(bodies):
    os.write(fd, b"".join(bodies))
    os.fdatasync(fd)

async def writer(wake):
    loop = asyncio.get_running_loop()
    while True:
        await wake.wait()
        wake.clear()
        while waiting:
            batch = waiting[:256]
            del waiting[:256]
            await loop.run_in_executor(disk, append, [body for body, _ in batch])
            for _, done in batch:
                if not done.done():
                    done.set_result(None)

async def ok(request):
    body = await request.read()
    try:
        validate_notification(body, Limits())
    except PayloadError as exc:
        return web.Response(status=exc.status, text=exc.message)
    done = asyncio.get_running_loop().create_future()
    waiting.append((body, done))
    request.app["wake"].set()
    await done
    return web.Response(text="ok")

async def start(app):
    app["wake"] = asyncio.Event()
    app["writer"] = asyncio.create_task(writer(app["wake"]))

app = web.Application(client_max_size=2**20)
app.on_startup.append(start)
app.router.add_post("/webhook", ok)
web.run_app(app, host="127.0.0.1", port=int(sys.argv[1]), access_log=None, print=None)
"""

PLAYBOOK = '''
from remediator.playbook import Action, playbook, targets

@playbook(match='alertname="KafkaLagHigh"', target=targets.deployment())
async def bench_scale(*, run, target, **_):
    """Records the call it would make (shadow mode)."""
    await run.act(Action("patch", "deployments/scale", target, "scale", {"spec": {}}), _noop)

async def _noop():
    return None
'''


def cpu_seconds(pid: int) -> float:
    """User + system CPU of a process so far (all its threads)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def children(pid: int) -> list[int]:
    """The live child processes of `pid` (PostgreSQL's backends of its postmaster)."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                fields = (entry / "stat").read_text().rpartition(")")[2].split()
            except OSError:
                continue
            if int(fields[1]) == pid:
                found.append(int(entry.name))
    return found


def tree_cpu_seconds(pids: list[int]) -> dict[int, float]:
    """CPU so far of each process in `pids` and of each of their children, by PID."""
    seen: dict[int, float] = {}
    for pid in pids:
        for each in [pid, *children(pid)]:
            try:
                seen[each] = cpu_seconds(each)
            except OSError:
                continue
    return seen


def own_cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


@dataclass
class Blast:
    seconds: float
    latencies: list[float]
    errors: int
    server_cpu: float  # CPU seconds the server(s) used during the blast (PostgreSQL included)
    client_cpu: float  # and this client

    def per_notification_us(self, n: int) -> tuple[float, float]:
        return self.server_cpu / n * 1e6, self.client_cpu / n * 1e6


async def measured_blast(
    urls: list[str], pids: list[int], bodies: list[bytes], concurrency: int, on_done: Any = None
) -> Blast:
    server0, client0 = tree_cpu_seconds(pids), own_cpu_seconds()
    seconds, latencies, errors = await blast(urls, bodies, concurrency, on_done)
    server1 = tree_cpu_seconds(pids)
    # A process that started during the blast (a new PostgreSQL backend) counts from zero.
    used = sum(cpu - server0.get(pid, 0.0) for pid, cpu in server1.items())
    return Blast(seconds, latencies, errors, used, own_cpu_seconds() - client0)


def rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


@dataclass
class Workload:
    bodies: list[bytes]
    distinct_after: list[int]  # distinct firing alerts created once body i is accepted
    distinct: int


def build_workload(distinct: int, seed: int = 7, prefix: str = "") -> Workload:
    """Notifications of 20 alerts: ~60% new, ~30% re-sent (still firing), ~10% resolving."""
    rng = random.Random(seed)
    start = datetime(2026, 11, 22, 3, 0, tzinfo=UTC)
    # Each alert starts when it is first sent, as in Prometheus; re-sends keep their startsAt.
    firing: list[tuple[dict[str, str], datetime]] = []
    bodies: list[bytes] = []
    after: list[int] = []
    made = 0
    while made < distinct:
        alerts = []
        for _ in range(PER_NOTIFICATION):
            roll = rng.random()
            if roll < 0.6 or len(firing) < 50 or made >= distinct:
                if made >= distinct and firing:
                    labels, starts = rng.choice(firing)
                    alerts.append(alert(labels, starts_at=starts))
                    continue
                labels = {
                    "alertname": "KafkaLagHigh" if made % 10 == 0 else "BenchOther",
                    "namespace": f"{prefix}ns{made % 50}",
                    "deployment": f"{prefix}consumer-{made}",
                    "severity": "warning",
                    "consumergroup": f"group-{made}",
                }
                starts = start + timedelta(milliseconds=100 * made)
                made += 1
                firing.append((labels, starts))
                alerts.append(alert(labels, starts_at=starts))
            elif roll < 0.9:
                labels, starts = rng.choice(firing)
                alerts.append(alert(labels, starts_at=starts))
            else:
                labels, starts = firing.pop(rng.randrange(len(firing)))
                ends = starts + timedelta(minutes=3)
                alerts.append(alert(labels, status="resolved", starts_at=starts, ends_at=ends))
        bodies.append(json.dumps(notification(alerts)).encode())
        after.append(made)
    return Workload(bodies, after, made)


async def wait_ready(url: str, proc: subprocess.Popen[bytes]) -> None:
    async with aiohttp.ClientSession() as session:
        for _ in range(200):
            if proc.poll() is not None:
                raise RuntimeError(f"server exited with {proc.returncode}")
            try:
                async with session.get(url) as resp:
                    if resp.status < 500:
                        return
            except aiohttp.ClientError:
                pass
            await asyncio.sleep(0.05)
    raise RuntimeError(f"{url} never became ready")


async def blast(
    urls: list[str], bodies: list[bytes], concurrency: int, on_done: Any = None
) -> tuple[float, list[float], int]:
    """Send every body as fast as `concurrency` connections allow, body i to `urls[i % n]`;
    returns (seconds, latencies, errors)."""
    headers = {"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/json"}
    latencies: list[float] = []
    errors = 0
    index = 0
    connector = aiohttp.TCPConnector(limit=concurrency)
    async with aiohttp.ClientSession(connector=connector) as session:

        async def worker() -> None:
            nonlocal index, errors
            while index < len(bodies):
                i = index
                index += 1
                t0 = time.perf_counter()
                async with session.post(
                    urls[i % len(urls)], data=bodies[i], headers=headers
                ) as resp:
                    await resp.read()
                    if resp.status != 200:
                        errors += 1
                latencies.append(time.perf_counter() - t0)
                if on_done is not None:
                    on_done(i)

        started = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        return time.perf_counter() - started, latencies, errors


async def paced(urls: list[str], bodies: list[bytes], rate: float) -> tuple[list[float], int]:
    """Open-loop load at a fixed rate (body i to `urls[i % n]`): latency is measured from the
    scheduled send time."""
    headers = {"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/json"}
    latencies: list[float] = []
    errors = 0
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=256)) as session:
        start = time.perf_counter()

        async def one(i: int) -> None:
            nonlocal errors
            scheduled = start + i / rate
            await asyncio.sleep(max(0.0, scheduled - time.perf_counter()))
            async with session.post(urls[i % len(urls)], data=bodies[i], headers=headers) as resp:
                await resp.read()
                if resp.status != 200:
                    errors += 1
            latencies.append(time.perf_counter() - scheduled)

        await asyncio.gather(*(one(i) for i in range(len(bodies))))
    return latencies, errors


async def metrics(url: str) -> dict[str, float]:
    """A /metrics exposition as {series as written: value}."""
    async with aiohttp.ClientSession() as session, session.get(url) as resp:
        text = await resp.text()
    values: dict[str, float] = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            name, _, number = line.rpartition(" ")
            values[name] = float(number)
    return values


async def summed(urls: list[str], prefix: str) -> dict[str, float]:
    """The series starting with `prefix`, summed over every replica's /metrics."""
    total: dict[str, float] = {}
    for url in urls:
        for name, value in (await metrics(url)).items():
            if name.startswith(prefix):
                total[name] = total.get(name, 0.0) + value
    return total


Journal = Callable[[], Awaitable[int]]


async def drain(urls: list[str], journal: Journal | None = None, limit: float = 600.0) -> float:
    """Seconds until every replica has digested the journal and emptied its dispatch queue
    (and, with `journal`, the shared journal is empty)."""
    started = time.perf_counter()
    while time.perf_counter() - started < limit:
        busy = False
        for url in urls:
            values = await metrics(url)
            busy = busy or bool(
                values.get("remediator_digest_backlog")
                or values.get("remediator_dispatch_queue_depth")
            )
        if not busy and (journal is None or await journal() == 0):
            return time.perf_counter() - started
        await asyncio.sleep(0.05)
    raise RuntimeError(f"the daemon did not drain in {limit:.0f} s")


async def outbox_empty(
    urls: list[str], undelivered: Journal | None = None, limit: float = 30.0
) -> bool:
    """Whether the outbox was delivered (the storm's page and message) within `limit`: by the
    record when `undelivered` counts it there (PostgreSQL, shared by the replicas), else by
    the daemon's `remediator_outbox_pending`."""
    started = time.perf_counter()
    while time.perf_counter() - started < limit:
        if undelivered is not None:
            if await undelivered() == 0:
                return True
        elif not any((await summed(urls, "remediator_outbox_pending{")).values()):
            return True
        await asyncio.sleep(0.1)
    return False


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000


def daemon_config(
    workdir: Path, state: dict[str, Any], pagerduty_url: str, slack_url: str
) -> dict[str, Any]:
    (workdir / "pb").mkdir(exist_ok=True)
    (workdir / "pb" / "bench_playbook.py").write_text(PLAYBOOK)
    return {
        "builtin_playbooks": False,
        "playbook_dirs": [str(workdir / "pb")],
        "state": state,
        "webhook": {"auth": {"bearer_token": TOKEN}},
        "logging": {"level": "warning", "format": "json"},
        # The blast is a storm: the breaker's page and its Slack message are part of the
        # figures. Shadow mode does not page; this asks it to, so the page is counted.
        "escalation": {
            "pagerduty": {"routing_key": PD_KEY, "events_url": pagerduty_url},
            "page_in_shadow": True,
        },
        "reports": {
            "slack": {"channel": SLACK_CHANNEL, "token": SLACK_TOKEN, "base_url": slack_url}
        },
    }


# The reference servers, in the order they run: each does a little more of what the daemon does.
REFERENCES = (
    ("bare endpoint", BARE_SERVER),
    ("validation only", VALIDATE_ONLY_SERVER),
    ("validated, durable", DURABLE_ONLY_SERVER),
)


def start_references(workdir: Path, ports: list[int]) -> list[subprocess.Popen[bytes]]:
    root = str(Path(__file__).resolve().parents[1])
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([root, os.environ.get("PYTHONPATH", "")])}
    return [
        subprocess.Popen(
            [sys.executable, "-c", code, str(port), str(workdir / "durable-only.log")], env=env
        )
        for (_, code), port in zip(REFERENCES, ports, strict=True)
    ]


def stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@dataclass(frozen=True)
class Phase:
    """One daemon configuration the same workload is sent to."""

    key: str
    label: str
    postgres: bool
    replicas: int


PHASES = (
    Phase("sqlite", "SQLite", postgres=False, replicas=1),
    Phase("pg1", "PostgreSQL, 1 replica", postgres=True, replicas=1),
    Phase("pg2", "PostgreSQL, 2 replicas", postgres=True, replicas=2),
)

# PostgreSQL as durable as the SQLite run (`synchronous: full`): a 2xx means the commit is on
# disk. The kit's defaults trade that away for test speed.
DURABLE_POSTGRES = {"fsync": "on", "synchronous_commit": "on", "full_page_writes": "on"}
COUNTS = {
    "episodes": "SELECT count(*) FROM episodes",
    "dup_runs": "SELECT count(*) FROM (SELECT episode_id FROM runs GROUP BY episode_id, playbook "
    "HAVING count(*) > 1) AS dups",
    "notifications": "SELECT count(*) FROM notifications",
    "storms": "SELECT count(*) FROM breaker",
    "runs": "SELECT count(*) FROM runs",
    "undelivered": "SELECT count(*) FROM outbox WHERE delivered_at IS NULL AND dead_at IS NULL",
}


@dataclass
class Result:
    phase: Phase
    blast: Blast
    drain_secs: float
    paced_lat: list[float]
    paced_err: int
    paced_drain: float
    rss_points: list[tuple[int, float]]
    rss_end: list[float]
    batches: dict[str, float]
    pages: int
    slack_posts: int
    slack_updates: int
    delivered: bool
    held: float
    server_paced: dict[str, float]  # the daemon's own latency buckets over the paced phase
    counts: dict[str, int] = field(default_factory=dict)


async def run_phase(
    phase: Phase,
    workdir: Path,
    workload: Workload,
    paced_bodies: list[bytes],
    args: argparse.Namespace,
    pagerduty: FakePagerDuty,
    slack: FakeSlack,
    postgres: PostgresServer | None,
) -> Result:
    """Start the phase's replicas, blast them, let them drain, pace them; stop them by PID."""
    phase_dir = workdir / phase.key
    phase_dir.mkdir()
    pg_pids: list[int] = []
    if phase.postgres:
        assert postgres is not None
        password = secrets.token_urlsafe(12)
        await asyncio.to_thread(postgres.create_role, phase.key, password)
        await asyncio.to_thread(postgres.create_database, phase.key, phase.key)
        dsn = postgres.dsn(phase.key, password, phase.key)
        state: dict[str, Any] = {"backend": "postgres", "dsn": dsn}
        pg_pids = [postgres.pid]

        async def count(sql: str) -> int:
            conn = await asyncpg.connect(dsn)
            try:
                return int(await conn.fetchval(sql))
            finally:
                await conn.close()

        async def journal() -> int:
            return await count("SELECT count(*) FROM intake_journal")

        async def outbox() -> int:
            return await count(COUNTS["undelivered"])

        check: Journal | None = journal
        undelivered: Journal | None = outbox
    else:
        state = {"path": str(phase_dir / "state.db"), "synchronous": "full"}
        check = undelivered = None
    config = daemon_config(phase_dir, state, pagerduty.url, slack.api_url)
    pages0 = len([e for e in pagerduty.events if e.get("event_action") == "trigger"])
    posts0, updates0 = len(slack.messages), len(slack.interactive.updates)
    group = Replicas(config, count=phase.replicas, workdir=phase_dir, stop_timeout=20)
    await group.start()
    try:
        urls = [f"{m.url}/webhook" for m in group]
        metric_urls = [f"{m.url}/metrics" for m in group]
        first = group[0].pid
        rss_points: list[tuple[int, float]] = [(0, rss_mib(first))]
        marks = {args.distinct * k // 10 for k in range(1, 11)}

        def sample(i: int) -> None:
            made = workload.distinct_after[i]
            if made in marks:
                marks.discard(made)
                rss_points.append((made, rss_mib(first)))

        pids = [m.pid for m in group] + pg_pids
        ours = await measured_blast(urls, pids, workload.bodies, args.concurrency, sample)
        # Acknowledged is journaled; the episodes, decisions and dispatch come after.
        drain_secs = await drain(metric_urls, check)
        rss_points.append((workload.distinct, rss_mib(first)))
        batches = await summed(metric_urls, "remediator_")
        latency0 = await summed(metric_urls, "remediator_webhook_latency_seconds_bucket")
        latency0.update(await summed(metric_urls, "remediator_intake_batch_seconds_bucket"))
        paced_lat, paced_err = await paced(urls, paced_bodies, args.rate)
        latency1 = await summed(metric_urls, "remediator_webhook_latency_seconds_bucket")
        latency1.update(await summed(metric_urls, "remediator_intake_batch_seconds_bucket"))
        server_paced = {k: latency1[k] - latency0.get(k, 0.0) for k in latency1}
        paced_drain = await drain(metric_urls, check)
        rss_end = [rss_mib(m.pid) for m in group]
        delivered = await outbox_empty(metric_urls, undelivered)
        held = (await summed(metric_urls, "remediator_storm_held_alerts_total")).get(
            "remediator_storm_held_alerts_total", 0.0
        )
    finally:
        await group.stop()
    counts: dict[str, int] = {}
    if phase.postgres:
        conn = await asyncpg.connect(dsn)
        try:
            for name, sql in COUNTS.items():
                counts[name] = int(await conn.fetchval(sql))
        finally:
            await conn.close()
    else:
        with sqlite3.connect(phase_dir / "state.db") as db:
            for name, sql in COUNTS.items():
                counts[name] = int(db.execute(sql).fetchone()[0])
    pages = len([e for e in pagerduty.events if e.get("event_action") == "trigger"]) - pages0
    return Result(
        phase,
        ours,
        drain_secs,
        paced_lat,
        paced_err,
        paced_drain,
        rss_points,
        rss_end,
        batches,
        pages,
        len(slack.messages) - posts0,
        len(slack.interactive.updates) - updates0,
        delivered,
        held,
        server_paced,
        counts,
    )


def report(result: Result, n: int, expected: int, sent: int, args: argparse.Namespace) -> bool:
    """Print one phase's figures; whether its checks passed."""
    ours, counts, label = result.blast, result.counts, result.phase.label
    per_alert = PER_NOTIFICATION
    print(f"\n== {label}")
    print(
        f"digested and dispatched {result.drain_secs:.1f} s after the last acknowledgement: "
        f"{n / (ours.seconds + result.drain_secs):.0f} notifications/s end to end "
        f"({n * per_alert / (ours.seconds + result.drain_secs):.0f} alerts/s)"
    )
    storms = counts["storms"]
    per_storm = max(storms, 1)
    print(
        f"storm: breaker opened {storms} time(s); {result.held:.0f} alerts held without a run "
        f"({counts['runs']} runs in all); pages sent {result.pages} "
        f"({result.pages / per_storm:.0f} per storm); Slack messages {result.slack_posts} "
        f"posted + {result.slack_updates} updates "
        f"({(result.slack_posts + result.slack_updates) / per_storm:.0f} per storm)"
        + (
            ""
            if result.delivered
            else f"; the outbox had not delivered everything ({counts['undelivered']} "
            "messages undelivered in the record at the end)"
        )
    )
    print(
        f"ack latency, {args.concurrency} connections flat out: "
        f"p50 {pct(ours.latencies, 0.5):.1f} ms, p99 {pct(ours.latencies, 0.99):.1f} ms"
    )
    print(
        f"ack latency at {args.rate:.0f}/s: p50 {pct(result.paced_lat, 0.5):.1f} ms, "
        f"p99 {pct(result.paced_lat, 0.99):.1f} ms, errors {result.paced_err}   (target p99 < "
        f"25 ms); drained {result.paced_drain:.1f} s after it"
    )
    for metric, what in (
        ("remediator_webhook_latency_seconds", "answers"),
        ("remediator_intake_batch_seconds", "journal commits"),
    ):
        buckets = {
            float(name.split('le="')[1].split('"')[0]): value
            for name, value in result.server_paced.items()
            if name.startswith(metric + "_bucket")
        }
        if buckets:
            total = buckets.get(float("inf"), 0.0) or 1.0
            within = min((le for le, n in buckets.items() if n >= 0.99 * total), default=0.0)
            print(
                f"  the daemon's own {metric} over that phase: "
                f"{total - buckets.get(0.025, total):.0f} of {total:.0f} {what} took over 25 ms; "
                f"p99 within {within * 1000:g} ms"
            )
    b = result.batches
    count = b.get("remediator_intake_batch_seconds_count", 0.0) or 1.0
    print(
        f"intake batches: {count:.0f}, mean size "
        f"{b.get('remediator_intake_batch_size_sum', 0.0) / count:.1f}, mean time "
        f"{b.get('remediator_intake_batch_seconds_sum', 0.0) / count * 1000:.1f} ms"
    )
    digests = b.get("remediator_digest_batch_seconds_count", 0.0) or 1.0
    print(
        f"digest batches: {digests:.0f}, mean time "
        f"{b.get('remediator_digest_batch_seconds_sum', 0.0) / digests * 1000:.1f} ms"
    )
    print("RSS of the first replica as distinct alerts grow:")
    for made, rss in result.rss_points:
        print(f"  {made:>7} distinct alerts: {rss:6.1f} MiB")
    print("  after the paced phase:  " + ", ".join(f"{rss:6.1f} MiB" for rss in result.rss_end))
    print(f"notifications recorded: {counts['notifications']} (sent {sent})")
    print(
        f"episodes recorded: {counts['episodes']} (distinct alerts sent: {expected})   "
        "(target: equal)"
    )
    print(f"duplicate runs for one (episode, playbook): {counts['dup_runs']}   (target 0)")
    ok = counts["dup_runs"] == 0 and ours.errors == 0 and result.paced_err == 0
    return ok and counts["episodes"] == expected and result.pages == storms


async def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--distinct", type=int, default=100_000)
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--rate", type=float, default=500.0)
    parser.add_argument("--paced-seconds", type=float, default=10.0)
    parser.add_argument(
        "--phases",
        default=",".join(p.key for p in PHASES),
        help="daemon runs, in order: " + ", ".join(f"{p.key} ({p.label})" for p in PHASES),
    )
    args = parser.parse_args()
    phases = [p for key in args.phases.split(",") for p in PHASES if p.key == key.strip()]

    workload = build_workload(args.distinct)
    # The paced phase sends alerts of other workloads, so each one is a new episode.
    paced_load = build_workload(
        int(args.rate * args.paced_seconds * PER_NOTIFICATION * 0.6), seed=11, prefix="p"
    )
    paced_bodies = paced_load.bodies[: int(args.rate * args.paced_seconds)]
    machine = f"{platform.node()} {platform.machine()} cores={os.cpu_count()}"
    print(f"machine: {machine} python={platform.python_version()}")
    print(
        f"workload: {len(workload.bodies)} notifications x {PER_NOTIFICATION} alerts, "
        f"{workload.distinct} distinct alerts; then {len(paced_bodies)} at {args.rate:.0f}/s"
    )

    results: list[Result] = []
    with tempfile.TemporaryDirectory(prefix="remediator-bench-") as tmp:
        pagerduty = FakePagerDuty(routing_key=PD_KEY)
        slack = FakeSlack(SLACK_TOKEN, channels=[SLACK_CHANNEL])
        await pagerduty.start()
        await slack.start()
        workdir = Path(tmp)
        ports = [free_port() for _ in REFERENCES]
        references = await asyncio.to_thread(start_references, workdir, ports)
        postgres: PostgresServer | None = None
        try:
            for port, server in zip(ports, references, strict=True):
                await wait_ready(f"http://127.0.0.1:{port}/", server)
            bare_url = f"http://127.0.0.1:{ports[0]}/webhook"
            reference_runs = []
            for port, server in zip(ports, references, strict=True):
                reference_runs.append(
                    await measured_blast(
                        [f"http://127.0.0.1:{port}/webhook"],
                        [server.pid],
                        workload.bodies,
                        args.concurrency,
                    )
                )
                if server is not references[0]:  # the bare endpoint serves the paced phase too
                    stop(server)
            if any(p.postgres for p in phases):
                # Its own PostgreSQL, started and stopped by PID like every server here.
                postgres = PostgresServer(settings=DURABLE_POSTGRES)
                await asyncio.to_thread(postgres.start)
            for phase in phases:
                results.append(
                    await run_phase(
                        phase, workdir, workload, paced_bodies, args, pagerduty, slack, postgres
                    )
                )
            bare_paced_lat, _ = await paced([bare_url], paced_bodies, args.rate)
        finally:
            for server in references:
                stop(server)
            if postgres is not None:
                await asyncio.to_thread(postgres.stop)
            await pagerduty.stop()
            await slack.stop()

    n = len(workload.bodies)
    bare_tp = n / reference_runs[0].seconds
    durable_tp = n / reference_runs[2].seconds
    expected = workload.distinct + paced_load.distinct_after[len(paced_bodies) - 1]
    print()
    runs = [(name, run) for (name, _), run in zip(REFERENCES, reference_runs, strict=True)]
    runs += [(result.phase.label, result.blast) for result in results]
    for label, run in runs:
        server_us, client_us = run.per_notification_us(n)
        print(
            f"throughput {label + ':':25}{n / run.seconds:7.0f} notifications/s "
            f"(ratio {n / run.seconds / bare_tp:4.2f} of bare, "
            f"{n / run.seconds / durable_tp:4.2f} of durable), errors {run.errors}; "
            f"CPU per notification: server {server_us:4.0f} us, client {client_us:4.0f} us"
        )
    print(
        f"ratio validated, durable / bare: {durable_tp / bare_tp:7.2f}   (validating and writing "
        "to disk before answering, and nothing else, in the same stack)"
    )
    print(
        f"bare endpoint at {args.rate:.0f}/s: p50 {pct(bare_paced_lat, 0.5):.1f} ms, "
        f"p99 {pct(bare_paced_lat, 0.99):.1f} ms"
    )
    ok = True
    for result in results:
        ok = report(result, n, expected, n + len(paced_bodies), args) and ok
    print("\nsummary (acknowledged notifications/s as a ratio of the validated-durable reference)")
    print(
        f"  {'':25}{'ack/s':>8}{'/durable':>10}{'p99@' + str(int(args.rate)):>10}"
        f"{'drain':>9}{'episodes':>10}{'dup runs':>10}"
    )
    for result in results:
        tp = n / result.blast.seconds
        print(
            f"  {result.phase.label:25}{tp:8.0f}{tp / durable_tp:10.2f}"
            f"{pct(result.paced_lat, 0.99):8.1f}ms{result.drain_secs:8.1f}s"
            f"{'ok' if result.counts['episodes'] == expected else 'WRONG':>10}"
            f"{result.counts['dup_runs']:>10}"
        )
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
