"""End to end: alert -> pending approval -> approve through the admin API -> action -> the
report in Slack's thread; and the CLI against the same running app."""

from __future__ import annotations

import asyncio
import json
from functools import partial
from typing import Any

import pytest

from remediator.cli import main
from remediator_testing.fakes import FakeSlack
from tests.admin.helpers import OPERATOR, READ, admin_config, call
from tests.conftest import MakeDaemon
from tests.governance.helpers import World, eventually, firing, labels, post_and_settle
from tests.reports.helpers import CHANNEL, SLACK_TOKEN, reporting, scaling, text_of


@pytest.fixture
async def slack() -> Any:
    async with FakeSlack(SLACK_TOKEN, channels=[CHANNEL]) as fake:
        yield fake


async def test_alert_pending_approve_action_report(
    make_daemon: MakeDaemon, slack: FakeSlack
) -> None:
    world = World()
    config = {**reporting(slack, mode="approve"), **admin_config()}
    daemon = await make_daemon(scaling(world), config=config)
    await post_and_settle(daemon, firing(labels("orders")))
    _, pending = await call(daemon, "GET", "/admin/approvals", token=READ)
    [approval] = pending["approvals"]
    assert world.calls == []
    await slack.wait_for(2)
    assert "Waiting for approval" in text_of(slack.messages[1])
    status, answer = await call(
        daemon,
        "POST",
        f"/admin/approvals/{approval['run_id']}/approve",
        json={"reason": "lag is real, go"},
    )
    assert status == 200 and answer["state"] == "acted"
    assert world.calls == [("scale", "Deployment/shop/orders")]
    await slack.wait_for(3)
    head_ts = slack.posted[0][0]
    acted = slack.messages[2]
    assert acted["thread_ts"] == head_ts
    assert "Acted" in text_of(acted) and "replicas 3 → 5" in text_of(acted)
    assert "approved by alice: lag is real, go" in text_of(acted)
    status, again = await call(
        daemon, "POST", f"/admin/approvals/{approval['run_id']}/deny", json={"reason": "late"}
    )
    assert status == 409 and "already approved" in again["error"]
    # Re-send: the episode's reports are queued again and land in the same thread.
    status, answer = await call(
        daemon,
        "POST",
        f"/admin/episodes/{approval['episode_id']}/resend-report",
        json={"reason": "lost"},
    )
    assert status == 200 and answer["queued"] == 1
    await slack.wait_for(4)
    assert slack.messages[3]["thread_ts"] == head_ts and "re-sent" in text_of(slack.messages[3])
    _, detail = await call(daemon, "GET", f"/admin/episodes/{approval['episode_id']}")
    kinds = [r["kind"] for r in detail["reports"]]
    assert kinds.count("report") == 3
    await eventually(lambda: _all_delivered(daemon))


async def _all_delivered(daemon: Any) -> bool:
    return await daemon.engine.store.outbox_pending() == {}


async def _cli(url: str, *argv: str, capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    code = await asyncio.to_thread(partial(main, ["admin", "--url", url, *argv]))
    out, err = capsys.readouterr()
    return code, out, err


async def test_cli_subcommands(
    make_daemon: MakeDaemon, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    world = World()
    daemon = await make_daemon(scaling(world), config={**admin_config(), "mode": "approve"})
    url = str(daemon.client.make_url("/")).rstrip("/")
    cli = partial(_cli, url, capsys=capsys)
    monkeypatch.setenv("REMEDIATOR_ADMIN_TOKEN", READ)
    code, out, _ = await cli("status")
    assert code == 0 and "mode: approve" in out and "breaker: closed" in out
    code, _, err = await cli("pause", "global", "--reason", "maintenance")
    assert code == 1 and "read-only" in err
    monkeypatch.setenv("REMEDIATOR_ADMIN_TOKEN", OPERATOR)
    code, out, _ = await cli("--json", "pause", "global", "--reason", "maintenance")
    assert code == 0
    switch = json.loads(out)["id"]
    code, out, _ = await cli("resume", str(switch), "--reason", "done")
    assert code == 0 and '"lifted_by": "alice"' in out
    await post_and_settle(daemon, firing(labels("orders")))
    code, out, _ = await cli("episodes", "--state", "firing")
    assert code == 0 and "KafkaLagHigh" in out and "shop" in out
    code, out, _ = await cli("--json", "approvals")
    [approval] = json.loads(out)["approvals"]
    code, out, _ = await cli("approve", str(approval["run_id"]), "-r", "ok")
    assert code == 0 and '"state": "acted"' in out and world.calls
    code, out, _ = await cli(
        "run", "scale", "-l", "namespace=shop", "-l", "deployment=api", "-r", "try"
    )
    assert code == 0 and '"state": "shadow"' in out and '"dry_run": true' in out
    code, _, err = await cli("run", "nope", "-l", "namespace=shop", "-r", "try")
    assert code == 1 and "no playbook named 'nope'" in err
    code, _, err = await cli("pause", "target", "bad", "-r", "x")
    assert code == 1 and "HTTP 422" in err
    code, _, err = await cli("--token", "wrong", "status")
    assert code == 1 and "HTTP 401" in err
    code, _, err = await _cli("http://127.0.0.1:9", "status", capsys=capsys)
    assert code == 2 and "cannot reach" in err
