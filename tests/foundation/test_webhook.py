"""The webhook against the Alertmanager contract (DESIGN.md section 2)."""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from remediator.alertmanager import validate_notification
from remediator.http.auth import Credentials
from remediator.playbook import Action, Registry, playbook, targets
from remediator.store import StoreUnavailable
from remediator.store.records import IncomingNotification
from remediator.store.sqlite import SQLiteStore
from remediator_testing.alerts import alert, notification
from tests.conftest import BOTH_BACKENDS, MakeDaemon
from tests.kubernetes.helpers import until

LAG = {
    "alertname": "KafkaLagHigh",
    "namespace": "shop",
    "deployment": "orders",
    "severity": "warning",
}


def lag_registry(calls: list[str]) -> Registry:
    registry = Registry()

    @playbook(match='alertname="KafkaLagHigh"', target=targets.deployment(), registry=registry)
    async def scale(*, run: Any, target: Any, **_: Any) -> None:
        async def call() -> str:
            calls.append(target.key)
            return "ok"

        await run.act(Action("patch", "deployments/scale", target, "scale up", {"n": 1}), call)

    return registry


@BOTH_BACKENDS
async def test_firing_resend_and_resolve_create_one_episode(make_daemon: MakeDaemon) -> None:
    calls: list[str] = []
    daemon = await make_daemon(lag_registry(calls), config={"mode": "auto"})
    firing = notification([alert(LAG)])
    status, answer = await daemon.post(firing)
    assert status == 200 and answer["status"] == "recorded"
    # repeat_interval re-send, an HA peer and a retry: no new work.
    for _ in range(3):
        status, _ = await daemon.post(firing)
        assert status == 200
    await daemon.settle()
    resolved = notification([alert(LAG, status="resolved")])
    status, _ = await daemon.post(resolved)
    assert status == 200
    await daemon.settle()
    opened = daemon.engine.metrics.episodes_opened._value.get()  # type: ignore[attr-defined]
    closed = daemon.engine.metrics.episodes_closed._value.get()  # type: ignore[attr-defined]
    assert (opened, closed) == (1, 1)
    assert calls == ["Deployment/shop/orders"]
    episodes = await daemon.engine.store.list_episodes()
    assert len(episodes) == 1
    episode = episodes[0]
    # Every notification is counted, although re-sends within a minute are not written to
    # the episode's row one by one.
    assert episode.status == "resolved" and episode.notifications == 5
    assert episode.resolved_at is not None
    kinds = [d.kind for d in await daemon.engine.store.decisions_for(episode.id)]
    assert kinds == ["matched", "acted", "resolved"]


@BOTH_BACKENDS
async def test_new_starts_at_is_a_new_episode(make_daemon: MakeDaemon) -> None:
    calls: list[str] = []
    daemon = await make_daemon(lag_registry(calls), config={"mode": "auto"})
    first = datetime(2026, 11, 22, 3, 0, tzinfo=UTC)
    await daemon.post(notification([alert(LAG, starts_at=first)]))
    await daemon.post(notification([alert(LAG, starts_at=first, status="resolved")]))
    await daemon.post(notification([alert(LAG, starts_at=first + timedelta(hours=1))]))
    await daemon.settle()
    assert len(await daemon.engine.store.list_episodes()) == 2
    assert len(calls) == 2


@BOTH_BACKENDS
async def test_mixed_group_acts_on_each_alerts_own_status(make_daemon: MakeDaemon) -> None:
    calls: list[str] = []
    daemon = await make_daemon(lag_registry(calls), config={"mode": "auto"})
    other = {**LAG, "deployment": "billing"}
    # The group says "firing", but the orders alert inside it is resolved: never act on it.
    payload = notification([alert(LAG, status="resolved"), alert(other)])
    assert payload["status"] == "firing"
    status, _ = await daemon.post(payload)
    assert status == 200
    await daemon.settle()
    assert calls == ["Deployment/shop/billing"]
    statuses = {e.labels["deployment"]: e.status for e in await daemon.engine.store.list_episodes()}
    assert statuses == {"orders": "resolved", "billing": "firing"}


@BOTH_BACKENDS
async def test_truncated_alerts_are_recorded(make_daemon: MakeDaemon) -> None:
    daemon = await make_daemon(lag_registry([]))
    status, answer = await daemon.post(notification([alert(LAG)], truncated=7))
    assert status == 200 and answer["truncated_alerts"] == 7
    await daemon.settle()
    episode = (await daemon.engine.store.list_episodes())[0]
    assert episode.truncated


async def test_unknown_fields_are_accepted_and_root_path_works(make_daemon: MakeDaemon) -> None:
    daemon = await make_daemon(lag_registry([]))
    payload = notification([{**alert(LAG), "silencedBy": []}], notification_reason="repeat")
    status, _ = await daemon.post(payload, path="/")
    assert status == 200


