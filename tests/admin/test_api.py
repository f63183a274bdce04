"""Every admin endpoint with both tokens, missing and wrong tokens, and bad input."""

from __future__ import annotations

import pytest

from tests.admin.helpers import OPERATOR, READ, admin_config, call
from tests.conftest import BOTH_BACKENDS, Daemon, MakeDaemon
from tests.governance.helpers import World, firing, labels, post_and_settle, registry_with

WHY = {"reason": "testing"}


@pytest.fixture
async def daemon(make_daemon: MakeDaemon) -> Daemon:
    return await make_daemon(registry_with(World()), config=admin_config(mode="auto"))


READS = [
    "/admin/status",
    "/admin/playbooks",
    "/admin/episodes",
    "/admin/pauses",
    "/admin/approvals",
    "/admin/audit",
]
MUTATIONS = [
    ("/admin/pauses", {"scope": "global", **WHY}),
    ("/admin/pauses/1/resume", WHY),
    ("/admin/playbooks/scale/mode", {"mode": "shadow", **WHY}),
    ("/admin/breaker/close", WHY),
    ("/admin/approvals/1/approve", WHY),
    ("/admin/approvals/1/deny", WHY),
    ("/admin/runs", {"playbook": "scale", "labels": {}, **WHY}),
    ("/admin/episodes/x/resend-report", WHY),
]


@pytest.mark.parametrize("path", READS)
async def test_reads_need_a_token_and_accept_both(daemon: Daemon, path: str) -> None:
    assert (await call(daemon, "GET", path, token=None))[0] == 401
    assert (await call(daemon, "GET", path, token="wrong"))[0] == 401
    assert (await call(daemon, "GET", path, token=READ))[0] == 200
    assert (await call(daemon, "GET", path, token=OPERATOR))[0] == 200


@pytest.mark.parametrize(("path", "body"), MUTATIONS)
async def test_mutations_need_the_operator_token(daemon: Daemon, path: str, body: dict) -> None:
    assert (await call(daemon, "POST", path, token=None, json=body))[0] == 401
    assert (await call(daemon, "POST", path, token="wrong", json=body))[0] == 401
    status, answer = await call(daemon, "POST", path, token=READ, json=body)
    assert status == 403 and "read-only" in answer["error"]
    status, answer = await call(daemon, "POST", path, json={})
    assert status in (404, 422), answer  # a reason is always required
    if status == 422:
        assert "reason" in answer["error"]


@BOTH_BACKENDS
async def test_status_and_playbooks(daemon: Daemon) -> None:
    status, answer = await call(daemon, "GET", "/admin/status", token=READ)
    assert status == 200
    assert answer["mode"] == "auto" and answer["breaker"] is None and answer["store"]["ok"]
    assert answer["versions"]["python"]
    _, answer = await call(daemon, "GET", "/admin/playbooks", token=READ)
    [playbook] = answer["playbooks"]
    assert playbook["name"] == "scale" and playbook["mode"] == "auto"


@BOTH_BACKENDS
async def test_pause_resume_and_the_audit_log(daemon: Daemon) -> None:
    status, pause = await call(
        daemon,
        "POST",
        "/admin/pauses",
        json={"scope": "target", "key": "Deployment/shop/orders", "expires_in_seconds": 60, **WHY},
    )
    assert status == 201 and pause["who"] == "alice" and pause["expires_at"]
    await post_and_settle(daemon, firing(labels("orders")))
    [episode] = (await call(daemon, "GET", "/admin/episodes"))[1]["episodes"]
    _, detail = await call(daemon, "GET", f"/admin/episodes/{episode['id']}", token=READ)
    assert detail["runs"][0]["state"] == "refused"
    assert detail["actions"][0]["error"].startswith("kill_switch")
    status, lifted = await call(daemon, "POST", f"/admin/pauses/{pause['id']}/resume", json=WHY)
    assert status == 200 and lifted["lifted_by"] == "alice"
    status, _ = await call(daemon, "POST", f"/admin/pauses/{pause['id']}/resume", json=WHY)
    assert status == 409
    assert (await call(daemon, "POST", "/admin/pauses/999/resume", json=WHY))[0] == 404
    _, audit = await call(daemon, "GET", "/admin/audit", token=READ)
    assert [(a["action"], a["who"], a["reason"]) for a in audit["audit"]][:2] == [
        ("resume", "alice", "testing"),
        ("pause", "alice", "testing"),
    ]


KUBE_SYSTEM = {"namespace": "kube-system", "deployment": "coredns"}


