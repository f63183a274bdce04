"""SIGKILL of the daemon process in the middle of a run, then a restart on the same state.

The daemon runs as `remediator serve` in a subprocess against the emulator; it reports to the
fake Slack and pages the fake PagerDuty. A run cut between two actions (a rolling restart
waiting for a replacement pod) and a change applied whose outcome was never recorded (the
daemon died while the API server answered) are both reconciled on restart: reported,
escalated with what was and was not done, and what follows a finished change is armed.
"""

from __future__ import annotations

import asyncio
import json
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from remediator_testing.alerts import alert, body, notification
from remediator_testing.fakes import FakePagerDuty, FakeSlack
from remediator_testing.kube import KubeEmulator
from remediator_testing.servers import free_port
from tests.kubernetes.helpers import KUBE, START, grant, labels
from tests.kubernetes.test_scale import lag
from tests.reports.helpers import CHANNEL, SLACK_TOKEN, text_of

TOKEN = "hook-token"
ROUTING_KEY = "K" * 32
FAST_DELIVERY = {
    "quick_retries": 1,
    "quick_wait_seconds": 0.05,
    "initial_backoff_seconds": 0.1,
    "max_backoff_seconds": 0.5,
    "jitter_seconds": 0.0,
    "poll_seconds": 0.1,
}


class DaemonProcess:
    """`python -m remediator serve` on a config file; killed by its PID."""

    def __init__(self, workdir: Path, config: dict[str, Any]) -> None:
        self.workdir = workdir
        self.port = free_port()
        self.config_path = workdir / "config.json"
        config = {**config, "server": {"host": "127.0.0.1", "port": self.port}}
        self.config_path.write_text(json.dumps(config))  # JSON is YAML
        self.proc: subprocess.Popen[bytes] | None = None
        self.log_path = workdir / "serve.log"

    def _spawn(self) -> subprocess.Popen[bytes]:
        with open(self.log_path, "ab") as log:
            return subprocess.Popen(
                [sys.executable, "-m", "remediator", "serve", "--config", str(self.config_path)],
                cwd=self.workdir,
                stdout=log,
                stderr=log,
            )

    async def start(self) -> None:
        self.proc = await asyncio.to_thread(self._spawn)
        deadline = time.monotonic() + 30
        async with aiohttp.ClientSession() as session:
            while time.monotonic() < deadline:
                assert self.proc.poll() is None, self.log()
                try:
                    async with session.get(f"http://127.0.0.1:{self.port}/readyz") as resp:
                        if resp.status == 200:
                            return
                except aiohttp.ClientError:
                    pass
                await asyncio.sleep(0.1)
        raise AssertionError(f"the daemon did not get ready\n{self.log()}")

    async def kill(self, sig: int = signal.SIGKILL) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.send_signal(sig)
        await asyncio.to_thread(self.proc.wait, 30)

    async def post(self, payload: dict[str, Any]) -> None:
        async with (
            aiohttp.ClientSession() as session,
            session.post(
                f"http://127.0.0.1:{self.port}/webhook",
                data=body(payload),
                headers={"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/json"},
            ) as resp,
        ):
            assert resp.status == 200, await resp.text()

    def log(self) -> str:
        return self.log_path.read_text() if self.log_path.exists() else ""

    def query(self, sql: str, *params: Any) -> list[tuple[Any, ...]]:
        with sqlite3.connect(self.workdir / "state.db") as db:
            return db.execute(sql, params).fetchall()


@pytest.fixture
async def fakes() -> AsyncIterator[tuple[FakeSlack, FakePagerDuty]]:
    async with (
        FakeSlack(SLACK_TOKEN, channels=[CHANNEL]) as slack,
        FakePagerDuty(routing_key=ROUTING_KEY) as pagerduty,
    ):
        yield slack, pagerduty


@pytest.fixture
async def daemon(
    tmp_path: Path, emu: KubeEmulator, fakes: tuple[FakeSlack, FakePagerDuty]
) -> AsyncIterator[DaemonProcess]:
    slack, pagerduty = fakes
    config = {
        "mode": "auto",
        "state": {"path": str(tmp_path / "state.db")},
        "webhook": {"auth": {"bearer_token": TOKEN}},
        # A request stays unanswered while the daemon is killed; no client-side retry first.
        # As the shipped service account (RBAC mode), like every Kubernetes test.
        "kubernetes": {
            "mode": "url",
            "url": emu.url,
            "token_file": str(grant(emu, tmp_path)),
            **KUBE,
            "request_timeout_seconds": 30.0,
        },
        "guards": {"blast_radius": {"max_pods_per_episode": 3}},
        "playbooks": {
            "statefulset-rolling-restart": {"params": {"pod_ready_deadline_seconds": 120}},
            "scale-on-lag": {"params": {"partitions": 12, "cooldown_seconds": 0}},
        },
        "escalation": {
            "pagerduty": {"routing_key": ROUTING_KEY, "events_url": pagerduty.url},
            "delivery": FAST_DELIVERY,
        },
        "reports": {"slack": {"channel": CHANNEL, "token": SLACK_TOKEN, "base_url": slack.api_url}},
    }
    process = DaemonProcess(tmp_path, config)
    try:
        yield process
    finally:
        await process.kill()


