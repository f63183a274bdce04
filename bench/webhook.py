"""Webhook intake benchmark: the real daemon against a bare aiohttp endpoint, in one run.

    .venv/bin/python bench/webhook.py [--distinct 100000] [--concurrency 32]

Starts `remediator serve` (shadow mode, fsync on every commit) and three reference servers, each
as its own process on 127.0.0.1: a bare aiohttp endpoint that only reads the body and answers
200; the same plus remediator's payload validation; and the same plus a group-committed
append-and-fdatasync of the body before answering. All get the same pre-built Alertmanager
notifications (20 alerts each: new, re-sent and resolving) from the same client. Prints
throughput (each as a ratio of the bare endpoint's), CPU per notification of each server and
of the client, p50/p99
acknowledgement latency at a fixed 500 notifications/s, the daemon's RSS as distinct alerts
grow, and checks that no episode was created twice. Every process it starts is stopped by PID.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import random
import resource
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import aiohttp

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from remediator_testing.alerts import alert, notification
from remediator_testing.fakes import FakePagerDuty, FakeSlack
from remediator_testing.servers import free_port

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


def own_cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


@dataclass
class Blast:
    seconds: float
    latencies: list[float]
    errors: int
    server_cpu: float  # CPU seconds the server used during the blast
    client_cpu: float  # and this client

    def per_notification_us(self, n: int) -> tuple[float, float]:
        return self.server_cpu / n * 1e6, self.client_cpu / n * 1e6


async def measured_blast(
    url: str, pid: int, bodies: list[bytes], concurrency: int, on_done: Any = None
) -> Blast:
    server0, client0 = cpu_seconds(pid), own_cpu_seconds()
    seconds, latencies, errors = await blast(url, bodies, concurrency, on_done)
    return Blast(
        seconds,
        latencies,
        errors,
        cpu_seconds(pid) - server0,
        own_cpu_seconds() - client0,
    )


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
    url: str, bodies: list[bytes], concurrency: int, on_done: Any = None
) -> tuple[float, list[float], int]:
    """Send every body as fast as `concurrency` connections allow; returns (seconds, latencies)."""
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
                async with session.post(url, data=bodies[i], headers=headers) as resp:
                    await resp.read()
                    if resp.status != 200:
                        errors += 1
                latencies.append(time.perf_counter() - t0)
                if on_done is not None:
                    on_done(i)

        started = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        return time.perf_counter() - started, latencies, errors


async def paced(url: str, bodies: list[bytes], rate: float) -> tuple[list[float], int]:
    """Open-loop load at a fixed rate: latency is measured from the scheduled send time."""
    headers = {"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/json"}
    latencies: list[float] = []
    errors = 0
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=256)) as session:
        start = time.perf_counter()

        async def one(i: int) -> None:
            nonlocal errors
            scheduled = start + i / rate
            await asyncio.sleep(max(0.0, scheduled - time.perf_counter()))
            async with session.post(url, data=bodies[i], headers=headers) as resp:
                await resp.read()
                if resp.status != 200:
                    errors += 1
            latencies.append(time.perf_counter() - scheduled)

        await asyncio.gather(*(one(i) for i in range(len(bodies))))
    return latencies, errors


async def metric(url: str, name: str) -> float:
    async with aiohttp.ClientSession() as session, session.get(url) as resp:
        for line in (await resp.text()).splitlines():
            if line.startswith(name + " "):
                return float(line.split()[1])
    raise RuntimeError(f"{name} not in {url}")


async def drain(url: str, limit: float = 600.0) -> float:
    """Seconds until the daemon has digested its journal and emptied its dispatch queue."""
    started = time.perf_counter()
    while time.perf_counter() - started < limit:
        backlog = await metric(url, "remediator_digest_backlog")
        queued = await metric(url, "remediator_dispatch_queue_depth")
        if backlog == 0 and queued == 0:
            return time.perf_counter() - started
        await asyncio.sleep(0.05)
    raise RuntimeError(f"the daemon did not drain in {limit:.0f} s")


async def outbox_empty(url: str, limit: float = 30.0) -> bool:
    """Whether the daemon delivered its outbox (the storm's page and message) within `limit`."""
    started = time.perf_counter()
    while time.perf_counter() - started < limit:
        async with aiohttp.ClientSession() as session, session.get(url) as resp:
            pending = [
                float(line.split()[-1])
                for line in (await resp.text()).splitlines()
                if line.startswith("remediator_outbox_pending{")
            ]
        if not any(pending):
            return True
        await asyncio.sleep(0.1)
    return False


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000


def start_daemon(
    workdir: Path, port: int, pagerduty_url: str, slack_url: str
) -> subprocess.Popen[bytes]:
    (workdir / "pb").mkdir()
    (workdir / "pb" / "bench_playbook.py").write_text(PLAYBOOK)
    config = {
        "builtin_playbooks": False,
        "playbook_dirs": [str(workdir / "pb")],
        "server": {"port": port},
        "state": {"path": str(workdir / "state.db"), "synchronous": "full"},
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
    (workdir / "config.yml").write_text(json.dumps(config))
    log = open(workdir / "daemon.log", "wb")  # noqa: SIM115 - lives as long as the process
    return subprocess.Popen(
        [sys.executable, "-m", "remediator", "serve", "--config", str(workdir / "config.yml")],
        cwd=workdir,
        stdout=log,
        stderr=log,
    )


# The reference servers, in the order they run: each does a little more of what the daemon does.
REFERENCES = (
    ("bare endpoint", BARE_SERVER),
    ("validation only", VALIDATE_ONLY_SERVER),
    ("validated, durable", DURABLE_ONLY_SERVER),
)


def start_servers(
    workdir: Path, ports: list[int], daemon_port: int, pagerduty_url: str, slack_url: str
) -> tuple[list[subprocess.Popen[bytes]], subprocess.Popen[bytes]]:
    root = str(Path(__file__).resolve().parents[1])
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([root, os.environ.get("PYTHONPATH", "")])}
    references = [
        subprocess.Popen(
            [sys.executable, "-c", code, str(port), str(workdir / "durable-only.log")], env=env
        )
        for (_, code), port in zip(REFERENCES, ports, strict=True)
    ]
    return references, start_daemon(workdir, daemon_port, pagerduty_url, slack_url)


def stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


async def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--distinct", type=int, default=100_000)
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--rate", type=float, default=500.0)
    parser.add_argument("--paced-seconds", type=float, default=10.0)
    args = parser.parse_args()

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

    with tempfile.TemporaryDirectory(prefix="remediator-bench-") as tmp:
        pagerduty = FakePagerDuty(routing_key=PD_KEY)
        slack = FakeSlack(SLACK_TOKEN, channels=[SLACK_CHANNEL])
        await pagerduty.start()
        await slack.start()
        workdir = Path(tmp)
        ports, daemon_port = [free_port() for _ in REFERENCES], free_port()
        references, daemon = await asyncio.to_thread(
            start_servers, workdir, ports, daemon_port, pagerduty.url, slack.api_url
        )
        try:
            for port, server in zip(ports, references, strict=True):
                await wait_ready(f"http://127.0.0.1:{port}/", server)
            await wait_ready(f"http://127.0.0.1:{daemon_port}/healthz", daemon)
            bare_url = f"http://127.0.0.1:{ports[0]}/webhook"
            daemon_url = f"http://127.0.0.1:{daemon_port}/webhook"

            reference_runs = []
            for port, server in zip(ports, references, strict=True):
                reference_runs.append(
                    await measured_blast(
                        f"http://127.0.0.1:{port}/webhook",
                        server.pid,
                        workload.bodies,
                        args.concurrency,
                    )
                )
                if server is not references[0]:  # the bare endpoint serves the paced phase too
                    stop(server)
            rss_points: list[tuple[int, float]] = [(0, rss_mib(daemon.pid))]
            marks = {args.distinct * k // 10 for k in range(1, 11)}

            def sample(i: int) -> None:
                made = workload.distinct_after[i]
                if made in marks:
                    marks.discard(made)
                    rss_points.append((made, rss_mib(daemon.pid)))

            ours = await measured_blast(
                daemon_url, daemon.pid, workload.bodies, args.concurrency, sample
            )
            metrics_url = f"http://127.0.0.1:{daemon_port}/metrics"
            # Acknowledged is journaled; the episodes, decisions and dispatch come after.
            drain_secs = await drain(metrics_url)
            rss_points.append((workload.distinct, rss_mib(daemon.pid)))
            async with aiohttp.ClientSession() as session, session.get(metrics_url) as resp:
                exposition = await resp.text()
            paced_lat, paced_err = await paced(daemon_url, paced_bodies, args.rate)
            paced_drain = await drain(metrics_url)
            bare_paced_lat, _ = await paced(bare_url, paced_bodies, args.rate)
            rss_end = rss_mib(daemon.pid)
            delivered = await outbox_empty(metrics_url)
            held = await metric(metrics_url, "remediator_storm_held_alerts_total")
        finally:
            stop(daemon)
            for server in references:
                stop(server)
            await pagerduty.stop()
            await slack.stop()

        with sqlite3.connect(workdir / "state.db") as db:
            episodes = db.execute("SELECT count(*) FROM episodes").fetchone()[0]
            dup_runs = db.execute(
                "SELECT count(*) FROM (SELECT episode_id FROM runs GROUP BY episode_id, playbook "
                "HAVING count(*) > 1)"
            ).fetchone()[0]
            notes = db.execute("SELECT count(*) FROM notifications").fetchone()[0]
            storms = db.execute("SELECT count(*) FROM breaker").fetchone()[0]
            runs = db.execute("SELECT count(*) FROM runs").fetchone()[0]

    n = len(workload.bodies)
    bare_tp = n / reference_runs[0].seconds
    ours_tp = n / ours.seconds
    ours_secs, ours_lat = ours.seconds, ours.latencies
    expected = workload.distinct + paced_load.distinct_after[len(paced_bodies) - 1]
    per_alert = PER_NOTIFICATION
    print()
    labels = [name for name, _ in REFERENCES] + ["remediator"]
    for label, run in zip(labels, [*reference_runs, ours], strict=True):
        server_us, client_us = run.per_notification_us(n)
        print(
            f"throughput {label + ':':20}{n / run.seconds:7.0f} notifications/s "
            f"(ratio {bare_tp and n / run.seconds / bare_tp:4.2f}), errors {run.errors}; "
            f"CPU per notification: server {server_us:4.0f} us, client {client_us:4.0f} us"
        )
    print(f"  ({ours_tp * per_alert:.0f} alerts/s recorded durably, fsync per group commit)")
    print(f"ratio remediator / bare:  {ours_tp / bare_tp:7.2f}   (target >= 0.5)")
    durable_tp = n / reference_runs[2].seconds
    print(
        f"ratio validated, durable / bare: {durable_tp / bare_tp:7.2f}   (validating and writing "
        "to disk before answering, and nothing else, in the same stack)"
    )
    print(
        f"digested and dispatched {drain_secs:.1f} s after the last acknowledgement: "
        f"{n / (ours_secs + drain_secs):.0f} notifications/s end to end "
        f"({n * per_alert / (ours_secs + drain_secs):.0f} alerts/s)"
    )
    triggers = [e for e in pagerduty.events if e.get("event_action") == "trigger"]
    updates = len(slack.interactive.updates)
    per_storm = max(storms, 1)
    print(
        f"storm: breaker opened {storms} time(s); {held:.0f} alerts held without a run "
        f"({runs} runs in all); pages sent {len(triggers)} ({len(triggers) / per_storm:.0f} per "
        f"storm); Slack messages {len(slack.messages)} posted + {updates} updates "
        f"({(len(slack.messages) + updates) / per_storm:.0f} per storm)"
        + ("" if delivered else "; the outbox had not delivered everything")
    )
    print(
        f"ack latency, {args.concurrency} connections flat out: "
        f"p50 {pct(ours_lat, 0.5):.1f} ms, p99 {pct(ours_lat, 0.99):.1f} ms"
    )
    print(
        f"ack latency at {args.rate:.0f}/s: p50 {pct(paced_lat, 0.5):.1f} ms, "
        f"p99 {pct(paced_lat, 0.99):.1f} ms, errors {paced_err}   (target p99 < 25 ms); "
        f"bare: p50 {pct(bare_paced_lat, 0.5):.1f} ms, p99 {pct(bare_paced_lat, 0.99):.1f} ms; "
        f"drained {paced_drain:.1f} s after it"
    )
    batches = {
        line.split()[0]: float(line.split()[1])
        for line in exposition.splitlines()
        if line.startswith(("remediator_intake_batch_", "remediator_digest_batch_"))
    }
    count = batches.get("remediator_intake_batch_seconds_count", 0.0) or 1.0
    print(
        f"intake batches: {count:.0f}, mean size "
        f"{batches.get('remediator_intake_batch_size_sum', 0.0) / count:.1f}, mean time "
        f"{batches.get('remediator_intake_batch_seconds_sum', 0.0) / count * 1000:.1f} ms"
    )
    print("RSS as distinct alerts grow:")
    for made, rss in rss_points:
        print(f"  {made:>7} distinct alerts: {rss:6.1f} MiB")
    print(f"  after the paced phase:  {rss_end:6.1f} MiB")
    digests = batches.get("remediator_digest_batch_seconds_count", 0.0) or 1.0
    print(
        f"digest batches: {digests:.0f}, mean time "
        f"{batches.get('remediator_digest_batch_seconds_sum', 0.0) / digests * 1000:.1f} ms"
    )
    print(f"notifications recorded: {notes} (sent {n + len(paced_bodies)})")
    print(f"episodes recorded: {episodes} (distinct alerts sent: {expected})   (target: equal)")
    print(f"duplicate runs for one (episode, playbook): {dup_runs}   (target 0)")
    ok = dup_runs == 0 and ours.errors == 0 and paced_err == 0 and episodes == expected
    ok = ok and len(triggers) == storms
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