async def test_bad_input(daemon: Daemon) -> None:
    cases = [
        ("/admin/pauses", {"scope": "playbook", "key": "nope", **WHY}, 404),
        ("/admin/pauses", {"scope": "target", "key": "not-a-target", **WHY}, 422),
        ("/admin/pauses", {"scope": "everything", **WHY}, 422),
        ("/admin/pauses", {"scope": "global", "reason": "   "}, 422),
        ("/admin/playbooks/nope/mode", {"mode": "auto", **WHY}, 404),
        ("/admin/playbooks/scale/mode", {"mode": "yolo", **WHY}, 422),
        ("/admin/runs", {"playbook": "nope", "labels": {}, **WHY}, 404),
        ("/admin/runs", {"playbook": "scale", "labels": {"namespace": "shop"}, **WHY}, 422),
        ("/admin/runs", {"playbook": "scale", "labels": {"a": 1}, **WHY}, 422),
        # Out of scope (kube-system is denied by default): refused before the playbook runs.
        ("/admin/runs", {"playbook": "scale", "labels": KUBE_SYSTEM, **WHY}, 422),
        ("/admin/approvals/abc/approve", WHY, 404),
        ("/admin/breaker/close", WHY, 409),
    ]
    for path, body, expected in cases:
        status, answer = await call(daemon, "POST", path, json=body)
        assert (status, path) == (expected, path), answer
        assert answer["error"]
    response = await daemon.client.post(
        "/admin/pauses", data=b"{not json", headers={"Authorization": f"Bearer {OPERATOR}"}
    )
    assert response.status == 400 and "JSON" in (await response.json())["error"]
    for params, expected in [
        ({"state": "odd"}, 422),
        ({"since": "yesterday"}, 422),
        ({"limit": "0"}, 422),
        ({"playbook": "nope"}, 404),
    ]:
        assert (await call(daemon, "GET", "/admin/episodes", params=params))[0] == expected
    assert (await call(daemon, "GET", "/admin/episodes/ep-nope"))[0] == 404
    assert (await call(daemon, "GET", "/admin/nothing-here"))[0] == 404


@BOTH_BACKENDS
async def test_mode_change_is_durable_and_immediate(
    daemon: Daemon, make_daemon: MakeDaemon
) -> None:
    status, answer = await call(
        daemon, "POST", "/admin/playbooks/scale/mode", json={"mode": "shadow", **WHY}
    )
    assert status == 200 and answer == {"playbook": "scale", "mode": "shadow", "override": True}
    await post_and_settle(daemon, firing(labels("orders")))
    [episode] = (await call(daemon, "GET", "/admin/episodes"))[1]["episodes"]
    _, detail = await call(daemon, "GET", f"/admin/episodes/{episode['id']}")
    assert detail["runs"][0]["mode"] == "shadow" and detail["actions"][0]["state"] == "would"
    await daemon.client.close()
    again = await make_daemon(registry_with(World()), config=admin_config(mode="auto"))
    _, answer = await call(again, "GET", "/admin/playbooks")
    assert answer["playbooks"][0]["mode"] == "shadow" and answer["playbooks"][0]["override"]
    _, answer = await call(again, "POST", "/admin/playbooks/scale/mode", json={"mode": None, **WHY})
    assert answer["mode"] == "auto" and not answer["override"]


@BOTH_BACKENDS
async def test_run_by_hand_is_a_dry_run_by_default(make_daemon: MakeDaemon) -> None:
    world = World()
    daemon = await make_daemon(registry_with(world), config=admin_config(mode="auto"))
    body = {"playbook": "scale", "labels": {"namespace": "shop", "deployment": "orders"}, **WHY}
    status, answer = await call(daemon, "POST", "/admin/runs", json=body)
    assert status == 201 and answer["state"] == "shadow" and answer["dry_run"] is True
    assert answer["target"] == "Deployment/shop/orders" and world.calls == []
    _, detail = await call(daemon, "GET", f"/admin/episodes/{answer['episode_id']}")
    assert detail["episode"]["labels"]["remediator_manual"] == "true"
    assert "run by hand by alice: testing" in detail["decisions"][0]["reason"]
    status, answer = await call(daemon, "POST", "/admin/runs", json={**body, "dry_run": False})
    assert status == 201 and answer["state"] == "acted"
    assert world.calls == [("scale", "Deployment/shop/orders")]
    _, audit = await call(daemon, "GET", "/admin/audit")
    assert [a["action"] for a in audit["audit"]] == ["run", "run"]