@BOTH_BACKENDS
async def test_shadow_mode_is_the_default_and_changes_nothing(make_daemon: MakeDaemon) -> None:
    calls: list[str] = []
    daemon = await make_daemon(lag_registry(calls))
    await daemon.post(notification([alert(LAG)]))
    await daemon.settle()
    assert calls == []
    episode = (await daemon.engine.store.list_episodes())[0]
    actions = await daemon.engine.store.actions_for(episode.id)
    assert [(a.state, a.body) for a in actions] == [("would", {"n": 1})]
    runs = await daemon.engine.store.runs_for(episode.id)
    assert [r.state for r in runs] == ["shadow"]


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        (None, 401),
        ("Bearer wrong", 401),
        ("Bearer test-token", 200),
        ("bearer test-token", 200),
        ("Basic " + base64.b64encode(b"am:secret").decode(), 200),
        ("Basic " + base64.b64encode(b"am:wrong").decode(), 401),
        ("Basic " + base64.b64encode(b"other:secret").decode(), 401),
        ("Basic !!!not-base64", 401),
        ("Digest x", 401),
    ],
)
async def test_auth(make_daemon: MakeDaemon, header: str | None, expected: int) -> None:
    creds = Credentials(bearer="test-token", basic=("am", "secret"))
    daemon = await make_daemon(lag_registry([]), credentials=creds)
    headers = {"Authorization": header} if header else {}
    resp = await daemon.client.post("/webhook", json=notification([alert(LAG)]), headers=headers)
    assert resp.status == expected
    await daemon.settle()
    assert len(await daemon.engine.store.list_episodes()) == (1 if expected == 200 else 0)


async def test_auth_disabled_only_explicitly(make_daemon: MakeDaemon) -> None:
    daemon = await make_daemon(lag_registry([]), credentials=Credentials(disabled=True))
    status, _ = await daemon.post(notification([alert(LAG)]), token=None)
    assert status == 200


def _deep(n: int) -> bytes:
    return b'{"version":"4","status":"firing","alerts":' + b"[" * n + b"]" * n + b"}"


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        (b"not json", 400),
        (b"", 400),
        (b"\xff\xfe\x00garbage", 400),
        (_deep(100_000), 400),
        (b"[]", 422),
        (b'{"version":"3","status":"firing","alerts":[]}', 422),
        (json.dumps({**notification([alert(LAG)]), "alerts": "nope"}).encode(), 422),
        (json.dumps({**notification([alert(LAG)]), "truncatedAlerts": -1}).encode(), 422),
        (json.dumps(notification([{**alert(LAG), "status": "pending"}])).encode(), 422),
        (json.dumps(notification([{**alert(LAG), "labels": {"a": 1}}])).encode(), 422),
        (json.dumps(notification([{**alert(LAG), "startsAt": "yesterday"}])).encode(), 422),
        (json.dumps(notification([alert({**LAG, "bad-name": "x"})])).encode(), 422),
        (json.dumps(notification([alert({**LAG, "big": "x" * 5000})])).encode(), 422),
        (json.dumps(notification([alert({f"l{i}": "v" for i in range(200)})])).encode(), 422),
    ],
)
async def test_bad_input_gets_a_clear_4xx_and_loses_nothing(
    make_daemon: MakeDaemon, data: bytes, expected: int
) -> None:
    daemon = await make_daemon(lag_registry([]))
    status, _ = await daemon.post(notification([alert(LAG)]))
    assert status == 200
    status, answer = await daemon.post(data)
    assert status == expected, answer
    assert answer["error"]
    if expected == 422:
        assert answer["details"], "a 422 says what is wrong"
    # The earlier notification is still there, and the daemon still takes new ones.
    status, _ = await daemon.post(notification([alert({**LAG, "deployment": "after"})]))
    assert status == 200
    await daemon.settle()
    assert len(await daemon.engine.store.list_episodes()) == 2


async def test_body_over_the_limit_is_413(make_daemon: MakeDaemon) -> None:
    daemon = await make_daemon(lag_registry([]), config={"server": {"max_body_bytes": 4096}})
    many = notification([alert({**LAG, "deployment": f"d{i}"}) for i in range(40)])
    status, answer = await daemon.post(many)
    assert status == 413 and "4096" in answer["error"]

    # Without Content-Length (chunked), the limit holds while reading.
    async def chunks() -> Any:
        data = json.dumps(many).encode()
        for i in range(0, len(data), 1000):
            yield data[i : i + 1000]

    resp = await daemon.client.post(
        "/webhook", data=chunks(), headers={"Authorization": "Bearer test-token"}
    )
    assert resp.status == 413


