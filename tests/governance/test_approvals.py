"""Approve mode: pending -> approved (acts, under the guards), denied, or timed out (escalated)."""

from __future__ import annotations

import pytest

from remediator.engine.governance.api import GovernanceError
from remediator.playbook import Target
from remediator.store.records import Scope
from remediator_testing.clock import ManualClock
from tests.conftest import BOTH_BACKENDS, Daemon, MakeDaemon
from tests.governance.helpers import (
    World,
    firing,
    labels,
    post_and_settle,
    refusals,
    registry_with,
    resolved,
    runs,
)

pytestmark = BOTH_BACKENDS

APPROVE = {"mode": "approve"}


async def pending_run(daemon: Daemon) -> int:
    await post_and_settle(daemon, firing(labels("orders")))
    [approval] = await daemon.engine.governance.pending_approvals()
    [run] = await runs(daemon)
    assert run.state == "pending_approval" and approval.run_id == run.id
    assert approval.target_key == "Deployment/shop/orders"
    return run.id


async def test_approve_runs_the_same_run_for_real(make_daemon: MakeDaemon) -> None:
    world = World()
    daemon = await make_daemon(registry_with(world), config=APPROVE)
    run_id = await pending_run(daemon)
    assert world.calls == []
    [would] = await daemon.engine.store.actions_for((await runs(daemon))[0].episode_id)
    assert would.state == "would" and would.object == "Deployment/shop/orders"
    state = await daemon.engine.governance.approve(run_id, who="alice", reason="looks right")
    assert state == "acted"
    assert world.targets() == ["Deployment/shop/orders"]
    [run] = await runs(daemon)
    assert run.id == run_id and run.state == "acted"
    assert await daemon.engine.governance.pending_approvals() == []
    [decision] = await daemon.engine.store.approvals()
    assert (decision.state, decision.decided_by, decision.reason) == (
        "approved",
        "alice",
        "looks right",
    )
    assert [t.state for t in await daemon.engine.store.timers_for(run.episode_id)] == ["cancelled"]
    with pytest.raises(GovernanceError, match="already approved"):
        await daemon.engine.governance.approve(run_id, who="bob", reason="again")
    assert len(world.calls) == 1


async def test_deny_ends_the_run(make_daemon: MakeDaemon) -> None:
    world = World()
    daemon = await make_daemon(registry_with(world), config=APPROVE)
    run_id = await pending_run(daemon)
    await daemon.engine.governance.deny(run_id, who="carol", reason="not during the sale")
    [run] = await runs(daemon)
    assert run.state == "refused" and run.error == "approval denied by carol: not during the sale"
    with pytest.raises(GovernanceError, match="already denied"):
        await daemon.engine.governance.approve(run_id, who="dave", reason="override")
    assert world.calls == []
    assert [e.action for e in await daemon.engine.governance.audit()] == ["denied"]


async def test_timeout_escalates(make_daemon: MakeDaemon) -> None:
    world = World()
    daemon = await make_daemon(
        registry_with(world),
        config={**APPROVE, "approval": {"timeout_seconds": 900}},
        clock=ManualClock(),
    )
    run_id = await pending_run(daemon)
    await daemon.advance(899)  # the timer loop looked after this: nothing was due
    [run] = await runs(daemon)
    assert run.state == "pending_approval"
    await daemon.advance(1)
    [run] = await runs(daemon)
    assert run.state == "refused" and run.error is not None
    assert run.error.startswith("approval expired: no decision within 900 s")
    [escalation] = await daemon.engine.store.escalations_for(run.episode_id)
    assert escalation.details["kind"] == "approval_timeout" and escalation.run_id == run_id
    with pytest.raises(GovernanceError, match="already expired"):
        await daemon.engine.governance.approve(run_id, who="eve", reason="too late")
    assert world.calls == []


async def test_guards_apply_again_when_approved(make_daemon: MakeDaemon) -> None:
    world = World()
    daemon = await make_daemon(registry_with(world), config=APPROVE)
    run_id = await pending_run(daemon)
    await daemon.engine.governance.pause(Scope.GLOBAL, who="frank", reason="freeze")
    state = await daemon.engine.governance.approve(run_id, who="gina", reason="ok")
    assert state == "refused" and world.calls == []
    assert await refusals(daemon) == ["kill_switch: paused (global) by frank: freeze"]


async def test_an_approval_covers_only_the_calls_that_were_shown(make_daemon: MakeDaemon) -> None:
    world = World()
    victim = {"pod": "orders-1"}
    registry = registry_with(world, touch=lambda t: [Target("Pod", victim["pod"], t.namespace)])
    daemon = await make_daemon(registry, config=APPROVE)
    run_id = await pending_run(daemon)
    victim["pod"] = "orders-2"  # the world changed: the run would now delete another pod
    state = await daemon.engine.governance.approve(run_id, who="hank", reason="ok")
    assert state == "refused" and world.calls == []
    [reason] = await refusals(daemon)
    assert reason.startswith("approval: patch deployments/scale Pod/shop/orders-2 is not among")


async def test_a_resolved_alert_cannot_be_approved(make_daemon: MakeDaemon) -> None:
    world = World()
    daemon = await make_daemon(registry_with(world), config=APPROVE)
    run_id = await pending_run(daemon)
    await post_and_settle(daemon, resolved(labels("orders")))
    with pytest.raises(GovernanceError, match="the alert resolved"):
        await daemon.engine.governance.approve(run_id, who="ivy", reason="ok")
    [approval] = await daemon.engine.store.approvals()
    assert approval.state == "denied" and world.calls == []