async def until(what: str, check: Callable[[], Any], daemon: DaemonProcess) -> Any:
    """Poll `check` until it returns something true (30 s at most, then the daemon's log)."""
    deadline = time.monotonic() + 30
    while True:
        found = check()
        if found:
            return found
        assert time.monotonic() < deadline, f"timed out waiting for {what}\n{daemon.log()[-4000:]}"
        await asyncio.sleep(0.05)


def ready(emu: KubeEmulator, selector: str) -> list[str]:
    return sorted(
        p["metadata"]["name"]
        for p in emu.pods("shop", selector)
        if any(
            c["type"] == "Ready" and c["status"] == "True"
            for c in p["status"].get("conditions") or []
        )
    )


def uids(emu: KubeEmulator) -> dict[str, str]:
    return {p["metadata"]["name"]: p["metadata"]["uid"] for p in emu.pods("shop", "app=redis")}


async def test_a_rolling_restart_cut_between_two_pods_is_reported_and_escalated(
    emu: KubeEmulator, daemon: DaemonProcess, fakes: tuple[FakeSlack, FakePagerDuty]
) -> None:
    slack, pagerduty = fakes
    emu.add_statefulset("shop", "redis", replicas=3, image="redis:7")
    await emu.wait_for(lambda: len(ready(emu, "app=redis")) == 3, what="3 ready redis pods")
    await daemon.start()
    # The cache breaks: no replacement pod will become Ready.
    emu.set_template_health("shop", "redis", image="redis:7", healthy=False)
    before = uids(emu)
    firing = alert(labels("RedisCacheDown", statefulset="redis"), starts_at=START)
    await daemon.post(notification([firing]))
    await until(
        "the first eviction's outcome",
        lambda: daemon.query("SELECT 1 FROM actions WHERE state = 'succeeded'"),
        daemon,
    )
    await daemon.kill()  # waiting for the first replacement to become Ready

    await daemon.start()

    [event] = await pagerduty.wait_for(1, within=30)
    [(episode_id, run_id, state, error)] = daemon.query(
        "SELECT episode_id, id, state, error FROM runs"
    )
    assert (event["event_action"], event["dedup_key"]) == ("trigger", episode_id)
    summary = event["payload"]["summary"]
    assert "interrupted by a restart" in summary and "statefulset-rolling-restart" in summary
    assert state == "interrupted"
    assert error == (
        f"statefulset-rolling-restart on StatefulSet/shop/redis (run {run_id}) was cut by a "
        "restart: done: evict pod shop/redis-2 of StatefulSet/shop/redis; not done: redis-1, "
        "redis-0; its verification is scheduled"
    )
    [(reason,)] = daemon.query("SELECT reason FROM escalations")
    assert reason == f"interrupted by a restart: {error}"

    # The episode's Slack thread says it too.
    def interrupted_report() -> list[str]:
        return [t for t in (text_of(m) for m in slack.messages) if "Interrupted by a restart" in t]

    [report] = await until("the Slack report", interrupted_report, daemon)
    assert "evict pod shop/redis-2" in report and "redis-1" in report
    # Nothing was re-run: the two other pods are the ones from before.
    after = uids(emu)
    assert after["redis-1"] == before["redis-1"] and after["redis-0"] == before["redis-0"]
    assert daemon.query("SELECT count(*) FROM actions") == [(1,)]


async def test_a_scale_up_applied_before_the_kill_is_scaled_back_after_the_resolve(
    emu: KubeEmulator, daemon: DaemonProcess, fakes: tuple[FakeSlack, FakePagerDuty]
) -> None:
    _, pagerduty = fakes
    emu.add_deployment("shop", "consumer", replicas=3)
    await emu.wait_rolled_out("shop", "consumer")
    # The API server applies the PATCH and answers only after a minute: the daemon dies first.
    emu.faults.add(
        path_regex="/deployments/consumer/scale$", method="PATCH", answer_after_s=60, times=1
    )
    await daemon.start()
    firing = alert(lag(), starts_at=START)
    await daemon.post(notification([firing]))

    def replicas() -> int:
        return int(emu.get("apps/v1", "deployments", "shop", "consumer")["spec"]["replicas"])

    await until("the scale-up to apply", lambda: replicas() == 5, daemon)
    await daemon.kill()
    emu.faults.clear()

    await daemon.start()

    [event] = await pagerduty.wait_for(1, within=30)
    summary = event["payload"]["summary"]
    assert "found applied: scale Deployment/shop/consumer from 3 to 5 replicas" in summary
    assert "its revert is armed" in summary and "its verification is scheduled" in summary
    assert daemon.query("SELECT state FROM runs") == [("interrupted",)]
    assert daemon.query("SELECT state FROM actions") == [("interrupted",)]
    assert sorted(daemon.query("SELECT kind, state FROM timers")) == [
        ("revert", "waiting"),
        ("verify", "waiting"),
    ]

    # The alert resolves: the scale-back armed by the reconciliation returns to 3.
    await daemon.post(notification([alert(lag(), status="resolved", starts_at=START)]))
    await until("the scale-back", lambda: replicas() == 3, daemon)
    await until(
        "the revert's decision",
        lambda: daemon.query("SELECT reason FROM decisions WHERE kind = 'reverted'"),
        daemon,
    )
    [(reason,)] = daemon.query("SELECT reason FROM decisions WHERE kind = 'reverted'")
    assert reason == (
        "reverted after the alert resolved: scale Deployment/shop/consumer from 5 to 3 replicas"
    )