async def test_journal_unavailable_is_503_and_recovers(make_daemon: MakeDaemon) -> None:
    import os

    daemon = await make_daemon(lag_registry([]))
    await daemon.post(notification([alert(LAG)]))
    await daemon.settle()
    journal = daemon.engine.store.journal_file  # type: ignore[attr-defined]
    # The disk refuses the journal: its open segment takes no more writes (the descriptor
    # now points at a read-only file) and no new segment can be created (its directory has
    # become a plain file).
    moved = journal.path.with_name("moved-away")
    journal.path.rename(moved)
    journal.path.write_bytes(b"")
    read_only = os.open(os.devnull, os.O_RDONLY)
    os.dup2(read_only, journal._fd)
    os.close(read_only)
    try:
        resp = await daemon.client.post(
            "/webhook",
            json=notification([alert({**LAG, "deployment": "during"})]),
            headers={"Authorization": "Bearer test-token"},
        )
        assert resp.status == 503 and resp.headers["Retry-After"]
        assert "journal" in (await resp.json())["error"]
        ready = await daemon.client.get("/readyz")
        assert ready.status == 503
    finally:
        journal.path.unlink()
        moved.rename(journal.path)
    assert (await daemon.client.get("/readyz")).status == 200
    status, _ = await daemon.post(notification([alert({**LAG, "deployment": "during"})]))
    assert status == 200
    await daemon.settle()
    assert len(await daemon.engine.store.list_episodes()) == 2
    # Only the segment being written is left: the digested ones are gone.
    assert [p.name for p in journal.path.iterdir()] == [f"{3:020d}.seg"]


async def test_decision_record_locked_still_acknowledges_and_catches_up(
    make_daemon: MakeDaemon,
) -> None:
    import sqlite3

    daemon = await make_daemon(lag_registry([]))
    store = daemon.engine.store
    await store.database.connection.execute("PRAGMA busy_timeout = 50")  # type: ignore[attr-defined]
    blocker = sqlite3.connect(daemon.settings.state.path, timeout=0)
    blocker.execute("BEGIN EXCLUSIVE")  # the decision record is locked, the journal is not
    registry = daemon.engine.metrics.registry

    def failures() -> float:
        return registry.get_sample_value("remediator_digest_failures_total") or 0.0

    try:
        status, _ = await daemon.post(notification([alert(LAG)]))
        assert status == 200  # journaled: Alertmanager need not wait for the record
        await until(lambda: failures() >= 2, what="the digester to fail and retry")
        assert daemon.engine.digester.backlog == 1
    finally:
        blocker.rollback()
        blocker.close()
    await daemon.settle()
    assert len(await store.list_episodes()) == 1


async def test_intake_queue_full_is_503(make_daemon: MakeDaemon) -> None:
    from remediator.engine.intake.intake import Intake

    daemon = await make_daemon(lag_registry([]))
    engine = daemon.engine
    await engine.intake.stop()
    # A writer that is not running and a queue of one: the second request finds it full.
    engine.intake = Intake(
        engine.store, engine.digester, engine.metrics, max_pending=1, clock=engine.clock
    )
    import asyncio

    first = asyncio.create_task(daemon.post(notification([alert(LAG)])))
    await until(lambda: engine.intake.queued == 1, what="the first notification queued")
    status, answer = await daemon.post(notification([alert({**LAG, "deployment": "x"})]))
    assert status == 503 and "full" in answer["error"]
    await engine.intake.start()
    status, _ = await first
    assert status == 200


async def test_stopping_mid_write_answers_the_senders_waiting_on_it(
    make_daemon: MakeDaemon,
) -> None:
    import asyncio
    import threading

    daemon = await make_daemon(lag_registry([]))
    engine = daemon.engine
    journal = engine.store.journal_file  # type: ignore[attr-defined]
    gate = threading.Event()
    journal._writer.submit(gate.wait)  # the journal's thread is busy: the next write waits
    body = json.dumps(notification([alert(LAG)])).encode()
    waiting = asyncio.create_task(engine.intake.submit(validate_notification(body), body))
    try:
        # The writer took it into a batch, whose write waits behind the gate.
        await until(lambda: journal._writer._work_queue.qsize() == 1, what="the write queued")
        assert engine.intake.queued == 0 and not waiting.done()
        await engine.intake.stop()
        with pytest.raises(StoreUnavailable, match="stopping"):
            await asyncio.wait_for(waiting, 5)
    finally:
        gate.set()


async def test_a_sender_that_stops_waiting_is_still_recorded(make_daemon: MakeDaemon) -> None:
    """Cancelling one wait (a client that hangs up) loses neither that notification nor the
    others written in the same batch."""
    import asyncio

    from remediator.engine.intake.intake import Intake

    daemon = await make_daemon(lag_registry([]))
    engine = daemon.engine
    await engine.intake.stop()
    # Writers not started.
    engine.intake = Intake(engine.store, engine.digester, engine.metrics, clock=engine.clock)
    bodies = [
        json.dumps(notification([alert({**LAG, "deployment": name})])).encode()
        for name in ("gone", "stays")
    ]
    waits = [
        asyncio.create_task(engine.intake.submit(validate_notification(body), body))
        for body in bodies
    ]
    await until(lambda: engine.intake.queued == 2, what="both notifications queued")
    waits[0].cancel()
    await engine.intake.start()
    assert (await waits[1]).startswith("n-")
    with pytest.raises(asyncio.CancelledError):
        await waits[0]
    await daemon.settle()
    names = sorted(e.labels["deployment"] for e in await engine.store.list_episodes())
    assert names == ["gone", "stays"]


@BOTH_BACKENDS
async def test_health_ready_and_metrics(make_daemon: MakeDaemon) -> None:
    daemon = await make_daemon(lag_registry([]))
    assert (await daemon.client.get("/healthz")).status == 200
    ready = await daemon.client.get("/readyz")
    assert ready.status == 200 and (await ready.json())["playbooks"] == 1
    await daemon.post(notification([alert(LAG)]))
    await daemon.post(b"nope")
    await daemon.settle()
    text = await (await daemon.client.get("/metrics")).text()
    assert 'remediator_notifications_total{result="recorded"} 1.0' in text
    assert 'remediator_notifications_total{result="bad_request"} 1.0' in text
    assert 'remediator_alerts_total{status="firing"} 1.0' in text
    assert "remediator_episodes_opened_total 1.0" in text
    assert 'remediator_playbook_runs_total{outcome="shadow",playbook="scale"} 1.0' in text
    assert "remediator_webhook_latency_seconds_bucket" in text
    assert "remediator_dispatch_queue_depth" in text


async def test_readyz_without_playbooks_is_not_ready(make_daemon: MakeDaemon) -> None:
    daemon = await make_daemon(Registry())
    resp = await daemon.client.get("/readyz")
    assert resp.status == 503
    assert "no playbooks loaded" in (await resp.json())["problems"]


@BOTH_BACKENDS
async def test_backlog_bound_is_503_and_drains(make_daemon: MakeDaemon) -> None:
    daemon = await make_daemon(lag_registry([]), config={"webhook": {"max_backlog": 2}})
    await daemon.engine.digester.stop()  # acknowledged notifications pile up undigested
    for name in ("a", "b"):
        status, _ = await daemon.post(notification([alert({**LAG, "deployment": name})]))
        assert status == 200
    late = notification([alert({**LAG, "deployment": "c"})])
    status, answer = await daemon.post(late)
    assert status == 503 and "waiting to be digested" in answer["error"]
    assert await daemon.engine.store.list_episodes() == []  # journaled, not yet episodes
    await daemon.engine.digester.start()
    await daemon.settle()
    status, _ = await daemon.post(late)  # Alertmanager's retry
    assert status == 200
    await daemon.settle()
    names = sorted(e.labels["deployment"] for e in await daemon.engine.store.list_episodes())
    assert names == ["a", "b", "c"]


async def test_journal_left_undigested_by_a_crash_is_digested_once_on_start(
    make_daemon: MakeDaemon, state_path: Path
) -> None:
    # What a process that died after answering 2xx, before digesting, leaves behind.
    store = SQLiteStore(state_path)
    await store.open()
    firing = json.dumps(notification([alert(LAG)])).encode()
    resolved = json.dumps(notification([alert(LAG, status="resolved")])).encode()
    now = datetime.now(UTC)
    for body in (firing, firing, resolved):
        await store.journal([IncomingNotification(validate_notification(body), body, now)])
    await store.close()

    calls: list[str] = []
    daemon = await make_daemon(lag_registry(calls), config={"mode": "auto"})
    await daemon.settle()
    episodes = await daemon.engine.store.list_episodes()
    assert [(e.status, e.notifications) for e in episodes] == [("resolved", 3)]
    assert await daemon.engine.store.count_undigested() == 0
    # Digested in journal order, and the alert had resolved by then: nothing is done.
    decisions = await daemon.engine.store.decisions_for(episodes[0].id)
    assert [(d.kind, d.reason) for d in decisions][:1] == [
        ("skipped", "resolved before it was dispatched")
    ]
    assert calls == []


async def test_digester_survives_an_unexpected_error(make_daemon: MakeDaemon) -> None:
    daemon = await make_daemon(lag_registry([]))
    digester = daemon.engine.digester
    failures = [RuntimeError("a bug, once")]

    def flaky(_alert: Any) -> bool:
        if failures:
            raise failures.pop()
        return True

    digester._needs_work = flaky  # type: ignore[attr-defined]
    status, _ = await daemon.post(notification([alert(LAG)]))
    assert status == 200
    await daemon.settle()  # retried after the failure, not abandoned
    assert not failures and len(await daemon.engine.store.list_episodes()) == 1
